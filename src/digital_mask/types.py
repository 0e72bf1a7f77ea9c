"""Typed values passed between the pipeline stages.

Conventions (see docs/conventions.md): image x right, y down, in pixels; point arrays are
``(..., K, 2|3)``; images are RGB uint8 ``(H, W, 3)``; "right"/"left" are the patient's own
(eye index 0 = right eye, image-left in a non-mirrored video; 1 = left eye); time is seconds
from stream start, taken from frame pts. T is the number of decoded frames: a frame without a
face is data (NaN and a False flag), never dropped.

Head coordinates are MediaPipe's canonical face model: centimetres, x toward the patient's left
(image right), y up, z toward the viewer. A head pose maps them to image coordinates
(x right, y down, z away from the viewer, pixels) as ``p_img = scale * R @ p_head + t``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction

import numpy as np

RIGHT, LEFT = 0, 1
EYE_NAMES = ("right", "left")
IRIS_DIAMETER_MM = 11.7  # horizontal visible iris diameter: the clinicians' ruler
EYEBALL_RADIUS_MM = 12.0
# The iris centre (the centre of the limbus circle) lies inside the eyeball, on the chord the iris
# spans: it turns on sqrt(12^2 - 5.85^2) = 10.5 mm, not 12 (a 12 mm model reads 13 deg for 15).
LIMBUS_DEPTH_RADII = float(np.sqrt(1.0 - (IRIS_DIAMETER_MM / 2.0 / EYEBALL_RADIUS_MM) ** 2))


def check_shape(array: np.ndarray, shape: tuple[int | None, ...], *, name: str) -> None:
    """Raise ValueError naming the array when its shape does not match (None = any)."""
    ok = array.ndim == len(shape) and all(e is None or e == a for e, a in zip(shape, array.shape))
    if not ok:
        expected = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(array.shape)}")


def _freeze(obj: object) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            value.flags.writeable = False


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What ``io.probe_video`` learns about an input before any heavy work.

    width, height: display size of the decoded frames in pixels.
    time_base:     time base of the video stream (pts unit, seconds).
    average_rate:  nominal frames per second, None when unknown.
    frame_count:   frame count declared by the container (0 = unknown; decode to know).
    codec:         decoder name, e.g. "h264".
    has_audio:     the container has an audio stream (never copied to an output).
    is_image:      True for a still photo (one frame, pts 0).
    """

    width: int
    height: int
    time_base: Fraction
    average_rate: Fraction | None
    frame_count: int
    codec: str
    has_audio: bool
    is_image: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. Only tracking and eye measurement ever see one.

    index:  0-based decode order.
    pts:    presentation timestamp in units of ``VideoInfo.time_base``.
    time_s: pts in seconds from stream start.
    rgb:    (H, W, 3) uint8.
    """

    index: int
    pts: int
    time_s: float
    rgb: np.ndarray


@dataclass(frozen=True, slots=True)
class LandmarkTrack:
    """MediaPipe landmarks of the main face across a video.

    timestamps_s: (T,) float64 seconds from stream start.
    pts:          (T,) int64 stream pts (for writing the output with identical timing).
    points_px:    (T, 478, 3) float32; x, y in image pixels, z in the same pixel scale (away from
                  the viewer positive); NaN where no face.
    found:        (T,) bool.
    image_size:   (width, height) in pixels.
    """

    timestamps_s: np.ndarray
    pts: np.ndarray
    points_px: np.ndarray
    found: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.timestamps_s)
        check_shape(self.pts, (n,), name="pts")
        check_shape(self.points_px, (n, 478, 3), name="points_px")
        check_shape(self.found, (n,), name="found")
        _freeze(self)


@dataclass(frozen=True, slots=True)
class EyeTrack:
    """Image-based measurement of both eyes, per frame. Index 0 = right eye, 1 = left eye.

    iris_center_px: (T, 2, 2) float32 refined iris (limbus) centre, pixels.
    iris_radius_px: (T, 2) float32 refined iris radius, pixels.
    upper_lid_px:   (T, 2, 2) float32 upper lid margin point above the iris centre.
    lower_lid_px:   (T, 2, 2) float32 lower lid margin point below the iris centre.
    mp_iris_center_px, mp_upper_lid_px, mp_lower_lid_px: the same from MediaPipe alone (the
                    starting point), to report how much refinement changed.
    valid:          (T, 2) bool, False where the eye could not be measured (no face, eye closed
                    hides the iris: then iris values are carried from MediaPipe).
    """

    iris_center_px: np.ndarray
    iris_radius_px: np.ndarray
    upper_lid_px: np.ndarray
    lower_lid_px: np.ndarray
    mp_iris_center_px: np.ndarray
    mp_upper_lid_px: np.ndarray
    mp_lower_lid_px: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.valid)
        for name in ("iris_center_px", "upper_lid_px", "lower_lid_px", "mp_iris_center_px",
                     "mp_upper_lid_px", "mp_lower_lid_px"):
            check_shape(getattr(self, name), (n, 2, 2), name=name)
        check_shape(self.iris_radius_px, (n, 2), name="iris_radius_px")
        check_shape(self.valid, (n, 2), name="valid")
        _freeze(self)


@dataclass(frozen=True, slots=True)
class AvatarFrame:
    """Everything the renderer needs for one output frame, and nothing of the patient's looks.

    tracked:        False renders a neutral frame marked "tracking lost".
    rotation:       (3, 3) head rotation, head coordinates -> image axes.
    scale_px_per_cm: head scale.
    translation_px: (3,) image position of the head origin.
    expression_cm:  (468, 3) non-rigid motion added to the template's vertices, head coordinates.
                    The renderer drives the eye openings itself and ignores it there.
    gaze_yaw_deg:   (2,) eyeball rotation about the head's y axis, positive toward the patient's
                    left (head +x).
    gaze_pitch_deg: (2,) eyeball rotation, positive up.
    upper_lid_mm:   (2,) height of the upper lid margin above the iris centre (MRD1-like).
    lower_lid_mm:   (2,) depth of the lower lid margin below the iris centre (MRD2-like).
                    A closed eye has upper_lid_mm <= -lower_lid_mm.
    """

    tracked: bool
    rotation: np.ndarray
    scale_px_per_cm: float
    translation_px: np.ndarray
    expression_cm: np.ndarray
    gaze_yaw_deg: np.ndarray
    gaze_pitch_deg: np.ndarray
    upper_lid_mm: np.ndarray
    lower_lid_mm: np.ndarray


@dataclass(frozen=True, slots=True)
class FaceFit:
    """The 3D reconstruction of a whole video: head, face motion, eyelids, eyeballs.

    timestamps_s:   (T,) float64; pts: (T,) int64 (as in LandmarkTrack).
    tracked:        (T,) bool: a trustworthy fit; False frames render as "tracking lost".
    rotation:       (T, 3, 3) float64 head rotation (head -> image axes), smoothed.
    scale_px_per_cm: (T,) float64.
    translation_px: (T, 3) float64.
    expression_cm:  (T, 468, 3) float32 landmarks minus the patient's own neutral shape,
                    in head coordinates (the neutral shape itself is never stored).
    gaze_yaw_deg, gaze_pitch_deg: (T, 2) float64 per-eye eyeball rotation, unsmoothed.
    upper_lid_mm, lower_lid_mm:   (T, 2) float64 lid margins relative to the iris centre.
    residual_px:    (T,) float64 RMS distance of the rigid fit to the landmarks.
    image_size:     (width, height).
    eyeball_center_cm: (2, 3) per-video eyeball centres, head coordinates (for accuracy checks;
                    never passed to the renderer).
    eyeball_radius_cm: eyeball radius in head units; mm_per_cm: the iris ruler (mm per head unit).
    iris_orbit_cm:  (property) radius on which the iris centre turns, head units.
    """

    timestamps_s: np.ndarray
    pts: np.ndarray
    tracked: np.ndarray
    rotation: np.ndarray
    scale_px_per_cm: np.ndarray
    translation_px: np.ndarray
    expression_cm: np.ndarray
    gaze_yaw_deg: np.ndarray
    gaze_pitch_deg: np.ndarray
    upper_lid_mm: np.ndarray
    lower_lid_mm: np.ndarray
    residual_px: np.ndarray
    image_size: tuple[int, int]
    eyeball_center_cm: np.ndarray
    eyeball_radius_cm: float
    mm_per_cm: float

    def __post_init__(self) -> None:
        n = len(self.timestamps_s)
        check_shape(self.eyeball_center_cm, (2, 3), name="eyeball_center_cm")
        check_shape(self.pts, (n,), name="pts")
        check_shape(self.tracked, (n,), name="tracked")
        check_shape(self.rotation, (n, 3, 3), name="rotation")
        check_shape(self.scale_px_per_cm, (n,), name="scale_px_per_cm")
        check_shape(self.translation_px, (n, 3), name="translation_px")
        check_shape(self.expression_cm, (n, 468, 3), name="expression_cm")
        for name in ("gaze_yaw_deg", "gaze_pitch_deg", "upper_lid_mm", "lower_lid_mm"):
            check_shape(getattr(self, name), (n, 2), name=name)
        check_shape(self.residual_px, (n,), name="residual_px")
        _freeze(self)

    def __len__(self) -> int:
        return len(self.timestamps_s)

    @property
    def iris_orbit_cm(self) -> float:
        return self.eyeball_radius_cm * LIMBUS_DEPTH_RADII

    def frame(self, i: int) -> AvatarFrame:
        """The renderer's input for frame ``i``."""
        return AvatarFrame(
            tracked=bool(self.tracked[i]),
            rotation=self.rotation[i],
            scale_px_per_cm=float(self.scale_px_per_cm[i]),
            translation_px=self.translation_px[i],
            expression_cm=self.expression_cm[i],
            gaze_yaw_deg=self.gaze_yaw_deg[i],
            gaze_pitch_deg=self.gaze_pitch_deg[i],
            upper_lid_mm=self.upper_lid_mm[i],
            lower_lid_mm=self.lower_lid_mm[i],
        )
