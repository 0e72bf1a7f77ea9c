"""Eye-stage tests on drawn eyes: skin, an almond opening between two parabolic lids, a dark iris.

The MediaPipe points are placed where MediaPipe would put them, iris pulled 30 % toward the eye's
middle; the refined iris and lids are checked against the drawing.
"""

from __future__ import annotations

import numpy as np
import pytest

from _synthetic import DrawnEye, draw_face, face_points, mediapipe_points
from digital_mask.eyes import EyeSample, EyeTrackBuilder, measure_eye
from digital_mask.types import EyeTrack

SIZE = (400, 300)  # width, height
IRIS_TOL_PX = 1.0  # achieved: <= 0.21 px (centred 0.002 px)
LID_TOL_PX = 1.25  # achieved: 0.6-0.7 px centred, <= 1.05 px squinting (outward: the non-skin band is generous)


def eye_at(index: int, iris_dx: float = 0.0, iris_dy: float = 0.0, **kw: object) -> DrawnEye:
    """Eye 0 (patient's right) is image-left with its outer corner image-left; eye 1 mirrors it."""
    cx = 140.0 if index == 0 else 260.0
    return DrawnEye(cx=cx, cy=150.0, iris=(cx + iris_dx, 150.0 + iris_dy), outer_left=index == 0, **kw)  # type: ignore[arg-type]


def measure(eye: DrawnEye, index: int, **mp: float) -> EyeSample:
    rgb = draw_face(SIZE, [eye])
    pts = face_points(SIZE)
    mediapipe_points(eye, index, pts, **mp)
    return measure_eye(rgb, pts, index)


def lid_errors(eye: DrawnEye, s: EyeSample) -> tuple[float, float]:
    """Signed y error (px, + = down) of the measured lids against the drawn curves at their column."""
    up = s.upper_lid_px[1] - float(eye.upper_y(s.upper_lid_px[0]))
    lo = s.lower_lid_px[1] - float(eye.lower_y(s.lower_lid_px[0]))
    return up, lo


@pytest.mark.parametrize("index", [0, 1])
def test_measure_eye_smoke_shapes(index: int) -> None:
    s = measure(eye_at(index), index)
    assert isinstance(s, EyeSample)
    for name in ("iris_center_px", "upper_lid_px", "lower_lid_px", "mp_iris_center_px",
                 "mp_upper_lid_px", "mp_lower_lid_px"):
        v = getattr(s, name)
        assert v.shape == (2,) and np.isfinite(v).all(), name
    assert isinstance(s.valid, bool) and s.valid
    assert s.iris_radius_px == pytest.approx(10.0, abs=0.3)  # the drawn radius, from the limbus edges


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize(("dx", "dy"), [(0.0, 0.0), (-2.7, 1.4), (3.3, -0.6)])
def test_iris_centre_is_refined_to_the_drawn_one(index: int, dx: float, dy: float) -> None:
    eye = eye_at(index, dx, dy)
    s = measure(eye, index)
    assert s.valid
    err = np.linalg.norm(s.iris_center_px - np.array(eye.iris))
    assert err < IRIS_TOL_PX
    # MediaPipe's own (pulled) centre is reported unchanged
    mp = np.array(eye.iris) + 0.3 * (np.array([eye.cx, eye.cy]) - np.array(eye.iris))
    np.testing.assert_allclose(s.mp_iris_center_px, mp, atol=1e-9)


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_cornered_iris_is_found(index: int, side: float) -> None:
    # a squint: iris 17 px from the middle of a 60 px eye, partly under both lids; MediaPipe has
    # it 30 % of the way back toward the middle (5 px off)
    eye = eye_at(index, side * 17.0, -1.0 if side > 0 else 0.0)
    s = measure(eye, index)
    assert s.valid
    assert np.linalg.norm(s.iris_center_px - np.array(eye.iris)) < IRIS_TOL_PX
    assert np.linalg.norm(s.mp_iris_center_px - np.array(eye.iris)) > 4.0  # refinement mattered
    up, _ = lid_errors(eye, s)
    assert abs(up) < LID_TOL_PX


