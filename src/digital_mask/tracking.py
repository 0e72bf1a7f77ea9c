"""Tracking stage: MediaPipe FaceLandmarker landmarks per frame -> LandmarkTrack.

Streaming: ``FaceTracker.track`` takes one frame at a time and keeps only its landmarks.

Reduced resolution (video mode): MediaPipe's landmark model sees the face through a crop of about
1.5 face widths resampled to 256x256 px. While that crop would still be at least 256 px wide in a
frame shrunk by an integer factor (area-averaged), the frame is shrunk before MediaPipe: the model
gets as many face pixels as it can use, and MediaPipe's own handling of the full-size frame
(~3 ms of ~13 at 720p) is saved. The factor follows the face width of the previous frame;
landmarks are returned in full-frame pixels either way, and the eye stage measures on the
full-size frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._mediapipe import MediaPipeLandmarker
from .types import Frame, LandmarkTrack


LANDMARK_CROP_PX = 256  # MediaPipe face landmark model input (square)
LANDMARK_CROP_FACE_WIDTHS = 1.5  # its crop around the face, in face widths
MAX_DOWNSCALE = 4


def downscale_factor(face_width_px: float) -> int:
    """Integer factor the frame may be shrunk by before tracking a face this wide (1 = full size)."""
    if not np.isfinite(face_width_px):
        return 1
    return int(np.clip(LANDMARK_CROP_FACE_WIDTHS * face_width_px // LANDMARK_CROP_PX, 1, MAX_DOWNSCALE))


class FaceTracker:
    """Tracks the main face through a video (or one photo) and accumulates a LandmarkTrack.

    Args:
        image_size: (width, height) of the frames.
        still: one photo (MediaPipe's IMAGE mode), always tracked at full size.
        downscale: in video mode, shrink frames by ``downscale_factor`` of the previous frame's
            face width before MediaPipe (see the module docstring); False tracks at full size.
    """

    def __init__(self, image_size: tuple[int, int], *, still: bool = False, downscale: bool = True) -> None:
        self._landmarker = MediaPipeLandmarker(video=not still)
        self._size = image_size
        self._downscale = downscale and not still
        self._factor = 1
        self._times: list[float] = []
        self._pts: list[int] = []
        self._points: list[np.ndarray] = []

    def track(self, frame: Frame) -> np.ndarray:
        """Landmarks (478, 3) px of one frame (NaN when no face); also recorded for ``build``."""
        time_ms = int(round(frame.time_s * 1000.0))
        f = self._factor
        h, w = frame.rgb.shape[:2]
        if f > 1 and w // f >= 16 and h // f >= 16:
            small = cv2.resize(frame.rgb, (w // f, h // f), interpolation=cv2.INTER_AREA)
            points = self._landmarker.detect(small, time_ms)
            points *= np.array([w / small.shape[1], h / small.shape[0], w / small.shape[1]], np.float32)
        else:
            points = self._landmarker.detect(frame.rgb, time_ms)
        if self._downscale:
            x = points[:468, 0]
            self._factor = downscale_factor(float(np.max(x) - np.min(x))) if np.isfinite(x).all() else 1
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
