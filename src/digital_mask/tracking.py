"""Tracking stage: MediaPipe FaceLandmarker landmarks per frame -> LandmarkTrack.

Streaming: ``FaceTracker.track`` takes one frame at a time and keeps only its landmarks.
"""

from __future__ import annotations

import numpy as np

from ._mediapipe import MediaPipeLandmarker
from .types import Frame, LandmarkTrack


class FaceTracker:
    """Tracks the main face through a video (or one photo) and accumulates a LandmarkTrack."""

    def __init__(self, image_size: tuple[int, int], *, still: bool = False) -> None:
        self._landmarker = MediaPipeLandmarker(video=not still)
        self._size = image_size
        self._times: list[float] = []
        self._pts: list[int] = []
        self._points: list[np.ndarray] = []

    def track(self, frame: Frame) -> np.ndarray:
        """Landmarks (478, 3) px of one frame (NaN when no face); also recorded for ``build``."""
        points = self._landmarker.detect(frame.rgb, int(round(frame.time_s * 1000.0)))
        self._times.append(frame.time_s)
        self._pts.append(frame.pts)
        self._points.append(points)
        return points

    def build(self) -> LandmarkTrack:
        """The whole track so far."""
        points = np.array(self._points, dtype=np.float32).reshape(-1, 478, 3)
        return LandmarkTrack(
            timestamps_s=np.array(self._times, dtype=np.float64),
            pts=np.array(self._pts, dtype=np.int64),
            points_px=points,
            found=np.isfinite(points[:, :, :2]).all(axis=(1, 2)),
            image_size=self._size,
        )

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