@pytest.mark.parametrize("index", [0, 1])
def test_lids_at_the_iris_column(index: int) -> None:
    eye = eye_at(index)
    s = measure(eye, index)
    # the lid points sit on the iris column
    assert s.upper_lid_px[0] == pytest.approx(s.iris_center_px[0], abs=1e-6)
    assert s.lower_lid_px[0] == pytest.approx(s.iris_center_px[0], abs=1e-6)
    up, lo = lid_errors(eye, s)
    assert abs(up) < LID_TOL_PX and abs(lo) < LID_TOL_PX
    # aperture: drawn 13 + 11 = 24 px at the middle
    assert s.lower_lid_px[1] - s.upper_lid_px[1] == pytest.approx(24.0, abs=2 * LID_TOL_PX)


@pytest.mark.parametrize("index", [0, 1])
def test_lids_of_an_iris_with_a_skin_coloured_ring(index: int) -> None:
    # A light iris's bright ring round the pupil reads as skin; the lids are still found beyond
    # the iris, not at the ring (without bridging the lower lid read 5.8 px inside the opening).
    eye = eye_at(index, skin_ring=True)
    s = measure(eye, index)
    up, lo = lid_errors(eye, s)
    assert abs(up) < LID_TOL_PX and abs(lo) < LID_TOL_PX


@pytest.mark.parametrize("index", [0, 1])
def test_upper_lid_is_measured_not_copied_from_mediapipe(index: int) -> None:
    # MediaPipe's upper lid 2.5 px too low (couples lids): the image decides
    eye = eye_at(index)
    s = measure(eye, index, upper_offset=2.5)
    assert s.mp_upper_lid_px[1] == pytest.approx(float(eye.upper_y(s.mp_upper_lid_px[0])) + 2.5, abs=1e-6)
    up, lo = lid_errors(eye, s)
    assert abs(up) < LID_TOL_PX and abs(lo) < LID_TOL_PX


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("offset", [-3.0, 3.0])
def test_lower_lid_is_measured_not_copied_from_mediapipe(index: int, offset: float) -> None:
    # MediaPipe's lower lid 3 px off either way (on rendered masks it sits low): the image decides
    eye = eye_at(index)
    s = measure(eye, index, lower_offset=offset)
    _, lo = lid_errors(eye, s)
    assert abs(lo) < LID_TOL_PX


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_lower_lid_of_a_cornered_iris(index: int, side: float) -> None:
    eye = eye_at(index, side * 17.0, -1.0 if side > 0 else 0.0)
    s = measure(eye, index)  # MediaPipe's lids exactly on the drawn ones
    _, lo = lid_errors(eye, s)
    assert abs(lo) < LID_TOL_PX


@pytest.mark.parametrize("index", [0, 1])
def test_closed_eye_is_invalid_and_lids_meet(index: int) -> None:
    cx = 140.0 if index == 0 else 260.0
    eye = DrawnEye(cx=cx, cy=150.0, upper_h=0.0, lower_h=0.0, iris=None, outer_left=index == 0)
    s = measure(eye, index, upper_offset=-1.0, lower_offset=1.0)
    assert not s.valid
    np.testing.assert_array_equal(s.upper_lid_px, s.lower_lid_px)
    assert s.upper_lid_px[1] == pytest.approx(150.0, abs=0.5)
    # iris values carried from MediaPipe
    np.testing.assert_allclose(s.iris_center_px, s.mp_iris_center_px, atol=1e-6)


def test_no_face_gives_nan_and_invalid() -> None:
    rgb = draw_face(SIZE, [])
    s = measure_eye(rgb, np.full((478, 3), np.nan), 0)
    assert not s.valid
    assert np.isnan(s.iris_center_px).all() and np.isnan(s.iris_radius_px)
    assert np.isnan(s.upper_lid_px).all() and np.isnan(s.lower_lid_px).all()


def test_eyes_are_measured_independently() -> None:
    # right eye looks straight, left eye is turned toward its outer corner: each is found
    right = eye_at(0)
    left = eye_at(1, 15.0)
    rgb = draw_face(SIZE, [right, left])
    pts = face_points(SIZE)
    mediapipe_points(right, 0, pts)
    mediapipe_points(left, 1, pts)
    for index, eye in ((0, right), (1, left)):
        s = measure_eye(rgb, pts, index)
        assert s.valid
        assert np.linalg.norm(s.iris_center_px - np.array(eye.iris)) < IRIS_TOL_PX


