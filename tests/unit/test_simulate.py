"""Condition simulator: SPEC parsing, angle -> pixel conversion, and edits of drawn eyes.

The drawn eyes (``_synthetic``) have a known iris and lids, so a moved iris and a moved lid can be
measured back with the project's own ``eyes.measure_eye`` and compared with the request.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from _synthetic import SCLERA, DrawnEye, Scene, draw_face, face_points, mediapipe_points
from digital_mask import _eye_edit
from digital_mask.cli import app
from digital_mask.errors import InputError, OutputError
from digital_mask.eyes import measure_eye
from digital_mask.fitting import fit_face
from digital_mask.io import VideoWriter, write_png
from digital_mask.simulate import (
    LidShift,
    Nystagmus,
    Strabismus,
    angle_to_shift_px,
    condition_spec,
    gaze_outline,
    gaze_shift_px,
    parse_condition,
    prism_dioptres,
    simulate_video,
    truth_path_for,
)
from digital_mask.types import IRIS_DIAMETER_MM

SIZE = (400, 300)
SHIFT_TOL_PX = 0.5  # measured iris displacement vs requested (drawn eye, iris radius 10 px)
LID_TOL_PX = 0.75  # measured upper-lid displacement vs requested


# --------------------------------------------------------------------------------------------
# SPEC parsing
# --------------------------------------------------------------------------------------------
def test_parse_strabismus() -> None:
    c = parse_condition("strabismus:eye=left,dir=eso,deg=15")
    assert c == Strabismus(eye=1, direction="eso", deg=15.0)
    assert c.prism_dioptres == pytest.approx(26.795, abs=1e-3)


def test_parse_nystagmus_defaults_and_case() -> None:
    c = parse_condition(" Nystagmus: HZ=4, amp=3 ")
    assert c == Nystagmus(hz=4.0, amp_pp_deg=3.0, wave="pendular", axis="horizontal")
    c = parse_condition("nystagmus:hz=2.5,amp=6,wave=jerk,axis=vertical")
    assert (c.wave, c.axis) == ("jerk", "vertical")


@pytest.mark.parametrize("spec", ["ptosis:eye=right,mm=2.5", "retraction:eye=left,mm=2"])
def test_parse_lid_conditions(spec: str) -> None:
    c = parse_condition(spec)
    assert isinstance(c, LidShift)
    assert c.mrd1_change_mm == (-2.5 if c.name == "ptosis" else 2.0)


@pytest.mark.parametrize("spec", [
    "strabismus:eye=left,dir=eso,deg=15", "nystagmus:hz=4,amp=3,wave=jerk,axis=horizontal",
    "ptosis:eye=right,mm=2.5", "retraction:eye=left,mm=2",
])
def test_condition_spec_round_trips(spec: str) -> None:
    c = parse_condition(spec)
    assert parse_condition(condition_spec(c)) == c


@pytest.mark.parametrize(("spec", "message"), [
    ("squint:eye=left", "unknown condition"),
    ("strabismus:eye=left,dir=eso", "missing deg"),
    ("strabismus:eye=middle,dir=eso,deg=5", "eye='middle' unknown"),
    ("strabismus:eye=left,dir=sideways,deg=5", "dir='sideways' unknown"),
    ("strabismus:eye=left,dir=eso,deg=fifteen", "not a number"),
    ("strabismus:eye=left,dir=eso,deg=80", "out of range"),
    ("strabismus:eye=left,dir=eso,deg=-5", "out of range"),
    ("nystagmus:hz=4,amp=nan", "out of range"),
    ("ptosis:eye=left,mm=2,side=up", "unknown key 'side'"),
    ("ptosis:eye=left,mm", "not key=value"),
    ("ptosis:eye=left,mm=2,mm=3", "given twice"),
])
def test_bad_specs_are_input_errors(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_condition(spec)


# --------------------------------------------------------------------------------------------
# Angles, rulers and waveforms
# --------------------------------------------------------------------------------------------
def test_prism_dioptres() -> None:
    assert prism_dioptres(45.0) == pytest.approx(100.0)
    assert prism_dioptres(15.0) == pytest.approx(26.7949, abs=1e-4)


def test_angle_to_shift_px_uses_the_iris_orbit_of_a_12mm_eyeball_and_iris_ruler() -> None:
    # an iris of 11.7 px diameter -> 1 px per mm; its centre turns on sqrt(12^2 - 5.85^2) mm
    orbit = math.sqrt(12.0**2 - 5.85**2)
    assert angle_to_shift_px(15.0, IRIS_DIAMETER_MM / 2) == pytest.approx(orbit * math.sin(math.radians(15.0)))
    assert angle_to_shift_px(30.0, 10.0) == pytest.approx(orbit * 0.5 * 20.0 / 11.7)
    assert angle_to_shift_px(-15.0, 10.0) == pytest.approx(-angle_to_shift_px(15.0, 10.0))


def test_gaze_shift_reduces_to_the_simple_formula_for_a_frontal_head() -> None:
    scene = Scene(n=3, yaw=0.0, pitch=0.0, roll=0.0)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    radius_px = scene.scale * 0.585  # the scene's iris radius (IRIS_R_HEAD) in pixels
    for deg in (5.0, 15.0):
        shift = gaze_shift_px(fit, 0, 0, deg, 0.0)
        assert shift[0] == pytest.approx(angle_to_shift_px(deg, radius_px), rel=2e-3)
        assert abs(shift[1]) < 1e-6
    up = gaze_shift_px(fit, 0, 1, 0.0, 10.0)  # + pitch = up = image -y
    assert up[1] < 0 and abs(up[0]) < 1e-6


def test_a_turned_iris_is_drawn_narrower_along_its_turn() -> None:
    # frontal head, eyes straight ahead (the scene's): the limbus is seen cos(turn) as wide along
    # the turn and unchanged across it
    scene = Scene(n=2, yaw=0.0, pitch=0.0, roll=0.0)
    fit = fit_face(scene.landmark_track(), scene.eye_track())
    c30 = np.cos(np.radians(30.0))
    np.testing.assert_allclose(gaze_outline(fit, 0, 0, 30.0, 0.0), np.diag([c30, 1.0]), atol=2e-3)
    np.testing.assert_allclose(gaze_outline(fit, 0, 1, 0.0, -30.0), np.diag([1.0, c30]), atol=2e-3)
    np.testing.assert_allclose(gaze_outline(fit, 0, 0, 0.0, 0.0), np.eye(2), atol=1e-9)


@pytest.mark.parametrize(("yaw", "pitch", "gaze"), [(20.0, -10.0, 0.0), (-15.0, 5.0, 12.0)])
def test_gaze_shift_is_measured_back_exactly_by_fit_face(yaw: float, pitch: float, gaze: float) -> None:
    """Moving the iris by gaze_shift_px changes the fitted gaze by the requested angle, whatever
    the head pose and the natural gaze: the simulator and the measurement share one eyeball model."""
    scene = Scene(n=4, yaw=yaw, pitch=pitch, roll=5.0, gaze_yaw=gaze)
    eyes = scene.eye_track()
    base = fit_face(scene.landmark_track(), eyes)
    iris = scene.iris_px().copy()
    for i in range(scene.n):
        iris[i, 1] += gaze_shift_px(base, i, 1, -15.0, 0.0)
        iris[i, 0] += gaze_shift_px(base, i, 0, 0.0, 8.0)
    # the simulator moves the iris only: the lids stay where they were
    moved = fit_face(scene.landmark_track(),
                     scene.eye_track(iris_px=iris, upper_px=eyes.upper_lid_px, lower_px=eyes.lower_lid_px))
    np.testing.assert_allclose(moved.gaze_yaw_deg[:, 1] - base.gaze_yaw_deg[:, 1], -15.0, atol=0.05)
    # pitch: primary gaze is the middle of the lids, taken at the iris's depth; a turned iris moves
    # that depth a little, which under a strongly turned head moves the middle (0.2 deg here)
    np.testing.assert_allclose(moved.gaze_pitch_deg[:, 0] - base.gaze_pitch_deg[:, 0], 8.0, atol=0.25)
    np.testing.assert_allclose(moved.gaze_yaw_deg[:, 0], base.gaze_yaw_deg[:, 0], atol=0.05)


def test_strabismus_directions_follow_the_gaze_convention() -> None:
    # +yaw is toward the patient's left: nasal for the right eye, temporal for the left eye
    assert Strabismus(0, "eso", 10.0).gaze_offset_deg(0.0)[0].tolist() == [10.0, 0.0]
    assert Strabismus(1, "eso", 10.0).gaze_offset_deg(0.0)[0].tolist() == [0.0, -10.0]
    assert Strabismus(1, "exo", 10.0).gaze_offset_deg(0.0)[0].tolist() == [0.0, 10.0]
    assert Strabismus(0, "hyper", 4.0).gaze_offset_deg(0.0)[1].tolist() == [4.0, 0.0]
    assert Strabismus(0, "hypo", 4.0).gaze_offset_deg(0.0)[1].tolist() == [-4.0, 0.0]


@pytest.mark.parametrize("wave", ["pendular", "jerk"])
def test_nystagmus_waveform_amplitude_is_peak_to_peak(wave: str) -> None:
    n = Nystagmus(hz=4.0, amp_pp_deg=6.0, wave=wave)
    t = np.arange(0, 2.0, 1 / 2000)
    w = n.waveform(t)
    assert np.ptp(w) == pytest.approx(6.0, abs=0.02)
    assert abs(w.mean()) < 0.02
    spectrum = np.abs(np.fft.rfft(w))
    freqs = np.fft.rfftfreq(len(t), 1 / 2000)
    assert freqs[np.argmax(spectrum[1:]) + 1] == pytest.approx(4.0)


def test_jerk_nystagmus_has_a_slow_drift_and_a_fast_return() -> None:
    w = Nystagmus(hz=2.0, amp_pp_deg=4.0, wave="jerk").waveform(np.arange(0, 0.5, 0.001))
    v = np.diff(w) / 0.001  # deg/s
    slow, fast = v[v < 0], v[v > 0]
    assert len(slow) > 4 * len(fast)
    assert np.median(fast) == pytest.approx(-np.median(slow) * 0.85 / 0.15, rel=1e-3)
    y, p = Nystagmus(hz=2.0, amp_pp_deg=4.0, axis="vertical").gaze_offset_deg(0.1)
    assert y.tolist() == [0.0, 0.0] and p[0] == p[1] != 0.0


# --------------------------------------------------------------------------------------------
# Pixel edits of drawn eyes
# --------------------------------------------------------------------------------------------
def _eye(index: int, dx: float = 0.0, **kw: float) -> DrawnEye:
    cx = 140.0 if index == 0 else 260.0
    kw.setdefault("upper_h", 11.0)  # the lid covers the top of the iris (radius 10 px)
    return DrawnEye(cx=cx, cy=150.0, iris=(cx + dx, 151.0), outer_left=index == 0, **kw)  # type: ignore[arg-type]


def _scene(eye: DrawnEye, index: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = draw_face(SIZE, [eye])
    pts = face_points(SIZE)
    mediapipe_points(eye, index, pts)
    return rgb, pts


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("shift", [7.0, -5.5])
def test_move_iris_moves_a_drawn_iris_by_the_requested_shift(index: int, shift: float) -> None:
    eye = _eye(index)
    rgb, pts = _scene(eye, index)
    geom = _eye_edit.eye_geometry(pts, index)
    center, radius = _eye_edit.refine_iris(rgb, geom, np.array(eye.iris) + (1.5, -1.0), 10.5)
    assert np.hypot(*(center - eye.iris)) < 0.4 and radius == pytest.approx(10.0, abs=0.6)
    out = _eye_edit.move_iris(rgb, geom, center, radius, np.array([shift, 0.0]))
    assert out is not None and out.shape == rgb.shape and out.dtype == np.uint8

    moved = _eye(index, shift)
    pts_moved = face_points(SIZE)
    mediapipe_points(moved, index, pts_moved)  # where MediaPipe would put the moved eye
    before = measure_eye(rgb, pts, index)
    after = measure_eye(out, pts_moved, index)
    assert after.valid
    assert after.iris_center_px[0] - before.iris_center_px[0] == pytest.approx(shift, abs=SHIFT_TOL_PX)
    assert after.iris_center_px[1] == pytest.approx(before.iris_center_px[1], abs=SHIFT_TOL_PX)

    # the lids stay on top: nothing outside the opening changes
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(float)
    outside = (yy < eye.upper_y(xx) - 1.5) | (yy > eye.lower_y(xx) + 1.5) | (np.abs(xx - eye.cx) > eye.half_width + 1)
    assert np.array_equal(out[outside], rgb[outside])
    # and the result looks like the eye drawn with its iris there: the uncovered part is sclera
    truth = draw_face(SIZE, [moved])
    inside = ~outside
    diff = np.abs(out[inside].astype(float) - truth[inside].astype(float)).mean(axis=1)
    assert np.median(diff) < 6.0 and np.percentile(diff, 95) < 40.0
    old_only = inside & (np.hypot(xx - eye.iris[0], yy - eye.iris[1]) < 9) & (np.hypot(xx - moved.iris[0], yy - moved.iris[1]) > 12)
    assert np.abs(out[old_only].astype(float) - SCLERA).mean() < 12.0


@pytest.mark.parametrize("index", [0, 1])
def test_move_iris_with_an_outline_draws_the_turned_iris(index: int) -> None:
    # moved 7 px with the outline of a turn (0.8 as wide): the result looks like the eye drawn
    # with an ellipse 0.8 as wide there (DrawnEye's iris_aspect is height over width)
    eye = _eye(index)
    rgb, pts = _scene(eye, index)
    geom = _eye_edit.eye_geometry(pts, index)
    center, radius = _eye_edit.refine_iris(rgb, geom, np.array(eye.iris), 10.0)
    out = _eye_edit.move_iris(rgb, geom, center, radius, np.array([7.0, 0.0]), np.diag([0.8, 1.0]))
    assert out is not None
    turned = DrawnEye(cx=eye.cx, cy=eye.cy, upper_h=eye.upper_h, iris=(eye.iris[0] + 7.0, eye.iris[1]), iris_r=8.0,
                      iris_aspect=1.25, outer_left=eye.outer_left)
    round_ = _eye(index, 7.0)
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(float)
    inside = (yy > eye.upper_y(xx) + 1.5) & (yy < eye.lower_y(xx) - 1.5) & (np.abs(xx - eye.cx) < eye.half_width - 1)

    def mismatch(other: DrawnEye) -> float:
        return float(np.abs(out[inside].astype(float) - draw_face(SIZE, [other])[inside].astype(float)).mean())

    assert mismatch(turned) < 0.4 * mismatch(round_)  # achieved: 3.6 vs 17.8 grey levels


@pytest.mark.parametrize("index", [0, 1])
def test_move_iris_up_uncovers_sclera_below(index: int) -> None:
    """A raised iris (a hypertropia) slides under the upper lid and leaves sclera between its new
    bottom and the lower lid, which stays where MediaPipe puts it."""
    eye = _eye(index, lower_h=14.0)  # 3 px of sclera below the iris before the move
    rgb, pts = _scene(eye, index)
    geom = _eye_edit.eye_geometry(pts, index)
    out = _eye_edit.move_iris(rgb, geom, np.array(eye.iris), eye.iris_r, np.array([0.0, -4.0]))
    assert out is not None
    before = measure_eye(rgb, pts, index)
    after = measure_eye(out, pts, index)
    assert after.valid
    assert after.iris_center_px[1] - before.iris_center_px[1] == pytest.approx(-4.0, abs=SHIFT_TOL_PX)
    assert after.iris_center_px[0] == pytest.approx(before.iris_center_px[0], abs=SHIFT_TOL_PX)
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(float)
    uncovered = ((np.hypot(xx - eye.iris[0], yy - eye.iris[1]) < eye.iris_r - 1)
                 & (np.hypot(xx - eye.iris[0], yy - eye.iris[1] + 4.0) > eye.iris_r + 1.5)
                 & (yy < eye.lower_y(xx) - 1.5))
    assert uncovered.sum() > 10
    assert np.abs(out[uncovered].astype(float) - SCLERA).mean() < 15.0


def test_move_iris_fills_its_old_place_within_the_colours_of_the_visible_sclera() -> None:
    """An iris at the outer canthus leaves sclera on the inner side only; the sclera model, a
    quadratic fitted there (here: the drawn sclera shaded by an exact quadratic, darkening toward
    the iris), must not be carried across the iris's old place, where it would run to black."""
    eye = _eye(0, -17.0)  # iris from 3 px inside the outer corner: no sclera visible outside it
    rgb, pts = _scene(eye, 0)
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(float)
    sclera = ((np.abs(xx - eye.cx) < eye.half_width) & (yy > eye.upper_y(xx)) & (yy < eye.lower_y(xx))
              & (np.hypot(xx - eye.iris[0], yy - eye.iris[1]) > eye.iris_r + 1))
    shade = np.maximum(1.0 - 0.3 * ((xx - eye.cx - 12.0) / 18.0) ** 2, 0.6)  # 0.7 at the iris's inner edge
    rgb[sclera] = np.round(rgb[sclera] * shade[sclera][:, None]).astype(np.uint8)
    darkest_visible = float(np.mean(SCLERA)) * shade[sclera & (xx > eye.iris[0])].min()
    geom = _eye_edit.eye_geometry(pts, 0)
    out = _eye_edit.move_iris(rgb, geom, np.array(eye.iris), eye.iris_r, np.array([12.0, 0.0]))
    assert out is not None
    old_only = ((np.hypot(xx - eye.iris[0], yy - eye.iris[1]) < 8) & (np.hypot(xx - eye.iris[0] - 12, yy - eye.iris[1]) > 12)
                & (yy > eye.upper_y(xx) + 1.5) & (yy < eye.lower_y(xx) - 1.5))
    assert old_only.sum() > 20
    assert out[old_only].astype(float).mean() > 0.8 * darkest_visible


