"""Whole-video per-frame arrays kept on disk, so a run's memory does not grow with the video's length.

Two arrays hold something for every frame of a video: pass 1's landmarks and the fit's face motion
(~5.6 KB a frame each: ~20 MB a minute at 30 frames/s, ~1.2 GB an hour). Both live in unnamed
temporary files mapped into memory: the file is created already unlinked (``tempfile.TemporaryFile``,
mode 0600, in ``$TMPDIR``), so it has no name another process could open and disappears when the
run ends, crash included. Code that walks such an array calls ``release`` now and then: the pages it
has read leave the process (they stay in the kernel's page cache, which drops them when memory is
needed, and come back from the file on the next access). Ordinary arrays pass through ``release``
untouched, so callers need not know where an array lives.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import weakref
from typing import IO

import numpy as np

from .errors import OutputError

RELEASE_EVERY = 256  # frames between releases in a loop over a spooled array (~1.4 MB of landmarks)


class FrameSpool:
    """Append one fixed-shape row per frame; ``array()`` maps them all, read-only, as (T, *shape)."""

    def __init__(self, shape: tuple[int, ...], dtype: type = np.float32) -> None:
        self._shape = shape
        self._dtype = np.dtype(dtype)
        self._file = _temporary_file()
        self._close = weakref.finalize(self, self._file.close)  # also when dropped without array()
        self._n = 0

    def append(self, row: np.ndarray) -> None:
        try:
            self._file.write(np.ascontiguousarray(row, self._dtype).reshape(self._shape).tobytes())
        except OSError as exc:  # disk full
            raise _temp_error("write to", exc, "free space there or set TMPDIR") from exc
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def array(self) -> np.ndarray:
        """The rows so far; the spool is closed (no more appends)."""
        self._file.flush()
        try:
            if self._n == 0:
                return np.empty((0, *self._shape), self._dtype)
            mapped = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        finally:
            self._close()  # the mapping keeps the file alive
        return np.frombuffer(mapped, self._dtype).reshape(self._n, *self._shape)

    def close(self) -> None:
        """Drop the rows without mapping them (a tracker closed without ``build``, a failed run)."""
        self._close()


def empty(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A writable array of ``shape`` backed by an unnamed temporary file (zero-filled)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size == 0:
        return np.empty(shape, dtype)
    with _temporary_file() as f:
        try:  # blocks reserved now: a full disk is a clear error here, not a crash (SIGBUS) later
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, size)
            else:  # macOS, Windows: sparse
                f.truncate(size)
        except OSError as exc:
            raise _temp_error("write to", exc, "free space there or set TMPDIR") from exc
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_WRITE)
    return np.frombuffer(mapped, dtype).reshape(shape)


def _temporary_file() -> IO[bytes]:
    try:
        return tempfile.TemporaryFile(prefix="digital-mask-")
    except OSError as exc:
        raise _temp_error("create", exc, "set TMPDIR to a writable folder") from exc


def _temp_error(action: str, exc: OSError, advice: str) -> OutputError:
    return OutputError(f"cannot {action} a temporary file in {tempfile.gettempdir()} ({exc.strerror}); {advice}")


def release(array: np.ndarray) -> None:
    """Hand the resident pages of a spooled array (or of any view of one) back to the kernel; the
    data stays in the file. A no-op for ordinary arrays."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        base.madvise(mmap.MADV_DONTNEED)  # shared file mapping: written pages are kept, not zeroed