# --- EyeTrackBuilder ------------------------------------------------------------------------------


def test_builder_with_no_frames() -> None:
    track = EyeTrackBuilder().build()
    assert isinstance(track, EyeTrack)
    assert track.iris_center_px.shape == (0, 2, 2) and track.iris_radius_px.shape == (0, 2)
    assert track.upper_lid_px.shape == track.mp_lower_lid_px.shape == (0, 2, 2)
    assert track.valid.shape == (0, 2) and track.valid.dtype == bool


def test_builder_with_three_frames() -> None:
    right, left = eye_at(0), eye_at(1, -4.0)
    rgb = draw_face(SIZE, [right, left])
    pts = face_points(SIZE)
    mediapipe_points(right, 0, pts)
    mediapipe_points(left, 1, pts)
    builder = EyeTrackBuilder()
    builder.add(rgb, pts)
    builder.add(rgb, np.full((478, 3), np.nan))  # a frame without a face
    builder.add(rgb, pts)
    track = builder.build()
    assert len(track.valid) == 3
    for name in ("iris_center_px", "upper_lid_px", "lower_lid_px", "mp_iris_center_px",
                 "mp_upper_lid_px", "mp_lower_lid_px"):
        assert getattr(track, name).shape == (3, 2, 2) and getattr(track, name).dtype == np.float32, name
    assert track.iris_radius_px.shape == (3, 2) and track.iris_radius_px.dtype == np.float32
    np.testing.assert_array_equal(track.valid, [[True, True], [False, False], [True, True]])
    assert np.isnan(track.iris_center_px[1]).all()
    np.testing.assert_allclose(track.iris_center_px[0, 0], right.iris, atol=IRIS_TOL_PX)
    np.testing.assert_allclose(track.iris_center_px[2, 1], left.iris, atol=IRIS_TOL_PX)


@pytest.mark.parametrize("index", [0, 1])
def test_iris_radius_comes_from_the_limbus_not_mediapipe(index: int) -> None:
    # MediaPipe's iris 20 % too large (as on rendered faces): the ruler must follow the image
    eye = eye_at(index)
    rgb = draw_face(SIZE, [eye])
    pts = face_points(SIZE)
    mediapipe_points(eye, index, pts)
    centre = pts[468 + 5 * index, :2].copy()
    pts[469 + 5 * index : 473 + 5 * index, :2] = centre + 1.2 * (pts[469 + 5 * index : 473 + 5 * index, :2] - centre)
    s = measure_eye(rgb, pts, index)
    assert s.iris_radius_px == pytest.approx(eye.iris_r, abs=0.3)



def test_limbus_fit_finds_a_partly_covered_noisy_iris() -> None:
    # a blurred dark disc (radius 9-14 crop px) on a bright ground with pixel noise (SD 6 grey
    # levels), the lids hiding 30-70 % of its top and 20-50 % of its bottom radius; the fit
    # starts up to 1.5 px off in each direction
    import cv2

    from digital_mask.eyes import CROP_H, CROP_W, _fit_limbus

    rng = np.random.default_rng(1)
    ss = 8
    yy, xx = np.mgrid[0 : CROP_H * ss, 0 : CROP_W * ss]
    for _ in range(20):
        cx, cy, r = 40 + rng.uniform(-6, 6), 40 + rng.uniform(-2, 2), rng.uniform(9, 14)
        d = np.hypot((xx + 0.5) / ss - 0.5 - cx, (yy + 0.5) / ss - 0.5 - cy)
        img = np.where(d < r, 60.0, 200.0).reshape(CROP_H, ss, CROP_W, ss).mean((1, 3))
        img = cv2.GaussianBlur(img, (0, 0), 0.6) + rng.normal(0, 6, img.shape)
        rows = np.arange(CROP_H)
        use = ((rows >= cy - rng.uniform(0.3, 0.7) * r) & (rows <= cy + rng.uniform(0.5, 0.8) * r))[:, None]
        use = use & np.ones((1, CROP_W), bool)
        start = np.array([cx, cy]) + rng.uniform(-1.5, 1.5, 2)
        fit = _fit_limbus(img.astype(np.float32), use, start, r)
        assert fit is not None
        c = fit[0]
        assert abs(c[0] - cx) < 0.1 and abs(c[1] - cy) < 0.25  # achieved: 0.04 and 0.12 px