def test_move_iris_refuses_to_push_the_iris_into_the_corner() -> None:
    eye = _eye(0)
    rgb, pts = _scene(eye, 0)
    geom = _eye_edit.eye_geometry(pts, 0)
    assert _eye_edit.move_iris(rgb, geom, np.array(eye.iris), 10.0, np.array([26.0, 0.0])) is None


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("amount", [3.0, -3.0])
def test_shift_upper_lid_moves_the_measured_lid(index: int, amount: float) -> None:
    eye = _eye(index, upper_h=12.0)
    rgb, pts = _scene(eye, index)
    geom = _eye_edit.eye_geometry(pts, index)
    res = _eye_edit.shift_upper_lid(rgb, geom, np.array(eye.iris), 10.0, amount)
    assert res is not None
    out, applied = res
    assert applied == pytest.approx(amount)  # the iris is in the plateau of the lid profile
    shifted = _eye(index, upper_h=12.0 - amount)
    pts_shifted = face_points(SIZE)
    mediapipe_points(shifted, index, pts_shifted)
    before = measure_eye(rgb, pts, index)
    after = measure_eye(out, pts_shifted, index)
    assert after.valid
    assert after.upper_lid_px[1] - before.upper_lid_px[1] == pytest.approx(amount, abs=LID_TOL_PX)
    assert after.lower_lid_px[1] == pytest.approx(before.lower_lid_px[1], abs=LID_TOL_PX)
    assert after.iris_center_px == pytest.approx(before.iris_center_px, abs=SHIFT_TOL_PX)
    # corners and the skin far above the eye do not move
    assert np.array_equal(out[:100], rgb[:100])


