"""Renderer tests: real EGL rendering, known answers from the projection formulas."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from digital_mask.rendering import (
    EYEBALL_RADIUS_CM,
    AvatarRenderer,
    iris_centers_cm,
    neutral_avatar_frame,
    project_px,
)
from digital_mask.types import AvatarFrame

W, H = 480, 400
SCALE = 40.0  # px per cm
FRONTAL = np.diag([1.0, -1.0, -1.0])
POSITION_TOL_PX = 1.5


@pytest.fixture(scope="module")
def renderer():
    with AvatarRenderer(W, H) as r:
        yield r


def frame(**changes) -> AvatarFrame:
    base = AvatarFrame(
        tracked=True,
        rotation=FRONTAL,
        scale_px_per_cm=SCALE,
        translation_px=np.array([W / 2, 300.0, 0.0]),
        expression_cm=np.zeros((468, 3)),
        gaze_yaw_deg=np.zeros(2),
        gaze_pitch_deg=np.zeros(2),
        upper_lid_mm=np.array([4.0, 4.0]),
        lower_lid_mm=np.array([5.0, 5.0]),
    )
    return dataclasses.replace(base, **changes)


def rot_yaw_pitch(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = np.radians([yaw_deg, pitch_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return FRONTAL @ ry @ rx


def eye_box(f: AvatarFrame, eye: int, half_cm: float = 1.4) -> tuple[slice, slice]:
    c = project_px(f, iris_centers_cm(np.zeros(2), np.zeros(2))[eye] - [0, 0, EYEBALL_RADIUS_CM])
    h = half_cm * f.scale_px_per_cm
    return slice(max(0, int(c[1] - h)), int(c[1] + h)), slice(max(0, int(c[0] - h)), int(c[0] + h))


def pupil_center(img: np.ndarray, box: tuple[slice, slice]) -> np.ndarray | None:
    """Centroid (x, y) of the near-black pixels in a box; None when there are none."""
    crop = img[box].astype(int)
    ys, xs = np.nonzero(crop.max(axis=2) < 15)
    if len(xs) < 5:
        return None
    return np.array([xs.mean() + box[1].start, ys.mean() + box[0].start])


def eyeball_mask(img: np.ndarray) -> np.ndarray:
    """Sclera (light grey, shaded under the upper lid), iris (blue), pupil (black) or the neutral
    grey where the corneal highlight meets the pupil; skin, lashes, caruncle and pocket are
    red-brown or pink."""
    rgb = img.astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    sclera = ((rgb.min(axis=-1) > 100) & (abs(r - b) < 12)) | ((abs(r - b) <= 4) & (abs(r - g) <= 4))
    return sclera | (b > r + 10) | (rgb.max(axis=-1) < 15)


def test_output_shape_dtype_and_determinism(renderer):
    a = renderer.render(frame())
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    assert np.array_equal(a, renderer.render(frame()))


@pytest.mark.parametrize("yaw, pitch, gaze", [(0, 0, (0, 0)), (25, -10, (10, 5)), (-20, 15, (-15, -10))])
def test_pupils_land_where_the_projection_says(renderer, yaw, pitch, gaze):
    f = frame(rotation=rot_yaw_pitch(yaw, pitch), gaze_yaw_deg=np.full(2, float(gaze[0])),
              gaze_pitch_deg=np.full(2, float(gaze[1])))
    img = renderer.render(f)
    expected = project_px(f, iris_centers_cm(f.gaze_yaw_deg, f.gaze_pitch_deg))
    for eye in range(2):
        found = pupil_center(img, eye_box(f, eye, 2.0))
        assert found is not None, f"no pupil in eye {eye}"
        assert np.abs(found - expected[eye, :2]).max() < POSITION_TOL_PX, (eye, found, expected[eye])


def test_nose_tip_lands_where_the_projection_says(renderer):
    """Head turned 60 deg: the nose tip (vertex 4) is the face's right-most pixel in its row."""
    f = frame(rotation=rot_yaw_pitch(60, 0), scale_px_per_cm=20.0, translation_px=np.array([200.0, 200.0, 0.0]))
    img = renderer.render(f)
    background = renderer.render(frame(scale_px_per_cm=1e-3))[0, 0]
    face = np.any(img != background, axis=2)
    from digital_mask._template import build_template

    tip = project_px(f, build_template().vertices_cm[4])
    rightmost = np.flatnonzero(face[int(round(tip[1]))]).max()
    assert abs(rightmost - tip[0]) < 2.0


def test_gaze_yaw_moves_pupils_toward_head_plus_x(renderer):
    f0 = frame()
    f1 = frame(gaze_yaw_deg=np.array([20.0, 20.0]))
    img0, img1 = renderer.render(f0), renderer.render(f1)
    for eye in range(2):
        box = eye_box(f0, eye, 2.0)
        shift = pupil_center(img1, box) - pupil_center(img0, box)
        assert shift[0] == pytest.approx(1.2 * np.sin(np.radians(20)) * SCALE, abs=1.0)
        assert abs(shift[1]) < 0.7


