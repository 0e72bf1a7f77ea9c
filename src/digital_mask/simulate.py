"""Condition simulator: edit a real face video so it shows an eye condition of known size.

A test instrument for the fidelity evaluation (issue 5): it turns an ordinary face video into a
case of strabismus, nystagmus, ptosis or lid retraction with known ground truth, written as JSON
next to the video. It edits the ORIGINAL pixels (its output shows the real person: treat it like
the input, never publish it unmasked).

Conditions (``parse_condition`` reads them from a SPEC string, see ``SPEC_HELP``):

* strabismus: one eye's iris moved within the eye opening by a constant angle of eyeball
  rotation, horizontal (eso = toward the nose, exo = toward the ear) or vertical (hyper = up,
  hypo = down). Truth: the deviation in degrees and prism dioptres (100 tan).
* nystagmus: both irises oscillate together at a frequency and peak-to-peak amplitude (degrees),
  pendular (sine) or jerk (linear slow drift over 85 % of the cycle, fast return in 15 %),
  horizontal or vertical, added to the natural gaze. Truth: the per-frame gaze offset.
* ptosis: one upper lid lowered by N mm over the iris. Truth: MRD1 change -N mm (per frame,
  at the iris column).
* retraction: one upper lid raised by N mm, uncovering sclera above the iris. Truth: +N mm.

How: pass 1 runs the project's own measurement (``pipeline.measure``: MediaPipe landmarks and the
image-based iris/lid measurement of ``eyes``) and ``fitting.fit_face`` on the input; pass 2 decodes
again and edits each frame locally (``_eye_edit``). Angles become pixels with the same eyeball
model the measurement uses: the fit's eyeball (radius 12 mm, its iris centre turning on 10.5 mm,
the 11.7 mm iris ruler, the fitted head pose), so a shift is ``project(iris at gaze + offset) -
project(iris at gaze)``; for a frontal head looking straight ahead this is
``10.5 mm * sin(angle) * 2 * iris_radius_px / 11.7``
(``angle_to_shift_px``). Millimetres of lid become pixels with the same ruler. The output is H.264
with the input's frame timestamps, no audio and no metadata (``io.VideoWriter``).

Truth JSON (``OUTPUT`` with suffix ``.truth.json``): the condition and its nominal size, and per
frame ``edited`` (per eye), ``shown`` (the condition is visible in this frame), the APPLIED gaze
offsets (deg) and upper-lid offsets (mm, + = lid higher = MRD1 larger), 0 where nothing was
applied, plus the source's own measurement (gaze, lids) so an evaluation can compare
measured-minus-source against the truth. Frames with no face, a closed eye (no iris found) or an
eye with no visible sclera are written unmodified and marked ``edited: false`` / ``shown: false``.

Limits (also in docs/simulate.md):

* Large angles push the iris into a canthus: an iris whose centre would come within 0.6 radii of a
  corner, or whose gaze would exceed 35 deg (before or after the shift), is not moved in that
  frame (``shown: false``); below that the lids clip it as they would a real eye.
* Vertical moves leave the lids where they were (a real lid follows vertical gaze partly).
* The corneal light reflex moves with the iris (a real deviated eye's reflex stays nearly put:
  the Hirschberg sign is not simulated).
* Closed or nearly closed eyes cannot be edited (no iris found): those frames are unmodified.
  A lowered lid never comes closer than 1 px to the lower lid (the truth records the capped value).
* The sclera fill is inpainted from the eye's own visible sclera (no vessels); lashes hanging
  over the moved iris's old place are replaced by sclera; hidden parts of the iris are mirrored
  from its visible part.
* The lid opening comes from MediaPipe's eye contour: where it is off by a pixel, a thin band of
  the old iris or of sclera can remain next to the lid margin.
* Small eyes (iris radius under ~8 px) edit and measure poorly.
* Measured back with this project's pipeline, a constant deviation reads 10-25 % low: MediaPipe
  moves its eye-contour landmarks partly with a moved iris and ``fit_face`` centres the eyeball
  behind them (a property of the measurement, not of the truth).
* The output is re-encoded (x264, crf 16 by default): one more compression generation.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _eye_edit
from .errors import InputError, NoFaceError
from .fitting import fit_face
from .io import VideoWriter, check_output_path, iter_frames, probe_video
from .types import EYE_NAMES, EYEBALL_RADIUS_MM, IRIS_DIAMETER_MM, LIMBUS_DEPTH_RADII, EyeTrack, FaceFit

log = logging.getLogger(__name__)

TRUTH_SCHEMA_VERSION = 1
TRUTH_SUFFIX = ".truth.json"
JERK_FAST_FRACTION = 0.15  # share of a jerk cycle taken by the fast (corrective) phase
MAX_GAZE_DEG = 35.0  # an iris is moved only while its gaze stays within this (before and after)

SPEC_HELP = """Condition SPEC: NAME:key=value,key=value (case-insensitive).