def test_lid_profile_is_flat_in_the_middle_and_zero_at_the_corners() -> None:
    u = np.array([0.0, 0.3, -0.3, 0.65, 1.0, -1.0, 1.2])
    w = _eye_edit.lid_profile(u)
    np.testing.assert_allclose(w[:3], 1.0)
    assert 0.4 < w[3] < 0.6
    np.testing.assert_allclose(w[4:], 0.0, atol=1e-12)


def test_ptosis_never_closes_the_eye_past_the_lower_lid() -> None:
    eye = _eye(0)
    rgb, pts = _scene(eye, 0)
    geom = _eye_edit.eye_geometry(pts, 0)
    _, applied = _eye_edit.shift_upper_lid(rgb, geom, np.array(eye.iris), 10.0, 40.0)
    assert applied == pytest.approx(eye.upper_h + eye.lower_h - 1.0, abs=0.3)


def test_eye_geometry_is_none_without_a_face() -> None:
    assert _eye_edit.eye_geometry(np.full((478, 3), np.nan), 0) is None


# --------------------------------------------------------------------------------------------
# simulate_video: cheap checks before any heavy work
# --------------------------------------------------------------------------------------------
def _tiny_video(path, fps: int = 10) -> None:
    with VideoWriter(path, 64, 64, Fraction(1, fps), Fraction(fps)) as w:
        for i in range(3):
            w.write(np.full((64, 64, 3), 100 + i, np.uint8), i)


