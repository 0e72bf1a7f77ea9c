"""Synthetic inputs with known answers for the fitting and eye tests (no models, no mocks).

* ``Scene``: the canonical face in a known head pose, with eyeballs at the centres ``fit_face``
  will use, projected into a ``LandmarkTrack`` and an ``EyeTrack`` whose iris centres and lid
  points follow from known gaze angles and lid heights.
* ``draw_eye`` / ``draw_face``: a drawn eye (skin, almond opening between two parabolic lids,
  dark iris disc) with the MediaPipe points such an image would get.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from digital_mask import eyes as eyes_mod
from digital_mask import fitting
from digital_mask.types import EYEBALL_RADIUS_MM, IRIS_DIAMETER_MM, LIMBUS_DEPTH_RADII, EyeTrack, LandmarkTrack

FLIP = np.diag([1.0, -1.0, -1.0])  # head axes (y up, z to viewer) -> image axes (y down, z away)
IRIS_R_HEAD = 0.585  # iris radius in head units: the ruler then reads exactly 10 mm per unit


def head_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head -> image rotation for a pose relative to the frontal one (``R_rel @ FLIP``)."""
    rel = Rotation.from_euler("YXZ", [yaw_deg, pitch_deg, roll_deg], degrees=True).as_matrix()
    return rel @ FLIP


def relative_pose(rotation: np.ndarray) -> Rotation:
    """The pose relative to frontal, from a head -> image rotation (inverse of ``head_rotation``)."""
    return Rotation.from_matrix(rotation @ FLIP)