\b
strabismus:eye=left|right,dir=eso|exo|hyper|hypo,deg=D
  one eye turned by D deg (0 < D <= 45): eso = toward the nose,
  exo = toward the ear, hyper = up, hypo = down. Truth in deg and
  prism dioptres (100 tan D).
nystagmus:hz=F,amp=A[,wave=pendular|jerk][,axis=horizontal|vertical]
  both eyes oscillating at F Hz (below half the frame rate), A deg
  PEAK-TO-PEAK (0 < A <= 30), added to the natural gaze; defaults
  pendular, horizontal. jerk: slow drift toward the patient's right
  (or down), fast return toward the left (or up) in 15 % of a cycle.
ptosis:eye=left|right,mm=N
  that upper lid lowered by N mm (0 < N <= 6); truth MRD1 -N mm.
retraction:eye=left|right,mm=N
  that upper lid raised by N mm (0 < N <= 4), sclera showing above
  the iris; truth MRD1 +N mm.

\b
Examples: strabismus:eye=left,dir=eso,deg=15
          nystagmus:hz=4,amp=3,wave=jerk
          ptosis:eye=right,mm=2.5
          retraction:eye=left,mm=2"""

ProgressFn = Callable[[str, int, int], None]


# --------------------------------------------------------------------------------------------
# Conditions and their SPEC syntax
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Strabismus:
    """One eye deviated by ``deg`` degrees; direction eso/exo (horizontal) or hyper/hypo."""

    eye: int
    direction: str
    deg: float
    name: str = field(default="strabismus", init=False)

    @property
    def prism_dioptres(self) -> float:
        return prism_dioptres(self.deg)

    def gaze_offset_deg(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(yaw (2,), pitch (2,)) offsets in degrees added to each eye's gaze at ``time_s``."""
        yaw, pitch = np.zeros(2), np.zeros(2)
        nasal = 1.0 if self.eye == 0 else -1.0  # +yaw is toward the patient's left
        if self.direction == "eso":
            yaw[self.eye] = nasal * self.deg
        elif self.direction == "exo":
            yaw[self.eye] = -nasal * self.deg
        elif self.direction == "hyper":
            pitch[self.eye] = self.deg
        else:
            pitch[self.eye] = -self.deg
        return yaw, pitch


