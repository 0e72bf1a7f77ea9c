"""Reconstruction accuracy per clip (the paper's metric) and how much eye refinement changed.

Usage: python benchmarks/accuracy.py [VIDEO_DIR] [--json OUT]
Masks every face clip in VIDEO_DIR (default ../shared/data/videos) and prints a Markdown table:
eyeball and eyelid error as % of the distance between the eye centres (the paper: eyeballs
0.81-1.00 %, eyelids 1.24-1.61 %), tracking, and the image-based refinement's change to
MediaPipe's iris centre and lid aperture (% of eye width).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
from pathlib import Path

from digital_mask import __version__
from digital_mask.errors import NoFaceError
from digital_mask.pipeline import RunConfig, mask_video

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ["d3.mp4", "d6.mp4", "d10.mp4", "d14.mp4", "d18.mp4", "single_face.mp4",
         "face_noface.mov", "noface_face.mov", "short_hamilton_clip.mp4"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("videos", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in CLIPS:
            path = args.videos / name
            if not path.exists():
                continue
            try:
                s = mask_video(path, Path(tmp) / f"{path.stem}.mp4", RunConfig()).summary
            except NoFaceError:
                continue
            rows.append({"clip": name, "frames": s.frames, "tracked": s.frames_tracked,
                         **s.accuracy_pct, **s.eye_refinement})
    print("| clip | frames | tracked | eyeball error % | eyelid error % | iris moved by refinement (mean / p95, % eye width) | aperture changed (mean, % eye width) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} | {r['frames']} | {r['tracked']} | {r['eyeball_pct']:.2f} | {r['eyelid_pct']:.2f} | "
              f"{r.get('iris_shift_mean_pct_eye_width', float('nan')):.1f} / {r.get('iris_shift_p95_pct_eye_width', float('nan')):.1f} | "
              f"{r.get('aperture_change_mean_pct_eye_width', float('nan')):.1f} |")
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        meta = {"digital_mask": __version__, "commit": commit, "python": platform.python_version(), "cpu": platform.processor()}
        args.json.write_text(json.dumps({"metadata": meta, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
