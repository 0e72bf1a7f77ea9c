"""Cost of tracking at reduced resolution: original vs mask agreement with and without it.

Usage: python benchmarks/tracking_scale.py [CLIP ...] [--size 1280x720] [--json OUT]

Each clip (default d6, d10, d14 from ../shared/data/videos) is scaled into ``size`` (as
``evaluate speed`` does). It is masked twice, with ``RunConfig(track_downscale=False)`` (full-size
tracking) and ``True`` (the default), and the original and both masks are measured with the same
full-size measurement; ``metrics.compare_measurements`` gives the agreement (ICC, mean absolute
error) of each mask with the original, per eye and measure, and the diagnosis flags that agree.
Also reported: how far the reduced-resolution landmarks and eye measurements of the original lie
from the full-size ones, the downscale factors used, and the tracking stage's ms per frame.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from digital_mask.benchmark import make_clip
from digital_mask.io import probe_video
from digital_mask.metrics import compare_measurements, measurements_from
from digital_mask.pipeline import RunConfig, StageTimer, mask_video, reconstruct
from digital_mask.tracking import downscale_factor

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def _measure(path: Path, downscale: bool, timer: StageTimer | None = None):
    track, eyes, fit = reconstruct(path, probe_video(path), config=RunConfig(track_downscale=downscale), timer=timer)
    return track, eyes, measurements_from(track, eyes, fit, source_name=path.name)


def _summary(cmp: dict) -> dict:
    out = {}
    for eye, measures in cmp["per_eye"].items():
        for m, st in measures.items():
            out[f"{eye}_{m}"] = {"icc": st["icc"], "mae": st["mae"], "n": st["n"]}
    out["flags_agree"] = sum(v["agree"] for v in cmp["flags"].values())
    out["flags_total"] = len(cmp["flags"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clips", nargs="*", type=Path, default=[VIDEOS / f"{c}.mp4" for c in ("d6", "d10", "d14")])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    results = {}
    with tempfile.TemporaryDirectory(prefix="dm-trackscale-") as tmp_name:
        tmp = Path(tmp_name)
        for clip in args.clips:
            src = tmp / f"{clip.stem}.mp4"
            n = make_clip(clip, src, seconds=1e6, size=size)
            timers = {True: StageTimer(), False: StageTimer()}
            full_track, full_eyes, original = _measure(src, False, timers[False])
            small_track, small_eyes, _ = _measure(src, True, timers[True])
            both = full_track.found & small_track.found
            d = np.linalg.norm(full_track.points_px[both, :, :2] - small_track.points_px[both, :, :2], axis=2)
            widths = np.ptp(full_track.points_px[full_track.found, :468, 0], axis=1)
            ok = full_eyes.valid & small_eyes.valid
            d_iris = np.linalg.norm(full_eyes.iris_center_px - small_eyes.iris_center_px, axis=2)[ok]
            entry = {
                "frames": n,
                "face_width_px_median": round(float(np.median(widths)), 1),
                "downscale_factors": dict(Counter(int(downscale_factor(w)) for w in widths)),
                "track_ms_per_frame": {"full": timers[False].ms_per_frame(n)["track"],
                                       "reduced": timers[True].ms_per_frame(n)["track"]},
                "landmark_shift_px": {"mean": round(float(d.mean()), 3), "p95": round(float(np.percentile(d, 95)), 3)},
                "refined_iris_shift_px": {"mean": round(float(d_iris.mean()), 3),
                                          "p95": round(float(np.percentile(d_iris, 95)), 3)},
                "found": {"full": int(full_track.found.sum()), "reduced": int(small_track.found.sum())},
            }
            for downscale in (False, True):
                out = tmp / f"{clip.stem}_mask_{downscale}.mp4"
                mask_video(src, out, RunConfig(track_downscale=downscale))
                _, _, masked = _measure(out, False)
                entry["reduced" if downscale else "full"] = _summary(compare_measurements(original, masked))
            results[clip.stem] = entry
            print(json.dumps({clip.stem: entry}), flush=True)
    rows = []
    for name, e in results.items():
        for key in e["full"]:
            if key.startswith("flags"):
                continue
            a, b = e["full"][key], e["reduced"][key]
            rows.append((name, key, a["icc"], b["icc"], a["mae"], b["mae"]))
    print("| clip | measure | ICC full | ICC reduced | MAE full | MAE reduced |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    for name, e in results.items():
        print(f"{name}: flags agreeing full {e['full']['flags_agree']}/{e['full']['flags_total']}, "
              f"reduced {e['reduced']['flags_agree']}/{e['reduced']['flags_total']}")
    if args.json:
        args.json.write_text(json.dumps({"size": list(size), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
