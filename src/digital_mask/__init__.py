"""digital-mask: de-identify eye-care videos by re-rendering eye, lid and head motion on a template face.

    >>> from digital_mask import mask_video
    >>> result = mask_video("visit.mp4", "visit_masked.mp4")
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["MaskResult", "RunConfig", "__version__", "mask_video"]


def __getattr__(name: str) -> object:
    # lazy: importing the package must not load MediaPipe or OpenGL
    if name in ("mask_video", "RunConfig", "MaskResult"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'digital_mask' has no attribute {name!r}")
