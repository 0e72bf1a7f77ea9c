"""MediaPipe FaceLandmarker wrapper (private to ``tracking``): converts results to numpy pixels."""

from __future__ import annotations

import contextlib
import ctypes
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
    away from the viewer positive) of the face found, or an all-NaN array when none is found.
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
            num_faces=1,  # VIDEO mode then smooths the landmarks; 2 turns that off (tried: docs/benchmarks.md)
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
        self._direct = True  # read MediaPipe's C result directly (see _face)
        self._started = False
        log.info("landmarker: MediaPipe FaceLandmarker (%s mode, CPU)", "video" if video else "image")

    def detect(self, rgb: np.ndarray, time_ms: int = 0) -> np.ndarray:
        """Landmarks of one frame; NaN (478, 3) when no face is found."""
        h, w = rgb.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        if self._video:
            time_ms = max(int(time_ms), self._last_ms + 1)  # must strictly increase
            self._last_ms = time_ms
        quiet = contextlib.nullcontext() if self._started else _quiet_native_stderr()
        with quiet:  # the first call prints a TFLite banner
            face = self._face(image, time_ms)
        self._started = True
        if face is None:
            return np.full((478, 3), np.nan, dtype=np.float32)
        return face * np.array([w, h, w], np.float32)

    def _face(self, image: object, time_ms: int) -> np.ndarray | None:
        """Normalised (478, 3) float32 landmarks of the face found, or None.

        Read straight from MediaPipe's C result (~0.02 ms): its Python API first converts the
        landmarks to a dataclass each (~1.6 ms a frame, holding the GIL that the eye stage needs).
        That reads private names of MediaPipe 1.2 (``_lib``, ``_handle``, ``_image_ptr``); where
        they are missing, the public API is used (``tests/integration/test_mask_clips.py`` checks
        that both give the same arrays).
        """
        if self._direct:
            try:
                return self._face_from_c(image, time_ms)
            except (AttributeError, TypeError, ctypes.ArgumentError):
                self._direct = False
                log.info("landmarker: MediaPipe's C result is not readable here; using its Python API")
        lm = self._landmarker
        result = lm.detect_for_video(image, time_ms) if self._video else lm.detect(image)
        if not result.face_landmarks:
            return None
        return np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]], np.float32)

    def _face_from_c(self, image: object, time_ms: int) -> np.ndarray | None:
        from mediapipe.tasks.python.vision.face_landmarker import MpFaceLandmarkerResultC

        lm, result = self._landmarker, MpFaceLandmarkerResultC()
        if self._video:
            lm._lib.MpFaceLandmarkerDetectForVideo(lm._handle, image._image_ptr, None, time_ms, ctypes.byref(result))
        else:
            lm._lib.MpFaceLandmarkerDetectImage(lm._handle, image._image_ptr, None, ctypes.byref(result))
        try:
            if not result.face_landmarks_count:
                return None
            face = result.face_landmarks[0]
            point_c = face.landmarks._type_  # MediaPipe's landmark struct: x, y, z floats and more
            xyz = np.dtype({"names": ["x", "y", "z"], "formats": [np.float32] * 3,
                            "offsets": [point_c.x.offset, point_c.y.offset, point_c.z.offset],
                            "itemsize": ctypes.sizeof(point_c)})
            points = np.frombuffer(ctypes.string_at(face.landmarks, face.landmarks_count * xyz.itemsize), xyz)
            return np.stack([points["x"], points["y"], points["z"]], axis=1)
        finally:
            lm._lib.MpFaceLandmarkerCloseResult(ctypes.byref(result))

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> "MediaPipeLandmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
