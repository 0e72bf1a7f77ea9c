"""x264 presets and tunes on rendered masks: encode time, file size and quality, in one run.

Usage: python benchmarks/encoder_presets.py [VIDEO] [--seconds 10] [--size 1280x720] [--crf 18]
                                            [--repeats 3] [--json OUT]

The first ``seconds`` of VIDEO (default: d14 from ../shared/data/videos) are scaled into ``size``
(with borders, as ``evaluate speed`` does), masked, and the rendered frames are kept in memory.
Each encoder setting then encodes exactly those frames with ``io.VideoWriter`` (the mask's writer:
OpenCV RGB -> YUV 4:2:0, libx264, crf as given). Quality is measured against a lossless (crf 0)
encoding of the same frames, on the luma plane: PSNR (dB) and SSIM (Gaussian 11x11, sigma 1.5).
Time: the ``write`` calls plus the final flush, wall and process CPU (x264 runs its own threads),
best of ``repeats``, interleaved; the machine may be shared, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from digital_mask.benchmark import make_clip, metadata
from digital_mask.io import VideoWriter, iter_frames, probe_video
from digital_mask.pipeline import reconstruct
from digital_mask.rendering import AvatarRenderer

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [  # (preset, extra x264 options)
    ("ultrafast", {}),
    ("superfast", {}),
    ("veryfast", {}),
    ("faster", {}),
    ("medium", {}),
    ("superfast", {"tune": "animation"}),
    ("veryfast", {"tune": "animation"}),
    ("superfast", {"tune": "zerolatency"}),
    ("veryfast", {"tune": "zerolatency"}),
    ("veryfast", {"threads": "1"}),
]
TIME_BASE = Fraction(1, 15360)


def _luma(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p")[: f.height].astype(np.float64) for f in container.decode(video=0)]


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def _encode(frames: list[np.ndarray], out: Path, crf: int, preset: str, options: dict) -> tuple[float, float]:
    h, w = frames[0].shape[:2]
    t0, c0 = time.perf_counter(), time.process_time()
    with VideoWriter(out, w, h, TIME_BASE, Fraction(30), crf=crf, preset=preset, x264_options=options) as writer:
        for i, rgb in enumerate(frames):
            writer.write(rgb, i * 512)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "videos" / "d14.mp4")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="dm-x264-") as tmp_name:
        tmp = Path(tmp_name)
        clip = tmp / "clip.mp4"
        n = make_clip(args.video, clip, seconds=args.seconds, size=size)
        _, _, fit = reconstruct(clip, probe_video(clip))
        with AvatarRenderer(*fit.image_size) as renderer:
            frames = [renderer.render(fit.frame(i)) for i in range(n)]
        ref_path = tmp / "ref.mp4"
        _encode(frames, ref_path, 0, "ultrafast", {})
        ref = _luma(ref_path)
        walls: dict[int, list[float]] = {k: [] for k in range(len(SETTINGS))}
        cpus: dict[int, list[float]] = {k: [] for k in range(len(SETTINGS))}
        rows = []
        for rep in range(args.repeats):
            for k, (preset, options) in enumerate(SETTINGS):
                out = tmp / f"enc{k}.mp4"
                wall, cpu = _encode(frames, out, args.crf, preset, options)
                walls[k].append(wall)
                cpus[k].append(cpu)
                if rep == args.repeats - 1:
                    dec = _luma(out)
                    mse = np.mean([np.mean((a - b) ** 2) for a, b in zip(ref, dec)])
                    rows.append({
                        "preset": preset, "options": options, "crf": args.crf,
                        "encode_ms_per_frame_wall": round(1000 * min(walls[k]) / n, 2),
                        "encode_ms_per_frame_cpu": round(1000 * min(cpus[k]) / n, 2),
                        "kbit_per_s": round(out.stat().st_size * 8 / 1000 / (n / 30), 1),
                        "psnr_y_db": round(float(10 * np.log10(255**2 / mse)), 2),
                        "ssim_y": round(float(np.mean([_ssim(a, b) for a, b in zip(ref[::10], dec[::10])])), 4),
                    })
    base = next(r for r in rows if r["preset"] == "veryfast" and not r["options"])
    print(f"{n} frames {size[0]}x{size[1]}, crf {args.crf}; quality vs a lossless encoding of the same frames")
    print("| preset | options | encode ms/frame (wall / CPU) | CPU vs veryfast | kbit/s | size vs veryfast | PSNR-Y dB | SSIM-Y |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "-"
        print(f"| {r['preset']} | {opts} | {r['encode_ms_per_frame_wall']} / {r['encode_ms_per_frame_cpu']} | "
              f"{r['encode_ms_per_frame_cpu'] / base['encode_ms_per_frame_cpu']:.2f} | {r['kbit_per_s']} | "
              f"{r['kbit_per_s'] / base['kbit_per_s']:.2f} | {r['psnr_y_db']} | {r['ssim_y']} |")
    if args.json:
        meta = metadata(args.video, args.seconds, args.repeats, None)
        meta.update({"size": list(size), "frames": n, "crf": args.crf})
        args.json.write_text(json.dumps({"metadata": meta, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
