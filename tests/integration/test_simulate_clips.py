"""The condition simulator on a real clip, checked with the project's own measurement.

3 s pieces of d10.mp4 are edited to show a condition; the simulated video is then measured like
any input (``pipeline.measure`` + ``fit_face``) and compared with the truth plus the piece's own
baseline (the same measurement on the unedited piece). 0-3 s for strabismus and ptosis; 4-7 s
(steady gaze: sd 2 deg) for nystagmus, whose 4 Hz must stand out of the natural gaze shifts.

What the pieces achieved when the tolerances were set (medians over the frames showing the
condition): 15 deg eso of the left eye read -13.8 deg on 0-3 s (-12.3 on 4-7 s: fitting's eyeball
centre follows MediaPipe's eye corners, which MediaPipe moves ~20 % of the way with a moved iris;
see docs/simulate.md); 4 Hz pendular nystagmus of 6 deg peak-to-peak peaked at 4.0 Hz; ptosis
2 mm of the left eye read -2.3 mm, the right eye moved < 0.2 mm.
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

CLIP = "d10.mp4"
START_S = {"eyes": 0.0, "steady": 4.0}  # piece start; every piece lasts 3 s
DURATION_S = 3.0
STRABISMUS_TOL_DEG = 3.0
NYSTAGMUS_TOL_HZ = 0.3
PTOSIS_TOL_MM = 0.7
FELLOW_LID_TOL_MM = 0.5
FELLOW_GAZE_TOL_DEG = 2.0
MIN_SHOWN = 0.7  # share of frames in which the condition must have been applied


@pytest.fixture(scope="module")
def pieces(clip, tmp_path_factory):
    """pieces(key) -> (path, baseline LandmarkTrack, EyeTrack, FaceFit) of a 3 s piece of d10."""
    cache: dict[str, tuple] = {}
    out_dir = tmp_path_factory.mktemp("simulate")

    def get(key: str) -> tuple:
        if key not in cache:
            src, start = clip(CLIP), START_S[key]
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
    piece = pieces("eyes")
    _, _, base_eyes, base = piece
    result, _, eyes, fit = _simulate(piece, "ptosis:eye=left,mm=2", "ptosis2")
    assert result.frames_shown >= MIN_SHOWN * result.frames
    ok = _usable(result, eyes, base_eyes)
    truth_mm = np.array(result.truth["per_frame"]["upper_lid_offset_mm"])
    assert np.median(truth_mm[ok, 1]) == pytest.approx(-2.0, abs=0.2)  # the iris sits in the lid's plateau
    delta = fit.upper_lid_mm - base.upper_lid_mm
    assert np.median(delta[ok, 1]) == pytest.approx(-2.0, abs=PTOSIS_TOL_MM)
    assert abs(np.median(delta[ok, 0])) < FELLOW_LID_TOL_MM
