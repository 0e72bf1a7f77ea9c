"""MediaPipe FaceLandmarker wrapper (private to ``tracking``): converts results to numpy pixels."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging: errors only
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .errors import ModelError
from .models import FACE_LANDMARKER, model_path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the C++ start-up chatter (glog/TFLite banners) written straight to fd 2."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to do
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


# Parts of MediaPipe we never use, loaded only when first used. Its vision package imports the
# drawing helpers, which import matplotlib.pyplot (~0.4 s of every start-up here); ``import
# mediapipe`` imports the audio, text and retrieval tasks (~0.08 s). The audio tasks also try to
# load PortAudio and keep the failed import's traceback, which pinned every frame live during the
# import (a masking run's whole pass-1 state, ~20 MB a minute of video) until this was lazy.
_LAZY_MODULES = frozenset({
    "mediapipe.tasks.python.vision.drawing_utils",
    "mediapipe.tasks.python.vision.drawing_styles",
    "mediapipe.tasks.python.audio",
    "mediapipe.tasks.python.text",
    "mediapipe.tasks.python.retrieval",
})


class _LazyFinder(importlib.abc.MetaPathFinder):
    """Finds ``_LAZY_MODULES`` as usual but loads them with ``importlib.util.LazyLoader``: the
    module is bound where it is imported and runs on its first attribute access."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _LAZY_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def _load_unused_modules_lazily() -> None:
    if not any(isinstance(finder, _LazyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LazyFinder())


class MediaPipeLandmarker:
    """FaceLandmarker in VIDEO mode (temporal tracking) or IMAGE mode (still photos).

    ``detect(rgb, time_ms)`` returns (478, 3) float32 points in pixels (z in the x pixel scale,
    away from the viewer positive) for the largest face, or an all-NaN array when none is found.
    """

    def __init__(self, *, video: bool, min_confidence: float = 0.5) -> None:
        _load_unused_modules_lazily()
        import mediapipe as mp

        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python import vision

        self._mp = mp
        self._video = video
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path(FACE_LANDMARKER))),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=1,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        try:
            with _quiet_native_stderr():
                self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load {FACE_LANDMARKER.name}: {exc}") from exc
        self._last_ms = -1
        self._started = False
        log.info("landmarker: MediaPipe FaceLandmarker (%s mode, CPU)", "video" if video else "image")

    def detect(self, rgb: np.ndarray, time_ms: int = 0) -> np.ndarray:
        """Landmarks of one frame; NaN (478, 3) when no face is found."""
        h, w = rgb.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        quiet = contextlib.nullcontext() if self._started else _quiet_native_stderr()
        with quiet:  # the first call prints a TFLite banner
            if self._video:
                time_ms = max(int(time_ms), self._last_ms + 1)  # must strictly increase
                self._last_ms = time_ms
                result = self._landmarker.detect_for_video(image, time_ms)
            else:
                result = self._landmarker.detect(image)
        self._started = True
        out = np.full((478, 3), np.nan, dtype=np.float32)
        if result.face_landmarks:
            lms = result.face_landmarks[0]
            out[:] = [(p.x * w, p.y * h, p.z * w) for p in lms]
        return out

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> "MediaPipeLandmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
