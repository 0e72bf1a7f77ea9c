"""Original vs mask agreement on real clips: mask each, measure both with the same code, tabulate.

Usage: python benchmarks/fidelity.py [VIDEO_DIR] [--clips d6.mp4 d10.mp4 d14.mp4] [--json OUT]
Prints the Markdown table of docs/benchmarks.md ("Fidelity: original vs mask"): per eye,
ICC(2,1) / mean absolute difference for gaze yaw and pitch (deg), MRD1, MRD2, fissure height (mm),
and how many diagnosis flags agree. The original's measurement comes from the masking pass itself
(no second decode); the mask is re-measured from its pixels.

Each clip also gets a retest row: the original against a copy of itself moved half a pixel
(bilinear) and re-encoded with the mask's encoder settings. Nothing about the eyes changes, so
this is the measurement's own repeatability, the floor any mask's agreement sits on.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from digital_mask.fidelity import shifted_copy
from digital_mask.metrics import compare_measurements, measurements_from
from digital_mask.pipeline import RunConfig, mask_video, measure_video

ROOT = Path(__file__).resolve().parents[1]
MEASURES = ("gaze_yaw_deg", "gaze_pitch_deg", "mrd1_mm", "mrd2_mm", "fissure_height_mm")


def row(label: str, cmp: dict) -> str:
    cells = []
    for eye in ("right", "left"):
        for m in MEASURES:
            s = cmp["per_eye"][eye][m]
            icc = "n/a" if s["icc"] is None else f"{s['icc']:.2f}"
            mae = "n/a" if s["mae"] is None else f"{s['mae']:.2f}"
            cells.append(f"{icc} / {mae}")
    agree = sum(1 for f in cmp["flags"].values() if f["agree"])
    return f"| {label} | " + " | ".join(cells) + f" | {agree}/{len(cmp['flags'])} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("videos", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="+", default=["d6.mp4", "d10.mp4", "d14.mp4"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results: dict[str, dict] = {"mask": {}, "retest": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.clips:
            stem = Path(name).stem
            r = mask_video(args.videos / name, Path(tmp) / f"{stem}_masked.mp4", RunConfig())
            original = measurements_from(r.track, r.eyes, r.fit, source_name=name)
            results["mask"][name] = compare_measurements(original, measure_video(r.output))
            copy = Path(tmp) / f"{stem}_shifted.mp4"
            shifted_copy(args.videos / name, copy)
            results["retest"][name] = compare_measurements(original, measure_video(copy))
    head = [f"{e} {m}" for e in ("R", "L") for m in ("yaw", "pitch", "MRD1", "MRD2", "fissure")]
    print("| clip | " + " | ".join(head) + " | flags agree |")
    print("|---" * (len(head) + 2) + "|")
    for name in args.clips:
        print(row(f"{name} mask", results["mask"][name]))
        print(row(f"{name} retest", results["retest"][name]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
