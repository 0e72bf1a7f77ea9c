"""Exceptions raised on purpose by digital-mask.

    MaskError                       everything we raise on purpose
    ├── InputError (ValueError)     unreadable file, no video stream, bad option
    │   └── NoFaceError             no usable face anywhere in the input
    ├── OutputError (OSError)       output exists (no --overwrite) or would overwrite the input
    └── ModelError (RuntimeError)   bundled model missing, corrupt or wrong hash; GL unavailable

Only ``cli.py`` turns these into ``error: ...`` and exit code 1. Messages name files, never
frames, landmarks or other patient data.
"""

from __future__ import annotations


class MaskError(Exception):
    """Base class of every error digital-mask raises on purpose."""


class InputError(MaskError, ValueError):
    """The input file or an option is unusable."""


class NoFaceError(InputError):
    """No usable face was found anywhere in the input."""


class OutputError(MaskError, OSError):
    """The output cannot be written safely (exists, or is the input)."""


class ModelError(MaskError, RuntimeError):
    """A bundled model file is missing or corrupt, or a runtime (OpenGL) is unavailable."""