def gaze_dir(yaw_deg: np.ndarray, pitch_deg: np.ndarray) -> np.ndarray:
    """Unit gaze vectors (..., 3) in head coordinates, the convention of ``project_eye_model``."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    return np.stack([np.sin(y) * np.cos(p), np.sin(p), np.cos(y) * np.cos(p)], axis=-1)


@dataclass
class Scene:
    """T frames of a rigid canonical face with known pose, gaze and lids.

    Per-frame arrays have T rows; per-eye arrays are (T, 2). Angles in degrees, lids in mm
    (margins above/below the iris centre). The measurement puts primary gaze at the middle of the
    measured fissure (median over the video, both eyes), so a scene whose pitch is to be read back
    absolutely keeps that middle at the eyeball centre: symmetric lids (the default) and a
    vertical gaze that is 0 in the median.
    """

    n: int = 10
    fps: float = 30.0
    yaw: float = 20.0
    pitch: float = -10.0
    roll: float = 5.0
    scale: float = 20.0
    translation: np.ndarray = field(default_factory=lambda: np.array([200.0, 160.0, 50.0]))
    gaze_yaw: np.ndarray | None = None
    gaze_pitch: np.ndarray | None = None
    upper_mm: np.ndarray | None = None
    lower_mm: np.ndarray | None = None
    expression: np.ndarray | None = None  # (T, 468, 3) head cm added to the canonical vertices
    found: np.ndarray | None = None
    image_size: tuple[int, int] = (400, 320)

    def __post_init__(self) -> None:
        z2 = np.zeros((self.n, 2))
        self.gaze_yaw = z2.copy() if self.gaze_yaw is None else np.broadcast_to(self.gaze_yaw, (self.n, 2)).astype(float)
        self.gaze_pitch = z2.copy() if self.gaze_pitch is None else np.broadcast_to(self.gaze_pitch, (self.n, 2)).astype(float)
        self.upper_mm = np.full((self.n, 2), 4.5) if self.upper_mm is None else np.broadcast_to(self.upper_mm, (self.n, 2)).astype(float)
        self.lower_mm = np.full((self.n, 2), 4.5) if self.lower_mm is None else np.broadcast_to(self.lower_mm, (self.n, 2)).astype(float)
        self.expression = np.zeros((self.n, 468, 3)) if self.expression is None else self.expression
        self.found = np.ones(self.n, bool) if self.found is None else np.asarray(self.found, bool)
        self.rotation = head_rotation(self.yaw, self.pitch, self.roll)
        self.mm_per_unit = IRIS_DIAMETER_MM / (2.0 * IRIS_R_HEAD)
        self.radius = EYEBALL_RADIUS_MM / self.mm_per_unit
        self.vertices = fitting.canonical_face().vertices_cm
        self.centers = fitting.eyeball_centers_cm(self.vertices, self.radius)

    # -- geometry -----------------------------------------------------------------------------
    def project(self, p_head: np.ndarray) -> np.ndarray:
        """Head cm (..., 3) -> image px (..., 3) (x, y, z-away), ``s R p + t``."""
        return self.scale * p_head @ self.rotation.T + self.translation

    def face_plane_px(self, d_head_xy: np.ndarray) -> np.ndarray:
        """Image displacement (..., 2) of a head-plane displacement (..., 2) (head x, y in cm)."""
        a2 = self.scale * self.rotation[:2, :2]
        return d_head_xy @ a2.T

    def iris_head(self) -> np.ndarray:
        """(T, 2, 3) iris centres (limbus plane, inside the eyeball spheres), head cm."""
        return self.centers[None] + self.radius * LIMBUS_DEPTH_RADII * gaze_dir(self.gaze_yaw, self.gaze_pitch)

    def iris_px(self) -> np.ndarray:
        return self.project(self.iris_head())[..., :2]

    def interocular_px(self) -> float:
        p = self.project(self.vertices)[:, :2]
        mids = [(p[a] + p[b]) / 2 for a, b in fitting.EYE_CORNERS]
        return float(np.linalg.norm(mids[0] - mids[1]))

    # -- pipeline inputs ------------------------------------------------------------------------
    def landmark_track(self) -> LandmarkTrack:
        pts = np.full((self.n, 478, 3), np.nan)
        iris = self.iris_head()
        for i in np.flatnonzero(self.found):
            pts[i, :468] = self.project(self.vertices + self.expression[i])
            for e, first in enumerate((468, 473)):
                # centre + 4 points on the iris rim in the head's x-y plane (MediaPipe's layout)
                ring = iris[i, e] + IRIS_R_HEAD * np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]])
                pts[i, first] = self.project(iris[i, e])
                pts[i, first + 1 : first + 5] = self.project(ring)
        t = np.arange(self.n) / self.fps
        return LandmarkTrack(
            timestamps_s=t,
            pts=np.arange(self.n, dtype=np.int64) * 3000,
            points_px=pts.astype(np.float32),
            found=self.found.copy(),
            image_size=self.image_size,
        )

    def eye_track(
        self,
        *,
        iris_px: np.ndarray | None = None,
        upper_px: np.ndarray | None = None,
        lower_px: np.ndarray | None = None,
        valid: np.ndarray | None = None,
    ) -> EyeTrack:
        iris = self.iris_px() if iris_px is None else iris_px
        up_d = np.stack([np.zeros_like(self.upper_mm), self.upper_mm / self.mm_per_unit], -1)
        lo_d = np.stack([np.zeros_like(self.lower_mm), -self.lower_mm / self.mm_per_unit], -1)
        upper = iris + self.face_plane_px(up_d) if upper_px is None else upper_px
        lower = iris + self.face_plane_px(lo_d) if lower_px is None else lower_px
        radius = np.full((self.n, 2), self.scale * IRIS_R_HEAD)
        valid = np.broadcast_to(self.found[:, None], (self.n, 2)).copy() if valid is None else valid
        f32 = np.float32
        return EyeTrack(
            iris_center_px=iris.astype(f32),
            iris_radius_px=radius.astype(f32),
            upper_lid_px=upper.astype(f32),
            lower_lid_px=lower.astype(f32),
            mp_iris_center_px=iris.astype(f32),
            mp_upper_lid_px=upper.astype(f32),
            mp_lower_lid_px=lower.astype(f32),
            valid=np.array(valid, bool),  # a copy: EyeTrack freezes its arrays in place
        )


# ---------------------------------------------------------------------------------------------
# Drawn eyes
# ---------------------------------------------------------------------------------------------
SKIN = np.array([205.0, 160.0, 140.0])
SCLERA = np.array([235.0, 230.0, 225.0])
IRIS_RGB = np.array([80.0, 55.0, 40.0])
PUPIL_RGB = np.array([20.0, 15.0, 15.0])
LASH_RGB = np.array([40.0, 30.0, 28.0])
SUPERSAMPLE = 4


@dataclass(frozen=True)
class DrawnEye:
    """One eye: corners at (cx -+ half_width, cy); lids are parabolas through the corners.

    outer_left: True when the outer corner (33 / 263) is image-left (the patient's right eye).
    upper_h, lower_h: opening above / below the corner line at the middle, px (0 = closed).
    iris: drawn iris centre (x, y) px and radius; None draws no iris (closed eye: lash line only).
    iris_aspect: the drawn iris is an ellipse ``iris_r`` wide and ``iris_aspect * iris_r`` tall.
    """

    cx: float
    cy: float
    half_width: float = 30.0
    upper_h: float = 13.0
    lower_h: float = 11.0
    iris: tuple[float, float] | None = None
    iris_r: float = 10.0
    outer_left: bool = True
    iris_aspect: float = 1.0  # the iris's height over its width (< 1: seen from below or above)
    skin_ring: bool = False  # a skin-coloured ring round the pupil (0.4-0.8 iris radii), as a light iris's bright one

    def upper_y(self, x: np.ndarray | float) -> np.ndarray:
        u = np.clip((np.asarray(x, float) - self.cx) / self.half_width, -1, 1)
        return self.cy - self.upper_h * (1 - u**2)

    def lower_y(self, x: np.ndarray | float) -> np.ndarray:
        u = np.clip((np.asarray(x, float) - self.cx) / self.half_width, -1, 1)
        return self.cy + self.lower_h * (1 - u**2)


def _paint(img: np.ndarray, xx: np.ndarray, yy: np.ndarray, eye: DrawnEye) -> None:
    inside = (np.abs(xx - eye.cx) < eye.half_width) & (yy > eye.upper_y(xx)) & (yy < eye.lower_y(xx))
    img[inside] = SCLERA
    if eye.iris is not None:
        r2 = (xx - eye.iris[0]) ** 2 + ((yy - eye.iris[1]) / eye.iris_aspect) ** 2
        img[inside & (r2 < eye.iris_r**2)] = IRIS_RGB
        if eye.skin_ring:
            img[inside & (r2 < (0.8 * eye.iris_r) ** 2)] = SKIN
        img[inside & (r2 < (0.4 * eye.iris_r) ** 2)] = PUPIL_RGB
    else:  # closed: a dark lash line along the corner line
        line = (np.abs(xx - eye.cx) < eye.half_width) & (np.abs(yy - eye.cy) < 1.5)
        img[line] = LASH_RGB


def draw_face(size: tuple[int, int], eyes: list[DrawnEye], *, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 skin patch with the eyes drawn, anti-aliased by supersampling."""
    w, h = size
    k = SUPERSAMPLE
    yy, xx = np.mgrid[0 : h * k, 0 : w * k].astype(np.float64)
    xx, yy = (xx + 0.5) / k - 0.5, (yy + 0.5) / k - 0.5  # pixel centres at integer coordinates
    img = np.empty((h * k, w * k, 3))
    img[:] = SKIN
    for eye in eyes:
        _paint(img, xx, yy, eye)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    img += np.random.default_rng(seed).normal(0.0, 2.0, img.shape)  # a little skin texture/noise
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def mediapipe_points(
    eye: DrawnEye,
    index: int,
    points: np.ndarray,
    *,
    iris_pull: float = 0.3,
    upper_offset: float = 0.0,
    lower_offset: float = 0.0,
) -> None:
    """Fill one eye's MediaPipe points (corners, lids, iris) into ``points`` (478, 3) in place.

    iris_pull: MediaPipe's iris is this fraction of the way from the drawn one to the eye middle.
    upper_offset / lower_offset: px added to MediaPipe's lid y (positive = down).
    """
    outer, inner = eyes_mod.EYE_CORNERS[index]
    xo = eye.cx - eye.half_width if eye.outer_left else eye.cx + eye.half_width
    xi = eye.cx + eye.half_width if eye.outer_left else eye.cx - eye.half_width
    points[outer, :2] = (xo, eye.cy)
    points[inner, :2] = (xi, eye.cy)
    # 7 lid points from the outer to the inner corner
    xs = xo + (xi - xo) * np.arange(1, 8) / 8
    for idx, x in zip(eyes_mod.UPPER_LID[index], xs):
        points[idx, :2] = (x, float(eye.upper_y(x)) + upper_offset)
    for idx, x in zip(eyes_mod.LOWER_LID[index], xs):
        points[idx, :2] = (x, float(eye.lower_y(x)) + lower_offset)
    true = np.array(eye.iris if eye.iris is not None else (eye.cx, eye.cy))
    mp = true + iris_pull * (np.array([eye.cx, eye.cy]) - true)
    c, *ring = eyes_mod.IRIS[index]
    points[c, :2] = mp
    for idx, d in zip(ring, ((1, 0), (0, -1), (-1, 0), (0, 1))):
        points[idx, :2] = mp + eye.iris_r * np.array(d)


def face_points(size: tuple[int, int]) -> np.ndarray:
    """(478, 3) landmarks all at the image centre (finite dummies), z = 0."""
    pts = np.zeros((478, 3))
    pts[:, 0], pts[:, 1] = size[0] / 2, size[1] / 2
    return pts
