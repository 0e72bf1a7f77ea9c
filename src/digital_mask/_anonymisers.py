"""Baseline anonymisers for the privacy benchmark (private to ``privacy``): blur, pixelate, eye crop.

What people use today, so our mask can be measured next to it. Each baseline takes an RGB photo
and the face's MediaPipe landmarks and returns a new RGB image of the same size:

* ``blur``: deface's recipe. The face box is widened as deface's ``scale_bb`` does with its
  default ``mask_scale=1.3`` (each side moved out by 0.3 of the box size) and an ellipse inside
  it is replaced by a blurred copy. deface blurs with a box filter half the box size; we use the
  Gaussian of the same standard deviation (sigma = box side / (2 sqrt 12)).
* ``pixelate``: the same widened box, rectangular, averaged in blocks so that the unwidened face
  is ``PIXELATE_BLOCKS`` blocks wide (a common "mosaic" strength).
* ``eye_crop``: the paper's comparison: only a rectangle around both eyes is kept (both eye
  contours, widened by ``EYE_CROP_PAD_X`` and ``EYE_CROP_PAD_Y`` times the distance between the
  eye centres), everything else is flat grey.

The face box is the bounding box of MediaPipe's 468 face-mesh points (brow/forehead to chin,
cheek to cheek), from the same ``FaceTracker`` the masking pipeline uses; a photo where MediaPipe
finds no face is anonymised as a whole (fail closed): blurred or pixelated over the whole image,
or all grey for the eye crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from .eyes import LOWER_LID, UPPER_LID, EYE_CORNERS
from .types import check_shape

DEFACE_MASK_SCALE = 1.3
"""deface's default ``mask_scale``: each side of the box moves out by (scale - 1) x its size."""
PIXELATE_BLOCKS = 8
"""Blocks across the (unwidened) face width."""
EYE_CROP_PAD_X = 0.35
EYE_CROP_PAD_Y = 0.45
"""Eye-crop margins around both eye contours, as fractions of the distance between eye centres."""
GREY = 128

BASELINES = ("blur", "pixelate", "eye_crop")


def face_box(points_px: np.ndarray) -> tuple[float, float, float, float] | None:
    """Bounding box (x0, y0, x1, y1) px of MediaPipe's 468 face-mesh points; None without a face.

    Args:
        points_px: (478, 2|3) landmarks in pixels, NaN when no face was found.
    """
    pts = np.asarray(points_px, dtype=np.float64)[:468, :2]
    if not np.isfinite(pts).all():
        return None
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _widen(box: tuple[float, float, float, float], scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """deface's ``scale_bb``: each side moves out by (scale - 1) x the box size; clipped."""
    x0, y0, x1, y1 = box
    s = scale - 1.0
    w, h = x1 - x0, y1 - y0
    x0, x1, y0, y1 = x0 - w * s, x1 + w * s, y0 - h * s, y1 + h * s
    return (max(0, int(round(x0))), max(0, int(round(y0))), min(width, int(round(x1))), min(height, int(round(y1))))


def _check(rgb: np.ndarray) -> None:
    check_shape(rgb, (None, None, 3), name="rgb")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected dtype uint8, got {rgb.dtype}")


def blur(rgb: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """Gaussian blur of an ellipse in the widened face box (deface's recipe); whole image without a face."""
    _check(rgb)
    height, width = rgb.shape[:2]
    box = face_box(points_px)
    x0, y0, x1, y1 = (0, 0, width, height) if box is None else _widen(box, DEFACE_MASK_SCALE, width, height)
    out = rgb.copy()
    patch = rgb[y0:y1, x0:x1]
    sx = max((x1 - x0) / 2.0 / np.sqrt(12.0), 0.5)
    sy = max((y1 - y0) / 2.0 / np.sqrt(12.0), 0.5)
    blurred = cv2.GaussianBlur(patch, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)
    if box is None:
        return np.ascontiguousarray(blurred)
    inside = np.zeros(patch.shape[:2], np.uint8)
    cv2.ellipse(inside, ((patch.shape[1] / 2.0, patch.shape[0] / 2.0), (float(patch.shape[1]), float(patch.shape[0])), 0.0), 1, -1)
    out[y0:y1, x0:x1][inside.astype(bool)] = blurred[inside.astype(bool)]
    return out


def pixelate(rgb: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """Block-average the widened face box (``PIXELATE_BLOCKS`` across the face); whole image without a face."""
    _check(rgb)
    height, width = rgb.shape[:2]
    box = face_box(points_px)
    if box is None:
        block = max(2.0, width / PIXELATE_BLOCKS)
        x0, y0, x1, y1 = 0, 0, width, height
    else:
        block = max(2.0, (box[2] - box[0]) / PIXELATE_BLOCKS)
        x0, y0, x1, y1 = _widen(box, DEFACE_MASK_SCALE, width, height)
    out = rgb.copy()
    patch = rgb[y0:y1, x0:x1]
    small = (max(1, int(round((x1 - x0) / block))), max(1, int(round((y1 - y0) / block))))
    coarse = cv2.resize(patch, small, interpolation=cv2.INTER_AREA)
    out[y0:y1, x0:x1] = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return out


def eye_crop(rgb: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """Keep only a rectangle around both eyes, everything else grey; all grey without a face."""
    _check(rgb)
    height, width = rgb.shape[:2]
    out = np.full_like(rgb, GREY)
    pts = np.asarray(points_px, dtype=np.float64)[:, :2]
    idx = [i for eye in range(2) for i in (*EYE_CORNERS[eye], *UPPER_LID[eye], *LOWER_LID[eye])]
    eye_pts = pts[idx]
    if not np.isfinite(eye_pts).all():
        return out
    centres = [pts[list(EYE_CORNERS[e])].mean(axis=0) for e in range(2)]
    iod = float(np.linalg.norm(centres[0] - centres[1]))
    x0, y0 = eye_pts.min(axis=0) - (EYE_CROP_PAD_X * iod, EYE_CROP_PAD_Y * iod)
    x1, y1 = eye_pts.max(axis=0) + (EYE_CROP_PAD_X * iod, EYE_CROP_PAD_Y * iod)
    x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    x1, y1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    out[y0:y1, x0:x1] = rgb[y0:y1, x0:x1]
    return out


ANONYMISE = {"blur": blur, "pixelate": pixelate, "eye_crop": eye_crop}
