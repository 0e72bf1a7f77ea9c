"""Reconstruction tests: a known 3D face, head pose, gaze and lids, projected; fit_face recovers them.

No models beyond the bundled canonical mesh; every case has an exact answer (``_synthetic.Scene``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from _synthetic import FLIP, IRIS_R_HEAD, Scene, relative_pose
from digital_mask import fitting
from digital_mask.errors import InputError, NoFaceError
from digital_mask.fitting import (
    canonical_face,
    eyeball_centers_cm,
    fit_face,
    fit_similarity,
    project_eye_model,
    reconstruction_error_pct,
)
from digital_mask.types import LIMBUS_DEPTH_RADII, FaceFit, LandmarkTrack

POSE_TOL_DEG = 1.0  # the spec's tolerance; exact data gives ~1e-5 deg
GAZE_TOL_DEG = 0.5
LID_TOL_MM = 0.05
EXPRESSION_TOL_CM = 1e-3
MOUTH_CORNERS = (61, 291)  # not in the Procrustes basis, so moving them leaves the head pose alone


def random_similarity(rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
    return float(rng.uniform(5.0, 50.0)), Rotation.random(random_state=rng).as_matrix(), rng.uniform(-300, 300, 3)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation taking a to b."""
    return float(np.degrees((Rotation.from_matrix(a).inv() * Rotation.from_matrix(b)).magnitude()))


def with_points(track: LandmarkTrack, points: np.ndarray, found: np.ndarray | None = None) -> LandmarkTrack:
    return dataclasses.replace(track, points_px=points.astype(np.float32),
                               found=track.found.copy() if found is None else found)


# --- fit_similarity ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_fit_similarity_recovers_a_random_similarity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    src = canonical_face().vertices_cm
    s, rot, t = random_similarity(rng)
    dst = s * src @ rot.T + t
    s_fit, rot_fit, t_fit = fit_similarity(src, dst, np.ones(len(src)))
    assert s_fit == pytest.approx(s, rel=1e-9)
    assert angle_deg(rot_fit, rot) < 1e-6
    np.testing.assert_allclose(t_fit, t, atol=1e-8)
    assert np.linalg.det(rot_fit) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(3))