def test_truth_path_is_next_to_the_output(tmp_path) -> None:
    assert truth_path_for(tmp_path / "case.mp4") == tmp_path / "case.truth.json"


def test_simulate_rejects_a_photo(tmp_path) -> None:
    write_png(tmp_path / "p.png", np.zeros((80, 80, 3), np.uint8))
    with pytest.raises(InputError, match="needs a video"):
        simulate_video(tmp_path / "p.png", tmp_path / "o.mp4", "ptosis:eye=left,mm=2")


def test_simulate_never_overwrites_silently(tmp_path) -> None:
    _tiny_video(tmp_path / "in.mp4")
    (tmp_path / "out.mp4").write_bytes(b"x")
    with pytest.raises(OutputError, match="exists"):
        simulate_video(tmp_path / "in.mp4", tmp_path / "out.mp4", "ptosis:eye=left,mm=2")
    with pytest.raises(OutputError, match="overwrite the input"):
        simulate_video(tmp_path / "in.mp4", tmp_path / "in.mp4", "ptosis:eye=left,mm=2", overwrite=True)


def test_simulate_rejects_nystagmus_above_nyquist(tmp_path) -> None:
    _tiny_video(tmp_path / "in.mp4", fps=10)
    with pytest.raises(InputError, match="below half the frame rate"):
        simulate_video(tmp_path / "in.mp4", tmp_path / "o.mp4", "nystagmus:hz=6,amp=3")


def test_cli_simulate_bad_spec_is_one_error_line(tmp_path) -> None:
    _tiny_video(tmp_path / "in.mp4")
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.mp4"),
                                      "--condition", "squint:eye=left"])
    assert result.exit_code == 1
    assert "error:" in result.output and "unknown condition" in result.output
    assert not (tmp_path / "o.mp4").exists()
