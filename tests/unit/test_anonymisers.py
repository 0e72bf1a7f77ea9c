"""Baseline anonymisers on a synthetic image with hand-placed landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from digital_mask._anonymisers import GREY, blur, eye_crop, face_box, pixelate
from digital_mask.eyes import EYE_CORNERS, LOWER_LID, UPPER_LID


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    points = np.full((478, 3), np.nan, np.float32)
    # face mesh spread over x 60..100, y 40..90
    points[:468, 0] = np.linspace(60, 100, 468)
    points[:468, 1] = np.linspace(40, 90, 468)[::-1]
    points[:468, 2] = 0.0
    for eye, cx in ((0, 70.0), (1, 90.0)):
        for i in (*EYE_CORNERS[eye], *UPPER_LID[eye], *LOWER_LID[eye]):
            points[i, :2] = (cx + (i % 7 - 3), 55.0 + (i % 3 - 1))
    return rgb, points


def test_face_box_is_the_mesh_bounds():
    _, points = _scene()
    assert face_box(points) == pytest.approx((60.0, 40.0, 100.0, 90.0))
    assert face_box(np.full((478, 3), np.nan)) is None


def test_blur_and_pixelate_change_the_face_and_keep_far_pixels():
    rgb, points = _scene()
    for anonymise in (blur, pixelate):
        out = anonymise(rgb, points)
        assert out.shape == rgb.shape and out.dtype == np.uint8
        face = (slice(50, 80), slice(70, 90))
        assert np.abs(out[face].astype(int) - rgb[face]).mean() > 30  # noise is gone
        np.testing.assert_array_equal(out[:, :40], rgb[:, :40])  # widened box ends at x = 48
        np.testing.assert_array_equal(out[:20], rgb[:20])  # ... and at y = 25


def test_no_face_anonymises_the_whole_image():
    rgb, _ = _scene()
    none = np.full((478, 3), np.nan, np.float32)
    assert np.abs(blur(rgb, none).astype(int) - rgb).mean() > 30
    assert np.abs(pixelate(rgb, none).astype(int) - rgb).mean() > 30
    assert (eye_crop(rgb, none) == GREY).all()


def test_eye_crop_keeps_only_the_eye_band():
    rgb, points = _scene()
    out = eye_crop(rgb, points)
    np.testing.assert_array_equal(out[55, 70], rgb[55, 70])
    assert (out[85:] == GREY).all() and (out[:, :50] == GREY).all()


def test_bad_image():
    _, points = _scene()
    with pytest.raises(ValueError, match="uint8"):
        blur(np.zeros((10, 10, 3), np.float32), points)
