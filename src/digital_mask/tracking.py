"""Tracking stage: MediaPipe FaceLandmarker landmarks per frame -> LandmarkTrack.

Streaming: ``FaceTracker.track`` takes one frame at a time and keeps only its landmarks, in a
temporary file (``_spool``), so memory does not grow with the video's length.
"""

from __future__ import annotations

import numpy as np

from . import _spool
from ._mediapipe import MediaPipeLandmarker
from .types import Frame, LandmarkTrack


class FaceTracker:
    """Tracks the main face through a video (or one photo) and accumulates a LandmarkTrack."""

    def __init__(self, image_size: tuple[int, int], *, still: bool = False) -> None:
        self._landmarker = MediaPipeLandmarker(video=not still)
        self._size = image_size
        self._times: list[float] = []
        self._pts: list[int] = []
        self._points = _spool.FrameSpool((478, 3), np.float32)
        self._found: list[bool] = []

    def track(self, frame: Frame) -> np.ndarray:
        """Landmarks (478, 3) px of one frame (NaN when no face); also recorded for ``build``."""
        points = self._landmarker.detect(frame.rgb, int(round(frame.time_s * 1000.0)))
        self._times.append(frame.time_s)
        self._pts.append(frame.pts)
        self._points.append(points)
        self._found.append(bool(np.isfinite(points[:, :2]).all()))
        return points

    def build(self) -> LandmarkTrack:
        """The whole track (once: the landmarks' spool is closed; ``points_px`` is file-backed)."""
        return LandmarkTrack(
            timestamps_s=np.array(self._times, dtype=np.float64),
            pts=np.array(self._pts, dtype=np.int64),
            points_px=self._points.array(),
            found=np.array(self._found, dtype=bool),
            image_size=self._size,
        )

    def close(self) -> None:
        self._landmarker.close()
        self._points.close()

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
