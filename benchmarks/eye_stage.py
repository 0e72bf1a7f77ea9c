"""Eye-stage CPU time: this checkout's ``eyes.measure_eye`` against another source tree's, in one
process, interleaved frame by frame on the same frames and landmarks (so the machine's mood
affects both alike).

    python benchmarks/eye_stage.py ../shared/data/videos/d14.mp4 --baseline /path/to/other/src [--frames 300]

``--baseline`` is the ``src`` folder of another checkout (e.g. a ``git worktree`` of main).
Prints ms a frame (both eyes) for each, their ratio, and how far the two disagree (the iris
centre, px).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

from digital_mask import eyes
from digital_mask.io import iter_frames, probe_video
from digital_mask.tracking import FaceTracker


def load_baseline(src: Path):
    """The baseline tree's ``digital_mask`` package, imported under another name."""
    pkg = src / "digital_mask"
    spec = importlib.util.spec_from_file_location("dm_baseline", pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dm_baseline"] = mod
    spec.loader.exec_module(mod)
    return importlib.import_module("dm_baseline.eyes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--baseline", type=Path, required=True, help="src folder of the other checkout")
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    base = load_baseline(args.baseline.resolve())
    info = probe_video(args.video)
    frames, points = [], []
    with FaceTracker((info.width, info.height), still=False) as tracker:
        for f in iter_frames(args.video):
            if len(frames) == args.frames:
                break
            p = tracker.track(f)
            if np.isfinite(p[:, :2]).all():
                frames.append(f.rgb)
                points.append(p)
    times = {"this": [], "baseline": []}
    moved = []
    for i, (rgb, p) in enumerate(zip(frames, points)):
        order = (("this", eyes), ("baseline", base)) if i % 2 else (("baseline", base), ("this", eyes))
        out = {}
        for name, mod in order:
            t = time.perf_counter()
            out[name] = (mod.measure_eye(rgb, p, 0), mod.measure_eye(rgb, p, 1))
            times[name].append(time.perf_counter() - t)
        for a, b in zip(out["this"], out["baseline"]):
            if a.valid and b.valid:
                moved.append(float(np.hypot(*(a.iris_center_px - b.iris_center_px))))
    ms = {k: 1000 * np.array(v) for k, v in times.items()}
    print(f"{args.video.name}: {len(frames)} frames, {info.width}x{info.height}")
    for k, v in ms.items():
        print(f"  {k:8s} median {np.median(v):.2f} ms a frame (both eyes), mean {v.mean():.2f}")
    print(f"  ratio this / baseline: median {np.median(ms['this']) / np.median(ms['baseline']):.3f}, "
          f"mean {ms['this'].mean() / ms['baseline'].mean():.3f}")
    if moved:
        print(f"  iris centre, this vs baseline: median {np.median(moved):.3f} px, p95 {np.percentile(moved, 95):.3f} px")


if __name__ == "__main__":
    main()
