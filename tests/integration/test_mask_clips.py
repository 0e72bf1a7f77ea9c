"""The end-to-end mask on real clips: timing, container hygiene, eye signs, fail-closed."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest

from digital_mask.io import iter_frames

FACE_CLIPS = ["d6.mp4", "d10.mp4", "d14.mp4", "single_face.mp4"]


def _aperture_mm(fit) -> np.ndarray:
    return fit.upper_lid_mm + fit.lower_lid_mm  # (T, 2) palpebral fissure height at the iris


@pytest.mark.parametrize("name", FACE_CLIPS)
def test_output_keeps_timing_and_drops_audio_and_metadata(masked, clip, name):
    result = masked(name)
    src_times = [f.time_s for f in iter_frames(clip(name))]
    out_times = [f.time_s for f in iter_frames(result.output)]
    assert len(out_times) == len(src_times) == result.summary.frames
    np.testing.assert_allclose(out_times, src_times, atol=1e-6)
    with av.open(str(result.output)) as container:
        assert len(container.streams.audio) == 0
        assert len(container.streams.video) == 1
        assert not container.metadata.get("encoder")
    data = result.output.read_bytes()
    assert b"Lavf" not in data and b"x264" not in data and b"Lavc" not in data
    assert result.summary.frames_tracked >= 0.95 * result.summary.frames


def test_d6_monocular_inward_turns_show_as_eye_difference(masked):
    """d6: the subject's left eye turns in around frame 500, the right eye around frame 720.

    Checked by hand on normalised eye crops (iris centre marked on the image, not MediaPipe's):
    at frame 500 the left iris centre sits 26 % of the eye width nasal of the eye's middle while
    the right iris is within 2 %; at frame 720 the right iris is 31 % nasal and the left within
    6 %. With a 12 mm eyeball and a ~30 mm fissure that is a 30-45 degree turn of one eye.
    The performer alternates the turns every few frames, so frames are counted, not averaged.
    """
    fit = masked("d6.mp4").fit
    primary = np.median(fit.gaze_yaw_deg[:30], axis=0)  # the clip opens looking straight ahead
    delta = fit.gaze_yaw_deg - primary  # + = toward the patient's left
    # left eye in (toward the nose = patient's right = -yaw), right eye still
    left_only = (delta[:, 1] < -20.0) & (np.abs(delta[:, 0]) < 10.0)
    # right eye in (toward the nose = +yaw), left eye still
    right_only = (delta[:, 0] > 20.0) & (np.abs(delta[:, 1]) < 12.0)
    assert left_only[490:515].sum() >= 3, "left-eye inward turn near frame 500 not found"
    assert right_only[710:735].sum() >= 3, "right-eye inward turn near frame 720 not found"
    assert left_only[495:506].any() and right_only[715:726].any()


def test_d14_one_sided_closure_stays_one_sided(masked):
    fit = masked("d14.mp4").fit
    ap = _aperture_mm(fit)
    window = slice(384, 393)
    left_closed = ap[window, 1] < 1.0
    right_open = ap[window, 0] > 3.0
    assert (left_closed & right_open).sum() >= 1, "no frame with the left eye closed and the right open"
    # both-eyes closure around 120-200: most frames closed in both eyes
    both = (ap[120:200] < 1.0).all(axis=1)
    assert both.mean() > 0.5
    # open eyes elsewhere
    assert np.median(ap[:100]) > 5.0


def test_d10_horizontal_gaze_shifts_in_both_eyes(masked):
    fit = masked("d10.mp4").fit
    yaw = fit.gaze_yaw_deg[fit.tracked]
    assert np.ptp(np.percentile(yaw[:, 0], [5, 95])) > 15.0
    assert np.ptp(np.percentile(yaw[:, 1], [5, 95])) > 15.0
    assert np.corrcoef(yaw[:, 0], yaw[:, 1])[0, 1] > 0.7


@pytest.mark.parametrize("name", ["face_noface.mov", "noface_face.mov"])
def test_faceless_frames_are_tracking_lost_and_no_frame_copies_the_input(masked, clip, name):
    result = masked(name)
    lost = ~result.fit.tracked
    assert lost.sum() > 10 and result.fit.tracked.sum() > 10
    assert result.summary.frames_tracking_lost == int(lost.sum())
    worst = 0.0
    for src, out in zip(iter_frames(clip(name)), iter_frames(result.output)):
        a = src.rgb.astype(np.float32).mean(axis=2).ravel()
        b = out.rgb.astype(np.float32).mean(axis=2).ravel()
        if a.std() > 1.0 and b.std() > 1.0:
            worst = max(worst, abs(float(np.corrcoef(a, b)[0, 1])))
    assert worst < 0.5, f"an output frame correlates with its input frame (r={worst:.2f})"


def test_no_face_clip_fails_closed(clip, tmp_path):
    out = tmp_path / "masked.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "digital_mask", "mask", str(clip("no_face.mp4")), "-o", str(out), "-q"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no face" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_pass_one_state_is_freed_after_measuring(clip):
    """Nothing keeps pass 1's per-frame lists alive into rendering (MediaPipe's import once pinned
    the frames of the first ``measure`` call, and with them ~20 MB a minute of video). A fresh
    interpreter, so that MediaPipe is first imported inside ``measure``, as in a real run."""
    code = (
        "import gc, sys\n"
        "from pathlib import Path\n"
        "from digital_mask import pipeline\n"
        "from digital_mask.eyes import EyeTrackBuilder\n"
        "from digital_mask.tracking import FaceTracker\n"
        "track, eyes = pipeline.measure(Path(sys.argv[1]))\n"
        "gc.collect()\n"
        "alive = [type(o).__name__ for o in gc.get_objects() if isinstance(o, (FaceTracker, EyeTrackBuilder))]\n"
        "assert track.found.any() and not alive, alive\n"
    )
    subprocess.run([sys.executable, "-c", code, str(clip("single_face.mp4"))], check=True, timeout=120)


def test_mediapipe_drawing_helpers_load_only_when_used():
    """Start-up: MediaPipe's vision package imports its drawing helpers, which import matplotlib
    (~0.4 s), and ``import mediapipe`` its audio tasks; they are loaded lazily, and still work when
    someone does use them."""
    code = (
        "import sys\n"
        "from digital_mask.tracking import FaceTracker\n"
        "FaceTracker((64, 64)).close()\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at start-up'\n"
        "assert 'mediapipe.tasks.python.audio.audio_classifier' not in sys.modules\n"
        "from mediapipe.tasks.python import audio\n"
        "assert audio.AudioClassifier and 'mediapipe.tasks.python.audio.audio_classifier' in sys.modules\n"
        "from mediapipe.tasks.python.vision import drawing_utils\n"
        "assert drawing_utils.DrawingSpec().thickness > 0 and 'matplotlib.pyplot' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("video", [True, False])
def test_landmarks_read_from_mediapipe_c_result_equal_its_python_api(clip, video):
    """The tracker reads MediaPipe's C result directly (private names of MediaPipe 1.2); it must
    give exactly what MediaPipe's public Python API gives, frame by frame."""
    from digital_mask._mediapipe import MediaPipeLandmarker

    frames = [f for _, f in zip(range(15), iter_frames(clip("d14.mp4")))]
    with MediaPipeLandmarker(video=video) as direct, MediaPipeLandmarker(video=video) as public:
        public._direct = False
        for frame in frames:
            ms = int(round(frame.time_s * 1000))
            a, b = direct.detect(frame.rgb, ms), public.detect(frame.rgb, ms)
            assert np.isfinite(a).all()
            np.testing.assert_array_equal(a, b)
        assert direct._direct, "MediaPipe's C result was not readable: the fallback ran"
