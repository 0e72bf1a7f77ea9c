"""Clinical metrics on synthetic inputs with known answers (no models, no video)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _synthetic import Scene
from digital_mask import metrics
from digital_mask.fitting import fit_face
from digital_mask.metrics import (
    bland_altman,
    compare_measurements,
    detect_blinks,
    detect_nystagmus,
    icc_2_1,
    measurements_from,
    primary_gaze_deviation,
    prism_dioptres,
)

MM_TOL = 0.05  # exact synthetic data: only float error and rounding
PD_TOL = 0.05


def _measure(scene: Scene) -> metrics.Measurements:
    track, eyes = scene.landmark_track(), scene.eye_track()
    return measurements_from(track, eyes, fit_face(track, eyes), source_name="synthetic.mp4")


def test_prism_dioptres_is_100_tan():
    assert prism_dioptres(10.0) == pytest.approx(17.633, abs=1e-3)
    assert prism_dioptres(45.0) == pytest.approx(100.0)
    assert prism_dioptres(-10.0) == pytest.approx(-17.633, abs=1e-3)


@pytest.mark.parametrize("pose", [(0.0, 0.0, 0.0), (20.0, -10.0, 5.0)])
def test_known_lid_geometry_gives_known_mrd1_and_mrd2(pose):
    scene = Scene(n=20, yaw=pose[0], pitch=pose[1], roll=pose[2], upper_mm=np.array([1.5, 4.0]),
                  lower_mm=np.array([5.0, 5.5]))
    m = _measure(scene)
    np.testing.assert_allclose(m.table["right_mrd1_mm"], 1.5, atol=MM_TOL)
    np.testing.assert_allclose(m.table["left_mrd1_mm"], 4.0, atol=MM_TOL)
    np.testing.assert_allclose(m.table["left_fissure_height_mm"], 9.5, atol=MM_TOL)
    lids = m.summary["lids"]
    assert lids["right"]["mrd1_mm"] == pytest.approx(1.5, abs=MM_TOL)
    assert lids["right"]["mrd2_mm"] == pytest.approx(5.0, abs=MM_TOL)
    assert lids["right"]["ptosis"] is True and lids["left"]["ptosis"] is False  # one-sided ptosis
    assert lids["left"]["lid_retraction"] is False
    assert "2.0 mm" in lids["threshold"]["ptosis"]


def test_sclera_above_the_limbus_flags_lid_retraction():
    m = _measure(Scene(n=10, upper_mm=np.array([7.0, 4.5])))
    assert m.summary["lids"]["right"]["lid_retraction"] is True
    assert m.summary["lids"]["left"]["lid_retraction"] is False
    assert metrics.RETRACTION_MRD1_MM == pytest.approx(11.7 / 2 + 0.5)


def test_constant_10_degree_divergence_is_17_6_pd_exo():
    # right eye 5 deg temporal (-yaw), left eye 5 deg temporal (+yaw): 10 deg divergence
    m = _measure(Scene(n=30, gaze_yaw=np.array([-5.0, 5.0])))
    dev = m.summary["deviation"]
    assert dev["horizontal_pd"] == pytest.approx(17.63, abs=PD_TOL)
    assert dev["horizontal_direction"] == "exo" and dev["horizontal_flag"] == "exo"
    assert dev["frames_used"] == 30 and dev["vertical_flag"] == "none"
    np.testing.assert_allclose(m.table["horizontal_deviation_pd"], -17.63, atol=PD_TOL)


def test_convergence_is_eso_and_a_higher_right_eye_is_right_hyper():
    yaw = np.tile([[6.0, -4.0]], (20, 1))  # both nasal: 10 deg convergence
    pitch = np.tile([[3.0, -1.0]], (20, 1))  # right eye 4 deg higher
    dev = primary_gaze_deviation(yaw, pitch, np.ones(20, bool))
    assert dev["horizontal_direction"] == "eso" and dev["horizontal_pd"] == pytest.approx(17.63, abs=PD_TOL)
    assert dev["vertical_direction"] == "right hyper" and dev["vertical_pd"] == pytest.approx(6.99, abs=PD_TOL)


def test_deviation_episode_names_the_eye_that_turned():
    n = 60
    yaw = np.zeros((n, 2))
    yaw[20:30, 1] = -25.0  # left eye turns toward the nose
    yaw[40:45, 0] = 25.0  # right eye turns toward the nose
    eps = metrics.deviation_episodes(yaw, np.ones(n, bool), np.arange(n) / 30)
    assert [(e["start_frame"], e["end_frame"], e["eye"], e["direction"]) for e in eps] == [
        (20, 29, "left", "inward (eso)"), (40, 44, "right", "inward (eso)")]


def test_4_hz_sinusoid_gives_4_hz():
    fps, n = 30.0, 300
    t = np.arange(n) / fps
    rng = np.random.default_rng(3)
    yaw = 1.5 * np.sin(2 * np.pi * 4.0 * t) + rng.normal(0, 0.3, n) + 0.5 * t  # 3 deg p2p, drift
    res = detect_nystagmus(yaw, np.zeros(n), t, np.ones(n, bool))
    assert res["detected"] is True
    assert res["frequency_hz"] == pytest.approx(4.0, abs=0.15)
    assert res["amplitude_p2p_deg"] == pytest.approx(3.0, rel=0.2)
    assert res["direction"] == "horizontal"


def test_fixation_with_noise_and_gaze_shifts_has_no_nystagmus():
    fps, n = 30.0, 600
    t = np.arange(n) / fps
    rng = np.random.default_rng(5)
    yaw = np.repeat(rng.uniform(-20, 20, n // 60), 60) + rng.normal(0, 0.8, n)  # saccades + jitter
    res = detect_nystagmus(yaw, rng.normal(0, 0.8, n), t, np.ones(n, bool))
    assert res["detected"] is False and res["result"] == "none detected"
    assert res["threshold"]["min_p2p_deg"] == metrics.NYSTAGMUS_MIN_P2P_DEG


def test_nystagmus_through_the_fit_keeps_the_eye_and_frequency():
    fps, n = 30.0, 240
    t = np.arange(n) / fps
    left = 3.0 * np.sin(2 * np.pi * 5.0 * t)
    m = _measure(Scene(n=n, fps=fps, gaze_yaw=np.stack([np.zeros(n), left], 1)))
    ny = m.summary["nystagmus"]
    assert ny["left"]["detected"] and ny["left"]["frequency_hz"] == pytest.approx(5.0, abs=0.15)
    assert not ny["right"]["detected"]


def _aperture_closed(n: int, right: list[tuple[int, int]], left: list[tuple[int, int]]) -> np.ndarray:
    closed = np.zeros((n, 2), bool)
    for e, runs in enumerate((right, left)):
        for s, u in runs:
            closed[s:u, e] = True
    return closed


def test_blinks_both_eyes_and_one_eye():
    n, fps = 600, 30.0
    t = np.arange(n) / fps
    closed = _aperture_closed(n, right=[(30, 35), (300, 304)], left=[(31, 36), (200, 204), (300, 303)])
    closed[102, 0] = closed[100:101, 0] = False
    b = detect_blinks(closed, t)
    assert [(e["start_frame"], e["eyes"]) for e in b["episodes"]] == [(30, "both"), (200, "left only"), (300, "both")]
    assert len(b["right"]) == 2 and len(b["left"]) == 3
    assert b["one_eye_closures"] == {"right": 0, "left": 1}
    assert b["left"][1]["both_eyes"] is False and b["right"][0]["both_eyes"] is True
    assert b["blink_count"] == 3 and b["blinks_per_minute"] == pytest.approx(3 / (n / fps / 60))


def test_flickering_closure_is_one_sustained_closure():
    n = 300
    closed = np.zeros((n, 2), bool)
    closed[100:160] = True
    closed[110::2][:20] = False  # every other frame reads open while the lids are nearly shut
    b = detect_blinks(closed, np.arange(n) / 30.0)
    assert len(b["episodes"]) == 1 and b["episodes"][0]["kind"] == "sustained closure"
    assert b["blink_count"] == 0 and b["sustained_closures"] == 1


def test_icc_of_identical_series_is_1_and_of_unrelated_series_near_0():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 5, 200)
    assert icc_2_1(x, x) == pytest.approx(1.0)
    assert abs(icc_2_1(x, rng.normal(0, 5, 200))) < 0.2
    assert icc_2_1(x, x + 10.0) < 0.5  # absolute agreement: a constant offset is disagreement


def test_icc_matches_shrout_fleiss_worked_example():
    # Shrout & Fleiss (1979) Table 2, judges 1 and 2 of 6 targets: ICC(2,1) computed by hand
    a = np.array([9, 6, 8, 7, 10, 6], float)
    b = np.array([2, 1, 4, 1, 5, 2], float)
    grand = np.concatenate([a, b]).mean()
    rows = np.stack([a, b], 1)
    msr = 2 * ((rows.mean(1) - grand) ** 2).sum() / 5
    msc = 6 * ((rows.mean(0) - grand) ** 2).sum() / 1
    mse = (((rows - grand) ** 2).sum() - msr * 5 - msc) / 5
    expected = (msr - mse) / (msr + mse + 2 * (msc - mse) / 6)
    assert icc_2_1(a, b) == pytest.approx(expected)


def test_bland_altman_bias_and_limits():
    x = np.arange(10.0)
    d = np.array([1.0, -1.0] * 5)
    ba = bland_altman(x, x + 2.0 + d)
    assert ba["bias"] == pytest.approx(2.0)
    assert ba["mae"] == pytest.approx(np.mean(np.abs(2.0 + d)))
    sd = np.std(d, ddof=1)
    assert ba["loa_low"] == pytest.approx(2.0 - 1.96 * sd) and ba["loa_high"] == pytest.approx(2.0 + 1.96 * sd)


def test_compare_identical_measurements_agrees_fully_with_the_fixed_layout():
    rng = np.random.default_rng(1)
    n = 40
    scene = Scene(n=n, gaze_yaw=rng.uniform(-20, 20, (n, 2)), gaze_pitch=rng.uniform(-10, 10, (n, 2)),
                  upper_mm=rng.uniform(2, 5, (n, 2)))
    m = _measure(scene)
    cmp = compare_measurements(m, m)
    assert set(cmp["per_eye"]) == {"right", "left"}
    for eye in ("right", "left"):
        for meas in ("gaze_yaw_deg", "gaze_pitch_deg", "mrd1_mm", "mrd2_mm", "fissure_height_mm"):
            st = cmp["per_eye"][eye][meas]
            assert set(st) >= {"icc", "mae", "bias", "loa_low", "loa_high"}
            assert st["mae"] == 0.0 and st["bias"] == 0.0
        assert cmp["per_eye"][eye]["gaze_yaw_deg"]["icc"] == pytest.approx(1.0)
    assert all(set(v) == {"original", "mask", "agree"} and v["agree"] for v in cmp["flags"].values())
    from digital_mask.report import to_json

    json.loads(to_json(cmp))  # JSON-ready (no NaN, no numpy types)


def test_per_frame_table_shapes_units_and_untracked_frames():
    found = np.ones(12, bool)
    found[3] = False
    m = _measure(Scene(n=12, found=found, yaw=15.0, roll=-6.0))
    assert all(len(col) == 12 for col in m.table.values())
    assert not m.table["tracked"][3] and np.isnan(m.table["right_mrd1_mm"][3])
    # Scene's yaw +15 rotates about image +y (down): the face then points to image left, which
    # is the patient's right in a non-mirrored video: head turn -15 in our convention
    assert m.table["head_yaw_deg"][0] == pytest.approx(-15.0, abs=0.5)
    assert m.table["time_s"][1] == pytest.approx(1 / 30)


def test_head_angle_signs():
    from scipy.spatial.transform import Rotation

    flip = np.diag([1.0, -1.0, -1.0])
    # face nose pointing to image right (= patient's left): rotate about image y (down) by -20 deg
    turn = Rotation.from_euler("y", -20, degrees=True).as_matrix() @ flip
    # patient's left side lower in the image: head +x axis rotates toward image +y
    tilt = Rotation.from_euler("z", 10, degrees=True).as_matrix() @ flip
    # chin up: the face's forward direction tilts toward image -y (up)
    chin = Rotation.from_euler("x", -15, degrees=True).as_matrix() @ flip
    yaw, pitch, roll = metrics.head_angles_deg(np.stack([turn, tilt, chin]))
    assert yaw[0] == pytest.approx(20.0) and abs(pitch[0]) < 1e-9 and abs(roll[0]) < 1e-9
    assert roll[1] == pytest.approx(10.0) and abs(yaw[1]) < 1e-9
    assert pitch[2] == pytest.approx(15.0)


def _jerk(t: np.ndarray, hz: float, p2p: float) -> np.ndarray:
    """Slow drift over the whole cycle, instantaneous return (a sawtooth), ``p2p`` peak to peak."""
    return p2p * (0.5 - ((t * hz) % 1.0))


def test_short_jerk_with_mis_measured_frames_keeps_its_frequency():
    # 3 s at 30 fps (a fidelity piece): 5 Hz jerk, 4 deg p2p (fundamental 2.5 deg), 0.5 deg noise and
    # 5 frames off by 10-25 deg (as on a re-tracked mask); the rhythm must win, at any seed
    fps, n = 30.0, 90
    t = np.arange(n) / fps
    for seed in range(10):
        rng = np.random.default_rng(seed)
        yaw = _jerk(t, 5.0, 4.0) + rng.normal(0, 0.5, n)
        bad = rng.choice(n, 5, replace=False)
        yaw[bad] += rng.choice([-1.0, 1.0], 5) * rng.uniform(10, 25, 5)
        res = detect_nystagmus(yaw, rng.normal(0, 0.5, n), t, np.ones(n, bool), robust=True)
        assert res["detected"] is True, seed
        assert res["frequency_hz"] == pytest.approx(5.0, abs=0.15), seed
        assert res["amplitude_p2p_deg"] == pytest.approx(4.0 * 2 / np.pi, rel=0.25), seed  # the fundamental


def test_noise_with_mis_measured_frames_has_no_nystagmus():
    fps, n = 30.0, 90
    t = np.arange(n) / fps
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        yaw = rng.normal(0, 0.8, n)
        bad = rng.choice(n, 5, replace=False)
        yaw[bad] += rng.choice([-1.0, 1.0], 5) * rng.uniform(10, 25, 5)
        res = detect_nystagmus(yaw, rng.normal(0, 0.8, n), t, np.ones(n, bool), robust=True)
        assert res["detected"] is False, seed


def test_frequency_between_fft_bins_and_across_a_gap():
    # 3 s: FFT bins are 1/3 Hz apart (4.0, 4.33); the least-squares fit is not tied to them, and
    # unusable frames are left out rather than bridged
    fps, n = 30.0, 90
    t = np.arange(n) / fps
    rng = np.random.default_rng(7)
    yaw = 2.0 * np.sin(2 * np.pi * 4.2 * t + 0.3) + rng.normal(0, 0.3, n)
    usable = np.ones(n, bool)
    usable[40:52] = False
    yaw[40:52] = 30.0  # what an unusable frame may hold
    res = detect_nystagmus(yaw, np.zeros(n), t, usable)
    assert res["detected"] is True
    assert res["frequency_hz"] == pytest.approx(4.2, abs=0.05)
    assert res["amplitude_p2p_deg"] == pytest.approx(4.0, rel=0.15)


def test_background_is_a_power_law_plus_a_white_floor():
    # a known spectrum 4 f^-2 + 0.05 with one rhythm on it: the fit recovers it, the rhythm left out
    freqs = np.linspace(1.0, 12.0, 200)
    truth = 4.0 * freqs ** -2.0 + 0.05
    power = truth.copy()
    power[np.abs(freqs - 5.0) < 0.15] *= 40.0
    bg = metrics._background(freqs, power)
    assert np.allclose(bg, truth, rtol=0.02)


def test_drift_and_white_noise_rarely_give_nystagmus():
    # 3 s pieces: a random-walk drift (falling spectrum) plus per-frame measurement noise (flat to
    # Nyquist); a power-law background alone lets the flat noise near 10-12 Hz stand out
    fps, n = 30.0, 90
    t = np.arange(n) / fps
    hits = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        yaw = np.cumsum(rng.normal(0, 0.6, n)) + rng.normal(0, 1.5, n)
        hits += detect_nystagmus(yaw, rng.normal(0, 1.5, n), t, np.ones(n, bool), robust=True)["detected"]
    assert hits <= 2


def test_robust_mode_asks_the_rhythm_to_stand_out_of_the_scatter():
    # 3 s change traces: a horizontal 5 Hz, 4 deg p2p rhythm (variance 2 deg^2) in per-frame noise of
    # SD 0.5 / 4 deg: its share of the horizontal variance is 2 / (2 + 0.25) = 0.89 / 2 / (2 + 16) = 0.11
    fps, n = 30.0, 90
    t = np.arange(n) / fps
    rhythm = 2.0 * np.sin(2 * np.pi * 5.0 * t)
    for sd, share, found in ((0.5, 0.89, True), (4.0, 0.11, False)):
        rng = np.random.default_rng(11)
        res = detect_nystagmus(rhythm + rng.normal(0, sd, n), rng.normal(0, sd, n), t, np.ones(n, bool), robust=True)
        assert res["variance_share"] == pytest.approx(share, abs=0.05 if found else 0.04)
        assert res["detected"] is found
    assert res["threshold"]["min_variance_share"] == metrics.NYSTAGMUS_MIN_VARIANCE_SHARE
    assert "min_variance_share" not in detect_nystagmus(rhythm, np.zeros(n), t, np.ones(n, bool))["threshold"]
