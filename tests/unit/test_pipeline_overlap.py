"""The overlapped stages (decode ahead of tracking, eyes and encode in their own threads) keep order and errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from digital_mask.pipeline import PIPELINE_DEPTH, StageTimer, _InBackground, _prefetch


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


def test_in_background_calls_everything_in_order_in_another_thread():
    written, threads = [], set()

    def write(rgb, pts):
        threads.add(threading.current_thread().name)
        written.append((int(rgb[0, 0, 0]), pts))

    writer = _InBackground(write)
    for i in range(40):
        writer.submit(np.full((2, 2, 3), i, np.uint8), 1000 + i)
    writer.finish()
    assert written == [(i, 1000 + i) for i in range(40)]
    assert threading.current_thread().name not in threads


def test_in_background_reraises_an_encoding_error():
    def write(rgb, pts):
        if pts == 5:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        with _InBackground(write) as writer:
            for i in range(20):
                writer.submit(np.zeros((2, 2, 3), np.uint8), i)


def test_in_background_keeps_the_callers_error_and_stops():
    calls = []
    with pytest.raises(KeyError, match="render failed"):
        with _InBackground(calls.append, depth=2) as background:
            for i in range(10):
                background.submit(i)
                if i == 3:
                    raise KeyError("render failed")
    assert calls == list(range(len(calls))) and len(calls) <= 4


def test_stage_timer_counts_per_stage():
    timer = StageTimer()
    assert list(timer.iterate("decode", range(3))) == [0, 1, 2]
    assert timer.call("render", lambda x: x + 1)(1) == 2
    ms = timer.ms_per_frame(3)
    assert set(ms) == set(StageTimer.STAGES) and all(v >= 0 for v in ms.values())