def test_fit_similarity_weights(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    face = canonical_face()
    src = face.vertices_cm[face.procrustes_idx]
    s, rot, t = random_similarity(rng)
    dst = s * src @ rot.T + t
    # MediaPipe's own non-uniform weights: still exact on exact data
    s_fit, rot_fit, t_fit = fit_similarity(src, dst, face.procrustes_w)
    assert s_fit == pytest.approx(s, rel=1e-9)
    assert angle_deg(rot_fit, rot) < 1e-6
    np.testing.assert_allclose(t_fit, t, atol=1e-8)
    # zero-weight points may be garbage: they must not move the fit
    w = np.ones(len(src))
    bad = rng.choice(len(src), 8, replace=False)
    w[bad] = 0.0
    dst_bad = dst.copy()
    dst_bad[bad] += rng.normal(0, 100.0, (8, 3))
    s_fit, rot_fit, t_fit = fit_similarity(src, dst_bad, w)
    assert s_fit == pytest.approx(s, rel=1e-9)
    assert angle_deg(rot_fit, rot) < 1e-6
    np.testing.assert_allclose(t_fit, t, atol=1e-8)


def test_fit_similarity_never_returns_a_reflection() -> None:
    src = canonical_face().vertices_cm
    mirrored = src * np.array([-1.0, 1.0, 1.0])
    s, rot, t = fit_similarity(src, mirrored, np.ones(len(src)))
    assert rot.shape == (3, 3)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    assert 0 < s < 1.0  # a reflection is not reachable: the best proper fit shrinks


# --- eyeball centres -----------------------------------------------------------------------------


def test_eyeball_centers_behind_corner_midpoints() -> None:
    v = canonical_face().vertices_cm
    radius = 1.2
    c = eyeball_centers_cm(v, radius)
    assert c.shape == (2, 3)
    fissure_mid_y = np.mean([(v[u, 1] + v[lo, 1]) / 2 for u, lo in fitting.LID_APEXES])
    for e, (a, b) in enumerate(fitting.EYE_CORNERS):
        mid = (v[a] + v[b]) / 2
        assert c[e, 0] == pytest.approx(mid[0], abs=1e-12)
        assert c[e, 1] == pytest.approx(fissure_mid_y, abs=1e-12)
        assert c[e, 2] == pytest.approx(mid[2] - fitting.EYEBALL_DEPTH_RADII * radius)
    assert c[0, 0] < 0 < c[1, 0]  # index 0 = the patient's right eye, head -x
    np.testing.assert_allclose(c[0] * [-1, 1, 1], c[1], atol=1e-6)  # the canonical face is symmetric


def test_one_sided_ptosis_moves_both_eyeball_centres_alike() -> None:
    # a lowered right upper lid must not fake a vertical squint: both centres move together
    v = canonical_face().vertices_cm.copy()
    before = eyeball_centers_cm(v, 1.2)
    v[159, 1] -= 0.3
    after = eyeball_centers_cm(v, 1.2)
    shift = after[:, 1] - before[:, 1]
    assert shift[0] == pytest.approx(shift[1]) and shift[0] == pytest.approx(-0.075)


# --- fit_face: head --------------------------------------------------------------------------------


def test_fit_face_output_shapes_and_dtypes() -> None:
    scene = Scene(n=7)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    assert isinstance(fit, FaceFit)
    assert len(fit) == 7
    assert fit.rotation.shape == (7, 3, 3) and fit.rotation.dtype == np.float64
    assert fit.scale_px_per_cm.shape == (7,) and fit.translation_px.shape == (7, 3)
    assert fit.expression_cm.shape == (7, 468, 3) and fit.expression_cm.dtype == np.float32
    for name in ("gaze_yaw_deg", "gaze_pitch_deg", "upper_lid_mm", "lower_lid_mm"):
        assert getattr(fit, name).shape == (7, 2) and getattr(fit, name).dtype == np.float64
    assert fit.tracked.dtype == bool and fit.residual_px.shape == (7,)
    assert fit.eyeball_center_cm.shape == (2, 3)
    assert fit.image_size == scene.image_size
    np.testing.assert_array_equal(fit.timestamps_s, scene.landmark_track().timestamps_s)
    frame = fit.frame(3)
    assert frame.tracked and frame.expression_cm.shape == (468, 3)


@pytest.mark.parametrize(
    ("yaw", "pitch", "roll"), [(20.0, -10.0, 5.0), (0.0, 0.0, 0.0), (-35.0, 15.0, -10.0)]
)
def test_fit_face_recovers_head_pose(yaw: float, pitch: float, roll: float) -> None:
    scene = Scene(yaw=yaw, pitch=pitch, roll=roll)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    truth = Rotation.from_euler("YXZ", [yaw, pitch, roll], degrees=True)
    assert fit.tracked.all()
    for i in range(scene.n):
        err = np.degrees((relative_pose(fit.rotation[i]).inv() * truth).magnitude())
        assert err < POSE_TOL_DEG
        assert err < 1e-3  # exact data: far tighter in practice
    np.testing.assert_allclose(fit.scale_px_per_cm, scene.scale, rtol=1e-5)
    np.testing.assert_allclose(fit.translation_px, np.broadcast_to(scene.translation, (scene.n, 3)), atol=1e-3)
    np.testing.assert_allclose(fit.residual_px, 0.0, atol=1e-3)
    # the rigid canonical face has no expression
    assert np.abs(fit.expression_cm).max() < EXPRESSION_TOL_CM


def test_frontal_pose_is_the_flip() -> None:
    scene = Scene(yaw=0.0, pitch=0.0, roll=0.0)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    np.testing.assert_allclose(fit.rotation, np.broadcast_to(FLIP, (scene.n, 3, 3)), atol=1e-6)


def test_expression_is_the_added_delta_and_not_absorbed_by_the_neutral() -> None:
    n = 10
    delta = np.zeros((n, 468, 3))
    moving = np.arange(n) % 3 == 0  # 4 of 10 frames: fewer than half
    for v in MOUTH_CORNERS:
        delta[moving, v, 1] = 0.3  # mouth corners up 3 mm (a smile)
    scene = Scene(n=n, expression=delta)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    np.testing.assert_allclose(fit.expression_cm, delta, atol=EXPRESSION_TOL_CM)
    # the rigid fit ignores the mouth corners: the pose stays exact
    truth = Rotation.from_euler("YXZ", [scene.yaw, scene.pitch, scene.roll], degrees=True)
    for i in range(n):
        assert np.degrees((relative_pose(fit.rotation[i]).inv() * truth).magnitude()) < 1e-3


def test_frames_without_a_face_are_untracked_and_neutral() -> None:
    found = np.ones(8, bool)
    found[[0, 4]] = False
    scene = Scene(n=8, found=found, gaze_yaw=10.0)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    np.testing.assert_array_equal(fit.tracked, found)
    assert (fit.expression_cm[~found] == 0).all()
    assert (fit.upper_lid_mm[~found] == 4.0).all() and (fit.lower_lid_mm[~found] == 4.0).all()
    assert np.isnan(fit.residual_px[~found]).all()
    # gaze is held through the gaps (the same on both sides here)
    np.testing.assert_allclose(fit.gaze_yaw_deg, 10.0, atol=GAZE_TOL_DEG)
    np.testing.assert_allclose(fit.gaze_pitch_deg, 0.0, atol=GAZE_TOL_DEG)
    assert np.isfinite(fit.rotation).all() and np.isfinite(fit.translation_px).all()


def test_a_frame_that_is_not_a_face_is_untracked() -> None:
    scene = Scene(n=6)
    track = scene.landmark_track()
    rng = np.random.default_rng(3)
    pts = track.points_px.astype(np.float64)
    pts[2, :468] += rng.normal(0.0, 2.0 * scene.scale, (468, 3))  # 2 cm scatter: not this face
    pts[3, :468] += rng.normal(0.0, 0.05 * scene.scale, (468, 3))  # 0.5 mm jitter: still a face
    fit = fit_face(with_points(track, pts), scene.eye_track())
    np.testing.assert_array_equal(fit.tracked, [True, True, False, True, True, True])
    assert fit.residual_px[2] > fitting.MAX_RESIDUAL_CM * fit.scale_px_per_cm[2]


def test_no_face_raises_no_face_error() -> None:
    scene = Scene(n=4, found=np.zeros(4, bool))
    with pytest.raises(NoFaceError, match="no usable face"):
        fit_face(scene.landmark_track(), scene.eye_track())
    assert issubclass(NoFaceError, InputError)


def test_zero_frames_raise_no_face_error() -> None:
    scene = Scene(n=0)
    with pytest.raises(NoFaceError, match="no usable face"):
        fit_face(scene.landmark_track(), scene.eye_track())


# --- fit_face: eyes --------------------------------------------------------------------------------


def test_iris_ruler_sets_eyeball_radius_and_centres() -> None:
    scene = Scene()
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    assert fit.mm_per_cm == pytest.approx(11.7 / (2 * IRIS_R_HEAD), rel=1e-5)  # = 10 mm per head unit
    assert fit.eyeball_radius_cm == pytest.approx(1.2, rel=1e-5)
    np.testing.assert_allclose(fit.eyeball_center_cm, scene.centers, atol=1e-4)


@pytest.mark.parametrize("pose", [(0.0, 0.0, 0.0), (20.0, -10.0, 5.0), (-30.0, 12.0, -8.0)])
def test_gaze_angles_are_recovered(pose: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(7)
    n = 12
    gy, gp = rng.uniform(-25, 25, (n, 2)), rng.uniform(-20, 20, (n, 2))
    gp[n // 2 :] = -gp[: n // 2]  # vertical gaze 0 in the median: primary gaze (see Scene)
    scene = Scene(n=n, yaw=pose[0], pitch=pose[1], roll=pose[2], gaze_yaw=gy, gaze_pitch=gp)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    np.testing.assert_allclose(fit.gaze_yaw_deg, gy, atol=GAZE_TOL_DEG)
    np.testing.assert_allclose(fit.gaze_pitch_deg, gp, atol=GAZE_TOL_DEG)
    assert np.abs(fit.gaze_yaw_deg - gy).max() < 0.01  # exact data


@pytest.mark.parametrize("pose", [(0.0, 0.0, 0.0), (20.0, -10.0, 5.0)])
def test_constant_squint_survives(pose: tuple[float, float, float]) -> None:
    # right eye straight ahead, left eye turned 15 deg toward the nose (head -x): esotropia
    scene = Scene(n=10, yaw=pose[0], pitch=pose[1], roll=pose[2], gaze_yaw=np.array([0.0, -15.0]))
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    np.testing.assert_allclose(fit.gaze_yaw_deg[:, 0], 0.0, atol=GAZE_TOL_DEG)
    np.testing.assert_allclose(fit.gaze_yaw_deg[:, 1], -15.0, atol=GAZE_TOL_DEG)
    np.testing.assert_allclose(fit.gaze_pitch_deg, 0.0, atol=GAZE_TOL_DEG)


def test_fast_eye_oscillation_is_not_smoothed() -> None:
    fps, n, f_hz, amp = 60.0, 60, 10.0, 5.0
    t = np.arange(n) / fps
    left = amp * np.sin(2 * np.pi * f_hz * t + 0.3)
    scene = Scene(n=n, fps=fps, gaze_yaw=np.stack([np.zeros(n), left], 1))
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    got = fit.gaze_yaw_deg[:, 1]
    np.testing.assert_allclose(got, left, atol=GAZE_TOL_DEG)
    np.testing.assert_allclose(fit.gaze_yaw_deg[:, 0], 0.0, atol=GAZE_TOL_DEG)  # the other eye stays
    spectrum = np.abs(np.fft.rfft(got)) * 2 / n
    freqs = np.fft.rfftfreq(n, 1 / fps)
    assert freqs[np.argmax(spectrum)] == pytest.approx(f_hz)
    assert spectrum.max() == pytest.approx(amp, rel=0.05)


def test_invalid_eye_frames_do_not_move_the_gaze() -> None:
    n = 9
    scene = Scene(n=n, gaze_yaw=np.array([10.0, -4.0]))
    valid = np.ones((n, 2), bool)
    valid[3:6, 0] = False  # right eye closed for three frames: its iris values are garbage
    iris = scene.iris_px()
    iris[3:6, 0] += 25.0
    fit = fit_face(scene.landmark_track(), scene.eye_track(iris_px=iris, valid=valid))
    np.testing.assert_allclose(fit.gaze_yaw_deg[:, 0], 10.0, atol=GAZE_TOL_DEG)
    np.testing.assert_allclose(fit.gaze_yaw_deg[:, 1], -4.0, atol=GAZE_TOL_DEG)
    np.testing.assert_allclose(fit.gaze_pitch_deg, 0.0, atol=GAZE_TOL_DEG)


# --- fit_face: lids --------------------------------------------------------------------------------


@pytest.mark.parametrize("pose", [(0.0, 0.0, 0.0), (20.0, -10.0, 5.0)])
def test_lid_heights_in_mm(pose: tuple[float, float, float]) -> None:
    upper = np.array([4.0, 2.5])
    lower = np.array([5.0, 6.0])
    scene = Scene(yaw=pose[0], pitch=pose[1], roll=pose[2], gaze_yaw=np.array([5.0, -10.0]),
                  upper_mm=upper, lower_mm=lower)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    np.testing.assert_allclose(fit.upper_lid_mm, np.broadcast_to(upper, (scene.n, 2)), atol=LID_TOL_MM)
    np.testing.assert_allclose(fit.lower_lid_mm, np.broadcast_to(lower, (scene.n, 2)), atol=LID_TOL_MM)


def test_closed_eye_lids_meet() -> None:
    # both margins at one point 1 mm below the iris centre: upper = -1 mm, lower = +1 mm
    scene = Scene(upper_mm=np.array([-1.0, 4.0]), lower_mm=np.array([1.0, 5.0]))
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    np.testing.assert_allclose(fit.upper_lid_mm[:, 0], -1.0, atol=LID_TOL_MM)
    np.testing.assert_allclose(fit.upper_lid_mm[:, 0], -fit.lower_lid_mm[:, 0], atol=1e-9)
    assert (fit.upper_lid_mm[:, 0] <= -fit.lower_lid_mm[:, 0] + 1e-9).all()


# --- model vs detection ----------------------------------------------------------------------------


def test_projected_model_matches_a_consistent_detection() -> None:
    scene = Scene(gaze_yaw=np.array([8.0, -12.0]), gaze_pitch=np.array([-5.0, 4.0]))
    eyes = scene.eye_track()
    track = scene.landmark_track()
    fit = fit_face(track, eyes)
    for i in range(scene.n):
        iris, up, lo = project_eye_model(fit, i)
        assert iris.shape == up.shape == lo.shape == (2, 2)
        np.testing.assert_allclose(iris, eyes.iris_center_px[i], atol=1e-3)
        np.testing.assert_allclose(up, eyes.upper_lid_px[i], atol=1e-3)
        np.testing.assert_allclose(lo, eyes.lower_lid_px[i], atol=1e-3)
    err = reconstruction_error_pct(fit, eyes, track)
    assert set(err) == {"eyeball_pct", "eyelid_pct"}
    assert err["eyeball_pct"] < 1e-3 and err["eyelid_pct"] < 1e-3


def test_reconstruction_error_of_a_sideways_lid_shift() -> None:
    # The model's lid sits straight above the iris in the face plane: a 3 px sideways (head-x)
    # shift of both upper lids is unreachable. Per frame: upper 3 px, lower 0, both eyes: mean 1.5 px.
    scene = Scene()
    eyes0 = scene.eye_track()
    ax = scene.face_plane_px(np.array([1.0, 0.0]))
    shift = 3.0 * ax / np.linalg.norm(ax)
    upper = eyes0.upper_lid_px.astype(np.float64) + shift
    eyes = scene.eye_track(upper_px=upper)
    track = scene.landmark_track()
    fit = fit_face(track, eyes)
    np.testing.assert_allclose(fit.upper_lid_mm, 4.5, atol=LID_TOL_MM)  # the height is unchanged
    err = reconstruction_error_pct(fit, eyes, track)
    expected = 100.0 * (3.0 + 0.0) / 2 / scene.interocular_px()  # mean of upper (3 px) and lower (0)
    assert err["eyelid_pct"] == pytest.approx(expected, rel=1e-3)
    assert err["eyeball_pct"] < 1e-3


def test_reconstruction_error_of_an_iris_beyond_the_eyeball_rim() -> None:
    # An iris 5 px outside the reach of the iris centre (radius s * orbit around the projected
    # eyeball centre) is fit at the gaze limit: off by 5 px plus what the limit keeps it from.
    # Only the right eye; the left is consistent. Frontal head and a sideways miss: the lids,
    # which follow the detected iris, keep their height, so the eyeball centres stay put.
    scene = Scene(yaw=0.0, pitch=0.0, roll=0.0)
    centre_px = scene.project(scene.centers)[:, :2]
    iris = scene.iris_px()
    reach = scene.scale * scene.radius * LIMBUS_DEPTH_RADII
    iris[:, 0] = centre_px[0] + (reach + 5.0) * np.array([-1.0, 0.0])
    eyes = scene.eye_track(iris_px=iris)
    track = scene.landmark_track()
    fit = fit_face(track, eyes)
    np.testing.assert_allclose(fit.gaze_yaw_deg[:, 0], -fitting.GAZE_LIMIT_DEG)
    miss = 5.0 + reach * (1.0 - np.sin(np.radians(fitting.GAZE_LIMIT_DEG)))
    err = reconstruction_error_pct(fit, eyes, track)
    assert err["eyeball_pct"] == pytest.approx(100.0 * miss / 2 / scene.interocular_px(), rel=1e-3)
    # lids follow the detected iris, and the model's lids hang off the model's iris: the same miss
    # for the right eye's two margins, 0 for the left
    assert err["eyelid_pct"] == pytest.approx(100.0 * miss / 2 / scene.interocular_px(), rel=1e-3)


def test_reconstruction_error_skips_unseen_irises() -> None:
    scene = Scene()
    valid = np.ones((scene.n, 2), bool)
    valid[:, 0] = False
    iris = scene.iris_px()
    iris[:, 0] += 40.0  # garbage where the iris was not seen
    eyes = scene.eye_track(iris_px=iris, valid=valid)
    track = scene.landmark_track()
    err = reconstruction_error_pct(fit_face(track, eyes), eyes, track)
    assert err["eyeball_pct"] < 1e-3  # the left eye only
    valid[:] = False
    eyes_none = scene.eye_track(iris_px=iris, valid=valid)
    err = reconstruction_error_pct(fit_face(track, eyes_none), eyes_none, track)
    assert np.isnan(err["eyeball_pct"])
    assert np.isfinite(err["eyelid_pct"])


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("n", [3, 7, 300])
def test_pose_smoothing_matches_scipys_gaussian_filter(sigma, n):
    """The pose filter is OpenCV's (scipy.ndimage costs ~0.4 s of start-up); same answer as scipy's."""
    from scipy.ndimage import gaussian_filter1d

    for x in (np.random.default_rng(n).normal(size=(n, 3)), np.random.default_rng(n).normal(size=n)):
        want = gaussian_filter1d(x, sigma, axis=0, mode="nearest")
        got = fitting._gaussian_along_frames(x, sigma)
        assert got.shape == x.shape
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_pose_lead_undoes_a_half_frame_landmark_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    """A head sliding at a steady 3 px a frame whose landmarks trail it by half a frame (as
    MediaPipe's filter does): read half a frame ahead, the pose is where the head was."""
    scene = Scene(n=20, yaw=10.0, pitch=-5.0, roll=0.0)
    track = scene.landmark_track()
    speed = np.array([3.0, -1.0, 0.0])
    lagged = track.points_px + ((np.arange(scene.n) - 0.5)[:, None, None] * speed).astype(np.float32)
    truth = scene.translation + np.arange(scene.n)[:, None] * speed
    inner = slice(5, -5)  # the Gaussian (radius 4 frames) holds the ends
    fit = fit_face(with_points(track, lagged), scene.eye_track())
    np.testing.assert_allclose(fit.translation_px[inner] - truth[inner], np.broadcast_to(-0.5 * speed, (10, 3)), atol=1e-3)
    monkeypatch.setattr(fitting, "POSE_LEAD_FRAMES", 0.5)
    fit = fit_face(with_points(track, lagged), scene.eye_track())
    np.testing.assert_allclose(fit.translation_px[inner], truth[inner], atol=1e-3)


def test_pose_lead_is_capped_on_a_fast_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """A head sliding 12 px (0.6 cm) a frame: half a frame would be 3 mm; the pose is read ahead by
    POSE_LEAD_MAX_CM (1 mm) along the motion instead (MediaPipe trails fast heads by about that)."""
    monkeypatch.setattr(fitting, "POSE_LEAD_FRAMES", 0.5)
    scene = Scene(n=20, yaw=0.0, pitch=0.0, roll=0.0)
    track = scene.landmark_track()
    speed = np.array([12.0, 0.0, 0.0])
    moving = track.points_px + (np.arange(scene.n)[:, None, None] * speed).astype(np.float32)
    fit = fit_face(with_points(track, moving), scene.eye_track())
    truth = scene.translation + np.arange(scene.n)[:, None] * speed
    ahead = fitting.POSE_LEAD_MAX_CM * scene.scale  # px
    np.testing.assert_allclose(fit.translation_px[5:-5] - truth[5:-5], np.broadcast_to([ahead, 0.0, 0.0], (10, 3)), atol=1e-3)


def test_pose_lead_stays_within_runs() -> None:
    x = np.array([0.0, 1.0, 2.0, 10.0, 20.0, 30.0, 5.0])
    ok = np.array([True, True, True, False, True, True, True])
    got = fitting._lead_runs(x, ok, 0.5)
    np.testing.assert_allclose(got, [0.5, 1.5, 2.5, 10.0, 25.0, 17.5, -7.5])


def test_rotation_vectors_round_trip_and_match_scipy():
    rot = Rotation.random(200, random_state=3)
    vecs = fitting._rotvecs(rot.as_matrix())
    np.testing.assert_allclose(vecs, rot.as_rotvec(), atol=1e-9)
    np.testing.assert_allclose(fitting._rotation_matrices(vecs), rot.as_matrix(), atol=1e-12)
