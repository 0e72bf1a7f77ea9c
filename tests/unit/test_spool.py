"""File-backed per-frame arrays: same values as in memory, and their pages really leave the process."""

import tempfile

import numpy as np
import pytest

from digital_mask import _spool
from digital_mask.errors import OutputError


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_frame_spool_round_trip() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(5, 478, 3)).astype(np.float32)
    spool = _spool.FrameSpool((478, 3))
    for row in rows:
        spool.append(row)
    assert len(spool) == 5
    out = spool.array()
    assert out.shape == (5, 478, 3) and out.dtype == np.float32 and not out.flags.writeable
    np.testing.assert_array_equal(out, rows)


def test_empty_spool_gives_an_empty_array() -> None:
    out = _spool.FrameSpool((2, 14)).array()
    assert out.shape == (0, 2, 14) and out.dtype == np.float32


def test_release_keeps_the_data_and_returns_the_pages() -> None:
    n = 64 * 1024 * 1024 // (468 * 3 * 4)  # ~64 MiB of face motion
    arr = _spool.empty((n, 468, 3))
    assert arr.flags.writeable and not arr.any()  # zero-filled
    _spool.release(arr)
    before = _rss_mib()
    arr[:] = 1.5
    arr[7] = np.arange(468 * 3).reshape(468, 3)
    touched = _rss_mib()
    _spool.release(arr[100:])  # a view releases the whole mapping
    released = _rss_mib()
    assert touched - before > 48  # the pages were resident
    assert touched - released > 48  # and left the process
    assert float(arr[n - 1, 0, 0]) == 1.5  # written data comes back from the file
    np.testing.assert_array_equal(arr[7].ravel(), np.arange(468 * 3))


def test_release_ignores_ordinary_arrays() -> None:
    a = np.ones((10, 3))
    _spool.release(a)
    _spool.release(a[2:])
    assert a.sum() == 30


def test_an_unwritable_temporary_folder_is_one_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(OutputError, match="TMPDIR"):
        _spool.FrameSpool((478, 3))
    with pytest.raises(OutputError, match="TMPDIR"):
        _spool.empty((10, 468, 3))