@dataclass(frozen=True, slots=True)
class Nystagmus:
    """Both eyes oscillating: ``hz``, ``amp_pp_deg`` peak-to-peak, pendular or jerk."""

    hz: float
    amp_pp_deg: float
    wave: str = "pendular"
    axis: str = "horizontal"
    name: str = field(default="nystagmus", init=False)

    def waveform(self, time_s: np.ndarray | float) -> np.ndarray:
        """Offset in degrees (peak-to-peak ``amp_pp_deg``, zero mean) at ``time_s``.

        Pendular: ``A/2 sin(2 pi f t)``. Jerk: from +A/2 down to -A/2 linearly over 85 % of the
        cycle (slow phase toward the patient's right / down), back up in the last 15 % (fast
        phase toward the patient's left / up).
        """
        t = np.asarray(time_s, np.float64)
        half = 0.5 * self.amp_pp_deg
        if self.wave == "pendular":
            return half * np.sin(2.0 * np.pi * self.hz * t)
        phase = np.mod(self.hz * t, 1.0)
        slow = 1.0 - JERK_FAST_FRACTION
        return np.where(phase < slow, half - self.amp_pp_deg * phase / slow,
                        -half + self.amp_pp_deg * (phase - slow) / JERK_FAST_FRACTION)

    def gaze_offset_deg(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        w = float(self.waveform(time_s))
        zero, both = np.zeros(2), np.full(2, w)
        return (both, zero) if self.axis == "horizontal" else (zero, both)


@dataclass(frozen=True, slots=True)
class LidShift:
    """One upper lid moved: ptosis (lowered by ``mm``) or retraction (raised by ``mm``)."""

    name: str
    eye: int
    mm: float

    @property
    def mrd1_change_mm(self) -> float:
        return -self.mm if self.name == "ptosis" else self.mm

    def gaze_offset_deg(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(2), np.zeros(2)


Condition = Strabismus | Nystagmus | LidShift

_KEYS = {
    "strabismus": {"eye", "dir", "deg"},
    "nystagmus": {"hz", "amp", "wave", "axis"},
    "ptosis": {"eye", "mm"},
    "retraction": {"eye", "mm"},
}
_REQUIRED = {
    "strabismus": {"eye", "dir", "deg"},
    "nystagmus": {"hz", "amp"},
    "ptosis": {"eye", "mm"},
    "retraction": {"eye", "mm"},
}


def _number(spec: str, key: str, value: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise InputError(f"condition {spec!r}: {key}={value!r} is not a number") from None
    if not (math.isfinite(x) and lo < x <= hi):
        raise InputError(f"condition {spec!r}: {key}={value} out of range; choose {lo:g} < {key} <= {hi:g}")
    return x


def _choice(spec: str, key: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise InputError(f"condition {spec!r}: {key}={value!r} unknown; choose one of {', '.join(options)}")
    return value


def parse_condition(spec: str) -> Condition:
    """Parse a SPEC (``SPEC_HELP``), e.g. ``strabismus:eye=left,dir=eso,deg=15``.

    Raises:
        InputError: unknown condition or key, missing key, bad value, value out of range.
    """
    text = spec.strip().lower()
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in _KEYS:
        raise InputError(f"condition {spec!r}: unknown condition {name!r}; choose one of {', '.join(_KEYS)} "
                         "(see 'digital-mask simulate --help')")
    params: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = (x.strip() for x in item.partition("="))
        if not eq or not value:
            raise InputError(f"condition {spec!r}: {item!r} is not key=value")
        if key not in _KEYS[name]:
            raise InputError(f"condition {spec!r}: unknown key {key!r} for {name}; keys: {', '.join(sorted(_KEYS[name]))}")
        if key in params:
            raise InputError(f"condition {spec!r}: {key} given twice")
        params[key] = value
    missing = _REQUIRED[name] - params.keys()
    if missing:
        raise InputError(f"condition {spec!r}: missing {', '.join(sorted(missing))} "
                         f"(e.g. {SPEC_EXAMPLES[name]})")
    if name == "strabismus":
        eye = EYE_NAMES.index(_choice(spec, "eye", params["eye"], EYE_NAMES))
        direction = _choice(spec, "dir", params["dir"], ("eso", "exo", "hyper", "hypo"))
        return Strabismus(eye, direction, _number(spec, "deg", params["deg"], 0.0, 45.0))
    if name == "nystagmus":
        return Nystagmus(
            hz=_number(spec, "hz", params["hz"], 0.0, 60.0),
            amp_pp_deg=_number(spec, "amp", params["amp"], 0.0, 30.0),
            wave=_choice(spec, "wave", params.get("wave", "pendular"), ("pendular", "jerk")),
            axis=_choice(spec, "axis", params.get("axis", "horizontal"), ("horizontal", "vertical")),
        )
    eye = EYE_NAMES.index(_choice(spec, "eye", params["eye"], EYE_NAMES))
    top = 6.0 if name == "ptosis" else 4.0
    return LidShift(name, eye, _number(spec, "mm", params["mm"], 0.0, top))


SPEC_EXAMPLES = {
    "strabismus": "strabismus:eye=left,dir=eso,deg=15",
    "nystagmus": "nystagmus:hz=4,amp=3,wave=pendular,axis=horizontal",
    "ptosis": "ptosis:eye=right,mm=2.5",
    "retraction": "retraction:eye=left,mm=2",
}


def condition_spec(condition: Condition) -> str:
    """The canonical SPEC string of a condition (``parse_condition`` reads it back)."""
    if isinstance(condition, Strabismus):
        return f"strabismus:eye={EYE_NAMES[condition.eye]},dir={condition.direction},deg={condition.deg:g}"
    if isinstance(condition, Nystagmus):
        return (f"nystagmus:hz={condition.hz:g},amp={condition.amp_pp_deg:g},wave={condition.wave},"
                f"axis={condition.axis}")
    return f"{condition.name}:eye={EYE_NAMES[condition.eye]},mm={condition.mm:g}"


# --------------------------------------------------------------------------------------------
# Angles and rulers
# --------------------------------------------------------------------------------------------
def prism_dioptres(deg: float) -> float:
    """Prism dioptres of an angle: 100 tan(angle)."""
    return 100.0 * math.tan(math.radians(deg))


def angle_to_shift_px(angle_deg: float | np.ndarray, iris_radius_px: float | np.ndarray) -> np.ndarray:
    """Image shift of the iris centre for an eyeball rotation from straight ahead, frontal head:
    ``10.5 mm * sin(angle)`` (the iris centre's orbit in a 12 mm eyeball) at
    ``2 * iris_radius_px / 11.7`` px per mm (the iris ruler)."""
    px_per_mm = 2.0 * np.asarray(iris_radius_px, np.float64) / IRIS_DIAMETER_MM
    return EYEBALL_RADIUS_MM * LIMBUS_DEPTH_RADII * np.sin(np.radians(angle_deg)) * px_per_mm


def _gaze_vector(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([math.sin(y) * math.cos(p), math.sin(p), math.cos(y) * math.cos(p)])


def gaze_shift_px(fit: FaceFit, i: int, eye: int, d_yaw_deg: float, d_pitch_deg: float) -> np.ndarray:
    """Image shift (2,) px of one iris centre when its gaze changes by (d_yaw, d_pitch) degrees,
    from the fitted eyeball model of frame ``i`` (head pose, eyeball radius, measured gaze).
    Reduces to ``angle_to_shift_px`` for a frontal head gazing straight ahead."""
    yaw, pitch = float(fit.gaze_yaw_deg[i, eye]), float(fit.gaze_pitch_deg[i, eye])
    g0 = _gaze_vector(yaw, pitch)
    g1 = _gaze_vector(yaw + d_yaw_deg, pitch + d_pitch_deg)
    d_head = fit.iris_orbit_cm * (g1 - g0)
    d_img = fit.scale_px_per_cm[i] * fit.rotation[i] @ d_head
    return d_img[:2]


def gaze_outline(fit: FaceFit, i: int, eye: int, d_yaw_deg: float, d_pitch_deg: float) -> np.ndarray:
    """(2, 2) linear map of one iris's outline (image px, about its centre) when its gaze changes by
    (d_yaw, d_pitch) degrees. The limbus, a circle on the eyeball, is seen as an ellipse: squeezed
    to cos(angle to the camera's axis) along the image direction the eye turns to. The map undoes
    the squeeze at the measured gaze and applies the one at the new gaze (identity for a frontal
    head and eye)."""
    yaw, pitch = float(fit.gaze_yaw_deg[i, eye]), float(fit.gaze_pitch_deg[i, eye])

    def squeeze(gaze_head: np.ndarray) -> np.ndarray:
        n = fit.rotation[i] @ gaze_head  # image axes (z away from the camera)
        across = float(np.hypot(n[0], n[1]))
        if across < 1e-9:
            return np.eye(2)
        d = n[:2] / across
        return np.eye(2) + (abs(float(n[2])) - 1.0) * np.outer(d, d)

    before = squeeze(_gaze_vector(yaw, pitch))
    return squeeze(_gaze_vector(yaw + d_yaw_deg, pitch + d_pitch_deg)) @ np.linalg.inv(before)


def px_per_mm(fit: FaceFit, i: int) -> float:
    """Image pixels per millimetre in frame ``i``: the fit's per-video iris ruler at this head scale."""
    return float(fit.scale_px_per_cm[i] / fit.mm_per_cm)


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SimulationResult:
    """The simulated video, its truth file and what it holds.

    truth: the JSON content written to ``truth_path``.
    frames: decoded (= written) frames; frames_shown: frames where the condition is visible.
    stages_ms_per_frame: measure (pass 1: decode, track, eyes), fit, edit, encode.
    """

    output: Path
    truth_path: Path
    truth: dict
    frames: int
    frames_shown: int
    wall_s: float
    fps: float
    stages_ms_per_frame: dict[str, float]


def truth_path_for(output_path: Path | str) -> Path:
    """``case.mp4`` -> ``case.truth.json``."""
    return Path(output_path).with_suffix(TRUTH_SUFFIX)


def _eyes_needed(condition: Condition) -> tuple[int, ...]:
    return (0, 1) if isinstance(condition, Nystagmus) else (condition.eye,)


def edit_frame(rgb: np.ndarray, points_px: np.ndarray, eyes: EyeTrack, fit: FaceFit, i: int,
               condition: Condition, time_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply ``condition`` to one frame.

    Args:
        rgb: (H, W, 3) uint8 original frame ``i``; points_px: its (478, 3) landmarks.
        eyes, fit: pass-1 measurement and reconstruction of the whole video.
        time_s: the frame's time (nystagmus phase).

    Returns:
        (edited frame, edited (2,) bool, yaw offset (2,) deg, pitch offset (2,) deg, upper-lid
        offset (2,) mm), offsets as applied (0 where an eye was not edited).
    """
    edited = np.zeros(2, bool)
    d_yaw, d_pitch, d_lid = np.zeros(2), np.zeros(2), np.zeros(2)
    if not fit.tracked[i]:
        return rgb, edited, d_yaw, d_pitch, d_lid
    yaw, pitch = condition.gaze_offset_deg(time_s)
    out = rgb
    for e in _eyes_needed(condition):
        if not eyes.valid[i, e]:
            continue
        # the measured lower lid caps a lowered upper lid; an iris move uses MediaPipe's (the
        # measured one can run through the iris: docs/simulate.md, "Accuracy")
        lower = eyes.lower_lid_px[i, e] if isinstance(condition, LidShift) else None
        geom = _eye_edit.eye_geometry(points_px, e, upper_lid_px=eyes.upper_lid_px[i, e], lower_lid_px=lower)
        if geom is None:
            continue
        center, radius = _eye_edit.refine_iris(rgb, geom, eyes.iris_center_px[i, e].astype(np.float64),
                                               float(eyes.iris_radius_px[i, e]))
        if isinstance(condition, LidShift):
            amount = condition.mm * px_per_mm(fit, i) * (1.0 if condition.name == "ptosis" else -1.0)
            res = _eye_edit.shift_upper_lid(out, geom, center, radius, amount)
            if res is None:
                continue
            out, applied_px = res
            d_lid[e] = -applied_px / px_per_mm(fit, i)
        else:
            if yaw[e] == 0.0 and pitch[e] == 0.0:
                edited[e] = True  # nothing to move at this instant (e.g. a zero crossing)
                continue
            y0, p0 = float(fit.gaze_yaw_deg[i, e]), float(fit.gaze_pitch_deg[i, e])
            if max(abs(y0), abs(p0), abs(y0 + yaw[e]), abs(p0 + pitch[e])) > MAX_GAZE_DEG:
                continue  # the iris is (or would be) deep in a corner: not editable, not measurable
            shift = gaze_shift_px(fit, i, e, float(yaw[e]), float(pitch[e]))
            outline = gaze_outline(fit, i, e, float(yaw[e]), float(pitch[e]))
            moved = _eye_edit.move_iris(out, geom, center, radius, shift, outline)
            if moved is None:
                continue
            out = moved
            d_yaw[e], d_pitch[e] = yaw[e], pitch[e]
        edited[e] = True
    return out, edited, d_yaw, d_pitch, d_lid


def _condition_json(condition: Condition) -> dict:
    d: dict[str, object] = {"name": condition.name, "spec": condition_spec(condition)}
    if isinstance(condition, Strabismus):
        d.update(eye=EYE_NAMES[condition.eye], direction=condition.direction, deviation_deg=condition.deg,
                 deviation_prism_dioptres=round(condition.prism_dioptres, 4),
                 axis="horizontal" if condition.direction in ("eso", "exo") else "vertical")
    elif isinstance(condition, Nystagmus):
        d.update(frequency_hz=condition.hz, amplitude_pp_deg=condition.amp_pp_deg, waveform=condition.wave,
                 axis=condition.axis, eyes=list(EYE_NAMES))
    else:
        d.update(eye=EYE_NAMES[condition.eye], lid="upper", mm=condition.mm, mrd1_change_mm=condition.mrd1_change_mm)
    return d


def _r(a: np.ndarray, nd: int = 4) -> list:
    return np.round(np.asarray(a, np.float64), nd).tolist()


def simulate_video(
    input_path: Path | str,
    output_path: Path | str,
    condition: Condition | str,
    *,
    overwrite: bool = False,
    crf: int = 16,
    preset: str = "veryfast",
    progress: ProgressFn | None = None,
) -> SimulationResult:
    """Write a copy of a face video edited to show ``condition``, and its ground truth JSON.

    Args:
        input_path: a real face video (not a photo); never modified.
        output_path: the simulated video (H.264 MP4, same size and frame timestamps, no audio
            or metadata); the truth goes to ``truth_path_for(output_path)``.
        condition: a ``Condition`` or a SPEC string (``SPEC_HELP``).
        overwrite: replace existing outputs (never the input).
        crf, preset: x264 settings of the re-encode.
        progress: optional callback ``(stage, done, total)``.

    Returns:
        SimulationResult (paths, truth, frame counts, timings).

    Raises:
        InputError: bad SPEC, unreadable input, a photo, a frequency at or above half the
            frame rate, or an eye the condition needs never measurable (closed throughout).
        NoFaceError: no usable face anywhere.
        OutputError: an output exists (without ``overwrite``) or is the input.
    """
    from .pipeline import measure  # the project's own pass 1 (tracking + eye measurement)

    t0 = time.perf_counter()
    cond = parse_condition(condition) if isinstance(condition, str) else condition
    src, dst = Path(input_path), Path(output_path)
    truth_file = truth_path_for(dst)
    info = probe_video(src)
    if info.is_image:
        raise InputError(f"{src.name}: simulate needs a video, not a photo")
    if truth_file == dst:
        raise InputError(f"{dst.name}: the output must not end in {TRUTH_SUFFIX}")
    check_output_path(src, dst, overwrite=overwrite)
    check_output_path(src, truth_file, overwrite=overwrite)
    if isinstance(cond, Nystagmus) and info.average_rate and cond.hz >= 0.5 * float(info.average_rate):
        raise InputError(f"{src.name}: nystagmus at {cond.hz:g} Hz cannot be shown at {float(info.average_rate):.3g} "
                         "frames/s; choose a frequency below half the frame rate")
    stages = dict.fromkeys(("measure", "fit", "edit", "encode"), 0.0)

    track, eyes = measure(src, progress)
    stages["measure"] = time.perf_counter() - t0
    if not track.found.any():
        raise NoFaceError(f"{src.name}: no face found in any of its {len(track.found)} frames; nothing written")
    t1 = time.perf_counter()
    try:
        fit = fit_face(track, eyes)
    except NoFaceError as exc:
        raise NoFaceError(f"{src.name}: {exc}; nothing written") from exc
    stages["fit"] = time.perf_counter() - t1
    need = list(_eyes_needed(cond))
    usable = fit.tracked[:, None] & eyes.valid[:, need]
    if not usable.any():
        raise InputError(f"{src.name}: the {'/'.join(EYE_NAMES[e] for e in need)} eye is never measurable "
                         "(closed or not found in every frame); nothing written")

    n = len(track.found)
    edited = np.zeros((n, 2), bool)
    d_yaw, d_pitch, d_lid = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2))
    with VideoWriter(dst, info.width, info.height, info.time_base, info.average_rate, crf=crf, preset=preset) as writer:
        for frame in iter_frames(src):
            i = frame.index
            if i >= n:  # decoding is deterministic; guard anyway
                break
            t_e = time.perf_counter()
            rgb, edited[i], d_yaw[i], d_pitch[i], d_lid[i] = edit_frame(
                frame.rgb, track.points_px[i], eyes, fit, i, cond, float(track.timestamps_s[i]))
            t_w = time.perf_counter()
            writer.write(rgb, frame.pts)
            stages["edit"] += t_w - t_e
            stages["encode"] += time.perf_counter() - t_w
            if progress:
                progress("simulate", i + 1, n)
    shown = edited[:, need].all(axis=1)
    truth = {
        "schema_version": TRUTH_SCHEMA_VERSION,
        "input": src.name,
        "output": dst.name,
        "condition": _condition_json(cond),
        "units": {"gaze": "deg, yaw + toward the patient's left, pitch + up",
                  "lid": "mm, upper-lid offset + = lid higher (MRD1 larger)", "time": "s from stream start"},
        "frames": n,
        "frames_shown": int(shown.sum()),
        "frames_edited": {EYE_NAMES[e]: int(edited[:, e].sum()) for e in range(2)},
        "per_frame": {
            "time_s": _r(track.timestamps_s, 6),
            "shown": shown.tolist(),
            "edited": edited.tolist(),
            "gaze_yaw_offset_deg": _r(d_yaw),
            "gaze_pitch_offset_deg": _r(d_pitch),
            "upper_lid_offset_mm": _r(d_lid),
        },
        "source_measurement": {
            "note": "the input measured by pipeline.measure + fitting.fit_face (same code as an evaluation)",
            "tracked": fit.tracked.tolist(),
            "eye_valid": eyes.valid.tolist(),
            "gaze_yaw_deg": _r(fit.gaze_yaw_deg, 3),
            "gaze_pitch_deg": _r(fit.gaze_pitch_deg, 3),
            "upper_lid_mm": _r(fit.upper_lid_mm, 3),
            "lower_lid_mm": _r(fit.lower_lid_mm, 3),
        },
    }
    tmp = truth_file.with_name(f".{truth_file.name}.partial")
    tmp.write_text(json.dumps(truth) + "\n")
    tmp.replace(truth_file)
    wall = time.perf_counter() - t0
    log.info("%s: %s on %d of %d frames", dst.name, cond.name, int(shown.sum()), n)
    return SimulationResult(
        output=dst, truth_path=truth_file, truth=truth, frames=n, frames_shown=int(shown.sum()),
        wall_s=round(wall, 3), fps=round(n / wall, 2),
        stages_ms_per_frame={k: round(1000.0 * v / max(n, 1), 2) for k, v in stages.items()},
    )


__all__ = [
    "SPEC_HELP", "Condition", "LidShift", "Nystagmus", "SimulationResult", "Strabismus", "angle_to_shift_px",
    "condition_spec", "edit_frame", "gaze_outline", "gaze_shift_px", "parse_condition", "prism_dioptres", "simulate_video",
    "truth_path_for",
]
