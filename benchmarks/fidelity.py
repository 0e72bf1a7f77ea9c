"""Original vs mask agreement on real clips: mask each, measure both with the same code, tabulate.

Usage: python benchmarks/fidelity.py [VIDEO_DIR] [--clips d6.mp4 d10.mp4 d14.mp4] [--json OUT]
Prints the Markdown table of docs/benchmarks.md ("Fidelity: original vs mask"): per eye,
ICC(2,1) / mean absolute difference for gaze yaw and pitch (deg), MRD1, MRD2, fissure height (mm),
and how many diagnosis flags agree. The original's measurement comes from the masking pass itself
(no second decode); the mask is re-measured from its pixels.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from digital_mask.metrics import compare_measurements, measurements_from
from digital_mask.pipeline import RunConfig, mask_video, measure_video

ROOT = Path(__file__).resolve().parents[1]
MEASURES = ("gaze_yaw_deg", "gaze_pitch_deg", "mrd1_mm", "mrd2_mm", "fissure_height_mm")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("videos", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="+", default=["d6.mp4", "d10.mp4", "d14.mp4"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.clips:
            r = mask_video(args.videos / name, Path(tmp) / f"{Path(name).stem}_masked.mp4", RunConfig())
            original = measurements_from(r.track, r.eyes, r.fit, source_name=name)
            results[name] = compare_measurements(original, measure_video(r.output))
    head = [f"{e} {m}" for e in ("R", "L") for m in ("yaw", "pitch", "MRD1", "MRD2", "fissure")]
    print("| clip | " + " | ".join(head) + " | flags agree |")
    print("|---" * (len(head) + 2) + "|")
    for name, cmp in results.items():
        cells = []
        for eye in ("right", "left"):
            for m in MEASURES:
                s = cmp["per_eye"][eye][m]
                icc = "n/a" if s["icc"] is None else f"{s['icc']:.2f}"
                mae = "n/a" if s["mae"] is None else f"{s['mae']:.2f}"
                cells.append(f"{icc} / {mae}")
        flags = cmp["flags"]
        agree = sum(1 for f in flags.values() if f["agree"])
        print(f"| {name} | " + " | ".join(cells) + f" | {agree}/{len(flags)} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