def test_wink_closes_only_the_left_eye(renderer):
    img = renderer.render(frame(upper_lid_mm=np.array([4.0, -5.0]), lower_lid_mm=np.array([5.0, 5.0])))
    f = frame()
    right, left = (eyeball_mask(img[eye_box(f, e)]).sum() for e in range(2))
    assert right > 500
    assert left == 0


def test_both_closed_and_crossed_targets_show_no_eyeball(renderer):
    img = renderer.render(frame(upper_lid_mm=np.array([-3.0, 0.0]), lower_lid_mm=np.array([1.0, -2.0])))
    for e in range(2):
        assert eyeball_mask(img[eye_box(frame(), e)]).sum() == 0


def upper_margin_y(img: np.ndarray, f: AvatarFrame, eye: int) -> float:
    """Image y of the upper lid margin in the iris column: top edge of the eyeball pixels."""
    iris = project_px(f, iris_centers_cm(f.gaze_yaw_deg, f.gaze_pitch_deg))[eye]
    col = eyeball_mask(img[:, int(round(iris[0]))])
    y = int(round(iris[1]))
    while col[y - 1]:
        y -= 1
    return y - 0.5  # the margin lies between the last lid row and the first eyeball row


@pytest.mark.parametrize("yaw_deg", [0.0, 15.0])
def test_upper_lid_margin_sits_at_the_requested_height(renderer, yaw_deg):
    for upper_mm in (4.0, 1.0, 6.0):
        f = frame(upper_lid_mm=np.array([upper_mm, upper_mm]), gaze_yaw_deg=np.full(2, yaw_deg))
        img = renderer.render(f)
        iris = project_px(f, iris_centers_cm(f.gaze_yaw_deg, f.gaze_pitch_deg))
        for eye in range(2):
            expected = iris[eye, 1] - upper_mm / 10 * SCALE
            assert upper_margin_y(img, f, eye) == pytest.approx(expected, abs=POSITION_TOL_PX)


def test_lowering_the_upper_lid_3mm_moves_its_margin_3mm(renderer):
    hi = frame(upper_lid_mm=np.array([4.0, 4.0]))
    lo = frame(upper_lid_mm=np.array([4.0, 1.0]))  # one-sided ptosis
    img_hi, img_lo = renderer.render(hi), renderer.render(lo)
    assert upper_margin_y(img_lo, lo, 1) - upper_margin_y(img_hi, hi, 1) == pytest.approx(0.3 * SCALE, abs=1.0)
    assert upper_margin_y(img_lo, lo, 0) == upper_margin_y(img_hi, hi, 0)  # the other eye unchanged


def test_expression_moves_the_face_but_not_the_lid_margins(renderer):
    expr = np.zeros((468, 3))
    expr[:, 1] = 0.3  # everything up 3 mm (brows, mouth, cheeks)
    f0, f1 = frame(), frame(expression_cm=expr)
    img0, img1 = renderer.render(f0), renderer.render(f1)
    assert np.abs(img0.astype(int) - img1.astype(int)).sum() > 1000
    for e in range(2):
        assert np.array_equal(eyeball_mask(img0[eye_box(f0, e, 1.0)]), eyeball_mask(img1[eye_box(f1, e, 1.0)]))


def test_tracking_lost_and_nonfinite_frames_render_the_neutral_frame(renderer):
    neutral = renderer.neutral_frame()
    assert neutral.shape == (H, W, 3) and neutral.dtype == np.uint8
    assert np.array_equal(renderer.render(frame(tracked=False)), neutral)
    assert np.array_equal(renderer.render(frame(gaze_yaw_deg=np.array([np.nan, 0.0]))), neutral)
    untracked_face = neutral_avatar_frame(W, H)
    assert not np.array_equal(renderer.render(untracked_face), neutral)  # the text is there


def test_bad_shapes_are_rejected(renderer):
    with pytest.raises(ValueError, match="expression_cm"):
        renderer.render(frame(expression_cm=np.zeros((478, 3))))


def test_close_is_idempotent():
    r = AvatarRenderer(64, 64)
    r.close()
    r.close()


def test_two_renderers_do_not_disturb_each_other() -> None:
    from digital_mask.rendering import neutral_avatar_frame

    frame = neutral_avatar_frame(160, 120)
    with AvatarRenderer(160, 120) as first:
        before = first.render(frame)
        with AvatarRenderer(200, 100) as second:
            second.render(neutral_avatar_frame(200, 100))
            np.testing.assert_array_equal(first.render(frame), before)
