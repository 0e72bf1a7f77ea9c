"""The overlapped stages (decode ahead of tracking, encode behind rendering) keep order and errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from digital_mask.pipeline import PIPELINE_DEPTH, StageTimer, _BackgroundWriter, _prefetch


def test_prefetch_keeps_order_and_runs_in_another_thread():
    seen_threads = set()

    def produce():
        for i in range(50):
            seen_threads.add(threading.current_thread().name)
            yield i

    assert list(_prefetch(produce())) == list(range(50))
    assert threading.current_thread().name not in seen_threads


def test_prefetch_reraises_the_producers_error_after_the_good_items():
    def produce():
        yield 1
        yield 2
        raise ValueError("corrupt frame")

    got = []
    with pytest.raises(ValueError, match="corrupt frame"):
        for item in _prefetch(produce()):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_stays_at_most_depth_ahead():
    produced = []

    def produce():
        for i in range(100):
            produced.append(i)
            yield i

    for item in _prefetch(produce()):
        if item == 10:
            break
    assert len(produced) <= 10 + 1 + PIPELINE_DEPTH


def test_background_writer_writes_everything_in_order():
    written = []
    writer = _BackgroundWriter(lambda rgb, pts: written.append((int(rgb[0, 0, 0]), pts)))
    for i in range(40):
        writer.write(np.full((2, 2, 3), i, np.uint8), 1000 + i)
    writer.finish()
    assert written == [(i, 1000 + i) for i in range(40)]


def test_background_writer_reraises_an_encoding_error():
    def write(rgb, pts):
        if pts == 5:
            raise RuntimeError("disk full")

    writer = _BackgroundWriter(write)
    with pytest.raises(RuntimeError, match="disk full"):
        for i in range(20):
            writer.write(np.zeros((2, 2, 3), np.uint8), i)
        writer.finish()


def test_stage_timer_counts_per_stage():
    timer = StageTimer()
    assert list(timer.iterate("decode", range(3))) == [0, 1, 2]
    assert timer.call("render", lambda x: x + 1)(1) == 2
    ms = timer.ms_per_frame(3)
    assert set(ms) == set(StageTimer.STAGES) and all(v >= 0 for v in ms.values())
