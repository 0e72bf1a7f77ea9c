"""Whole-command speed: this checkout's ``digital-mask mask`` against another source tree's, in
interleaved pairs on the same clip (so the machine's mood affects both alike).

    python benchmarks/speed_ab.py --baseline /path/to/other/src [--video d14.mp4] [--pairs 5]

``--baseline`` is the ``src`` folder of another checkout (e.g. a ``git worktree`` of an older
commit). The clip is the first 10 s of the video scaled to 1280x720 (as ``evaluate speed -r
720p``). Each run is a fresh process (start-up included); one warm-up run of each first. Prints
every pair's wall seconds, this / baseline per pair, and the median ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from digital_mask.benchmark import make_clip

THIS_SRC = Path(__file__).resolve().parents[1] / "src"


def run_mask(src: Path, clip: Path, out: Path) -> float:
    """Wall seconds of one ``python -m digital_mask mask`` with ``src`` first on the path."""
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "digital_mask", "mask", str(clip), "-o", str(out)],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="src folder of the other checkout")
    ap.add_argument("--video", type=Path, default=Path("../shared/data/videos/d14.mp4"))
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args()
    trees = {"baseline": args.baseline.resolve(), "this": THIS_SRC}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip_720p.mp4"
        make_clip(args.video, clip, seconds=10.0, size=(1280, 720))
        for src in trees.values():  # warm-up: file caches, bytecode
            run_mask(src, clip, Path(tmp) / "out.mp4")
        times: dict[str, list[float]] = {k: [] for k in trees}
        for i in range(args.pairs):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                times[name].append(run_mask(trees[name], clip, Path(tmp) / "out.mp4"))
            print(f"pair {i + 1}: baseline {times['baseline'][-1]:.2f} s, this {times['this'][-1]:.2f} s")
    b, t = np.array(times["baseline"]), np.array(times["this"])
    print(f"median wall: baseline {np.median(b):.2f} s, this {np.median(t):.2f} s; this / baseline per pair: "
          f"median {np.median(t / b):.3f}, range {np.min(t / b):.3f}-{np.max(t / b):.3f}; "
          f"this faster in {int(np.sum(t < b))} of {len(b)} pairs")


if __name__ == "__main__":
    main()
