"""The condition simulator on a real clip, checked with the project's own measurement.

3 s pieces of d10.mp4 are edited to show a condition; the simulated video is then measured like
any input (``pipeline.measure`` + ``fit_face``) and compared with the truth plus the piece's own
baseline (the same measurement on the unedited piece). 0-3 s for strabismus and ptosis; 4-7 s
(steady gaze: sd 2 deg) for nystagmus, whose 4 Hz must stand out of the natural gaze shifts.
d3.mp4 8.5-11.5 s (the fidelity grid's piece: gaze 15-20 deg down, dark skin) for a raised iris.

What the pieces achieved when the tolerances were set (medians over the frames showing the
condition): 15 deg eso of the left eye read -13.8 deg on 0-3 s (-12.3 on 4-7 s: fitting's eyeball
centre follows MediaPipe's eye corners, which MediaPipe moves ~20 % of the way with a moved iris;
see docs/simulate.md); 4 Hz pendular nystagmus of 6 deg peak-to-peak peaked at 4.0 Hz; ptosis
2 mm of the left eye read -2.3 mm, the right eye moved < 0.2 mm. An 8 deg hypertropia of d3's
right eye read 5.1 deg of vertical deviation (3.7 deg while the simulator's lower lid followed the
eye stage's, which reads high there and left the old iris's lower part on screen: docs/simulate.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import periodogram

from digital_mask.fitting import fit_face
from digital_mask.io import VideoWriter, iter_frames, probe_video
from digital_mask.pipeline import measure
from digital_mask.simulate import simulate_video

PIECES = {"eyes": ("d10.mp4", 0.0), "steady": ("d10.mp4", 4.0), "down": ("d3.mp4", 8.5)}  # clip, start (s); 3 s each
DURATION_S = 3.0
STRABISMUS_TOL_DEG = 3.0
VERTICAL_TOL_DEG = 3.5  # a raised iris under a lowered gaze (d3): the upper lid covers much of it
NYSTAGMUS_TOL_HZ = 0.3
PTOSIS_TOL_MM = 0.7
FELLOW_LID_TOL_MM = 0.5
FELLOW_GAZE_TOL_DEG = 2.0
MIN_SHOWN = 0.7  # share of frames in which the condition must have been applied


@pytest.fixture(scope="module")
def pieces(clip, tmp_path_factory):
    """pieces(key) -> (path, baseline LandmarkTrack, EyeTrack, FaceFit) of a 3 s piece (``PIECES``)."""
    cache: dict[str, tuple] = {}
    out_dir = tmp_path_factory.mktemp("simulate")

    def get(key: str) -> tuple:
        if key not in cache:
            name, start = PIECES[key]
            src = clip(name)
            info = probe_video(src)
            path = out_dir / f"{key}.mp4"
            with VideoWriter(path, info.width, info.height, info.time_base, info.average_rate, crf=12) as writer:
                for frame in iter_frames(src):
                    if start <= frame.time_s < start + DURATION_S:
                        writer.write(frame.rgb, frame.pts)
                    elif frame.time_s >= start + DURATION_S:
                        break
            track, eyes = measure(path)
            cache[key] = (path, track, eyes, fit_face(track, eyes))
        return cache[key]

    return get


def _simulate(piece, spec: str, tag: str):
    path = piece[0]
    out = path.with_name(f"{tag}.mp4")
    result = simulate_video(path, out, spec)
    track, eyes = measure(out)
    return result, track, eyes, fit_face(track, eyes)


def _usable(result, eyes, base_eyes) -> np.ndarray:
    shown = np.array(result.truth["per_frame"]["shown"])
    return shown & eyes.valid.all(axis=1) & base_eyes.valid.all(axis=1)


def _shown_case(pieces, key: str, spec: str, tag: str):
    """Simulate ``spec`` on a piece, check it was shown in most frames: (result, fit, baseline fit,
    usable frames)."""
    piece = pieces(key)
    result, _, eyes, fit = _simulate(piece, spec, tag)
    assert result.frames_shown >= MIN_SHOWN * result.frames
    return result, fit, piece[3], _usable(result, eyes, piece[2])


def test_strabismus_15_deg_eso_is_measured(pieces):
    piece = pieces("eyes")
    _, base_track, base_eyes, base = piece
    result, track, eyes, fit = _simulate(piece, "strabismus:eye=left,dir=eso,deg=15", "eso15")
    truth = json.loads(result.truth_path.read_text())
    assert truth == result.truth
    assert truth["condition"]["deviation_prism_dioptres"] == pytest.approx(26.795, abs=1e-3)
    assert result.frames == len(base_track.found)
    assert result.frames_shown >= MIN_SHOWN * result.frames
    offset = np.array(truth["per_frame"]["gaze_yaw_offset_deg"])
    ok = _usable(result, eyes, base_eyes)
    np.testing.assert_allclose(offset[ok, 1], -15.0)  # left eye, eso = toward the nose = -yaw
    np.testing.assert_allclose(offset[:, 0], 0.0)
    delta = fit.gaze_yaw_deg - base.gaze_yaw_deg
    assert np.median(delta[ok, 1]) == pytest.approx(-15.0, abs=STRABISMUS_TOL_DEG)
    assert abs(np.median(delta[ok, 0])) < FELLOW_GAZE_TOL_DEG
    # same frames, same timestamps
    np.testing.assert_allclose(track.timestamps_s, base_track.timestamps_s, atol=1e-6)


def test_raised_iris_under_a_lowered_gaze_is_measured(pieces):
    _, fit, base, ok = _shown_case(pieces, "down", "strabismus:eye=right,dir=hyper,deg=8", "hyper8")
    # the vertical deviation (right minus left pitch): both eyes' pitch is read against one
    # primary-gaze height, the middle of both eyes' measured lid openings, which the edited eye's
    # lids move a little (here the fellow eye reads -1.4 deg)
    delta = fit.gaze_pitch_deg - base.gaze_pitch_deg
    assert np.median(delta[ok, 0] - delta[ok, 1]) == pytest.approx(8.0, abs=VERTICAL_TOL_DEG)


def test_nystagmus_4_hz_shows_in_the_gaze_spectrum(pieces):
    piece = pieces("steady")
    _, _, base_eyes, _ = piece
    result, track, eyes, fit = _simulate(piece, "nystagmus:hz=4,amp=6,wave=pendular", "nys4")
    assert result.frames_shown >= MIN_SHOWN * result.frames
    fs = 1.0 / float(np.median(np.diff(track.timestamps_s)))
    freqs, power = periodogram(fit.gaze_yaw_deg.mean(axis=1), fs=fs, detrend="linear")
    band = freqs >= 1.5  # above natural gaze shifts and head motion
    peak = freqs[band][np.argmax(power[band])]
    assert peak == pytest.approx(4.0, abs=NYSTAGMUS_TOL_HZ)
    offset = np.array(result.truth["per_frame"]["gaze_yaw_offset_deg"])
    ok = _usable(result, eyes, base_eyes)
    assert np.ptp(offset[ok, 0]) == pytest.approx(6.0, abs=0.5)  # peak-to-peak, sampled at 30 fps


def test_ptosis_2_mm_lowers_the_measured_lid_of_that_eye_only(pieces):
    result, fit, base, ok = _shown_case(pieces, "eyes", "ptosis:eye=left,mm=2", "ptosis2")
    truth_mm = np.array(result.truth["per_frame"]["upper_lid_offset_mm"])
    assert np.median(truth_mm[ok, 1]) == pytest.approx(-2.0, abs=0.2)  # the iris sits in the lid's plateau
    delta = fit.upper_lid_mm - base.upper_lid_mm
    assert np.median(delta[ok, 1]) == pytest.approx(-2.0, abs=PTOSIS_TOL_MM)
    assert abs(np.median(delta[ok, 0])) < FELLOW_LID_TOL_MM
