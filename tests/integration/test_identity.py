"""Identity: an independent recogniser (dlib ResNet) must not match a masked frame to its original."""

from __future__ import annotations

import numpy as np
import pytest

from digital_mask.io import iter_frames

dlib_rec = pytest.importorskip("digital_mask._recognisers")


@pytest.fixture(scope="module")
def dlib():
    return dlib_rec.get_recogniser("dlib")


@pytest.mark.parametrize("name", ["d6.mp4", "d10.mp4", "d14.mp4", "single_face.mp4"])
def test_masked_frames_are_not_the_same_person(masked, clip, dlib, name):
    result = masked(name)
    n = result.summary.frames
    picks = set(np.linspace(0, n - 1, 6).round().astype(int).tolist())
    originals = {f.index: f.rgb for f in iter_frames(clip(name)) if f.index in picks}
    compared = 0
    for f in iter_frames(result.output):
        if f.index not in picks:
            continue
        faces = dlib.embed(originals[f.index])
        if not faces:
            continue
        original = faces[0]
        found = dlib.embed(f.rgb)
        # the recogniser's own detector on the mask, or else the original's face box
        mask = found[0] if found else dlib.embed_box(f.rgb, original.box_xyxy)
        distance = dlib.distance(original, mask)
        assert distance > dlib.threshold, f"frame {f.index}: masked face matches the original ({distance:.2f})"
        compared += 1
    assert compared >= 4