@pytest.mark.parametrize("index", [0, 1])
def test_iris_height_does_not_follow_a_retracted_lid(index: int) -> None:
    # A foreshortened iris (a head tilted 20 deg: 0.94 as tall as wide) under a lower lid that
    # covers its bottom. Under a normal upper lid its top is covered too; a retracted lid shows
    # sclera above it. A disc as tall as the iris is wide slid down into the lower lid there
    # (~1 px on our template's masks: a false vertical deviation of ~6 PD). Achieved: -0.20 / -0.08
    # px (the round disc: -0.47 / +0.73).
    heights = []
    for upper_h in (8.0, 16.0):  # iris top at 150 - 9.4: covered, then shown
        eye = eye_at(index, upper_h=upper_h, lower_h=7.0, iris_aspect=0.94)
        s = measure(eye, index)
        assert s.valid
        heights.append(s.iris_center_px[1] - eye.iris[1])
    assert all(abs(h) < 0.5 for h in heights), heights
    assert abs(heights[1] - heights[0]) < 0.4, heights


@pytest.mark.parametrize("toward", [-1.0, 1.0])
@pytest.mark.parametrize("turn_deg", [25.0, 35.0, 45.0])
def test_limbus_of_a_turned_iris_beside_a_dark_caruncle(turn_deg: float, toward: float) -> None:
    # An iris turned toward a canthus: an ellipse cos(turn) as wide as tall (r = 12 crop px), its
    # eyeball centre LIMBUS_ORBIT_RADII * r * sin(turn) behind it across; bright sclera on the open
    # side, a dark caruncle (grey 75, the iris 60) from the iris's edge to 4 px past it on the
    # canthus side, where the opening ends. A circle fit slides onto the caruncle; the refit as
    # an ellipse comes back toward the drawn centre.
    import cv2

    from digital_mask.eyes import CROP_H, CROP_W, LIMBUS_ORBIT_RADII, _fit_limbus, _refit_turned

    r, cy, ss = 12.0, 40.0, 8
    width = np.cos(np.radians(turn_deg))
    cx = 48.0 + toward * 8.0
    ball_x = cx - toward * LIMBUS_ORBIT_RADII * r * np.sin(np.radians(turn_deg))
    yy, xx = np.mgrid[0 : CROP_H * ss, 0 : CROP_W * ss]
    x, y = (xx + 0.5) / ss - 0.5, (yy + 0.5) / ss - 0.5
    inside = np.hypot((x - cx) / width, y - cy) < r
    beyond = toward * (x - cx) > width * r  # the canthus side, past the iris's widest point
    img = np.where(inside, 60.0, np.where(beyond, 75.0, 200.0)).reshape(CROP_H, ss, CROP_W, ss).mean((1, 3))
    img = cv2.GaussianBlur(img, (0, 0), 0.6) + np.random.default_rng(2).normal(0, 4, img.shape)
    cols = np.arange(CROP_W)
    use = (np.abs(np.arange(CROP_H) - cy) < 0.6 * r)[:, None] & (toward * (cols - cx) < width * r + 4)[None, :]
    gray = img.astype(np.float32)
    circle = _fit_limbus(gray, use, np.array([cx, cy]), r)
    assert circle is not None
    assert toward * (circle[0][0] - cx) > 0.6  # the circle slid toward the canthus
    refit = _refit_turned(gray, use, np.array([circle[0][0], cy]), circle[1], float(ball_x), r)
    # achieved: circle 1.8 / 2.1 / 3.3 px off at 25 / 35 / 45 deg, refit 0.2 / 0.4 / 1.4 (at 45 deg the
    # turn read from the circle's centre is too large, so the refit is narrower than the iris)
    assert abs(refit[0] - cx) < 0.45 * abs(circle[0][0] - cx)
    assert abs(refit[1] - cy) < 1e-9  # the height stays the one given
