"""Shared fixtures: real clips from ../shared/data/videos, each masked once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digital_mask.pipeline import MaskResult, RunConfig, mask_video

VIDEOS = Path(os.environ.get("DIGITAL_MASK_VIDEOS", Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"))


def _clip(name: str) -> Path:
    path = VIDEOS / name
    if not path.is_file():
        pytest.fail(f"test clip {path} missing: the shared data folder must sit beside the checkout")
    return path


@pytest.fixture(scope="session")
def clip():
    """clip(name) -> path of a real clip in the shared data folder."""
    return _clip


@pytest.fixture(scope="session")
def masked(tmp_path_factory: pytest.TempPathFactory):
    """masked(name) -> MaskResult, computed once per clip per session."""
    cache: dict[str, MaskResult] = {}
    out_dir = tmp_path_factory.mktemp("masked")

    def get(name: str) -> MaskResult:
        if name not in cache:
            cache[name] = mask_video(_clip(name), out_dir / f"{Path(name).stem}_masked.mp4", RunConfig())
        return cache[name]

    return get
