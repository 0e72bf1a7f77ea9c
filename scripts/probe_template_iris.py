"""Per-frame iris-centre read-back on our rendered template, whose truth we know.

Renders the template held at known gazes and upper lids while the head turns (+-15 deg) and nods
(+-8 deg) as in ``calibrate_template_eyes.py``, measures each clip with the real pipeline and
compares the per-frame measured iris centre (``eyes.measure_eye``) with where the renderer drew
the limbus centre (the eyeball centre + 10.5 mm along the gaze, projected with the frame's pose).
Errors in pixels, in the eye's own frame (x along the corner line, toward image right; y down).

    python scripts/probe_template_iris.py [--yaw 0 10 -10 ...] [--pitch 0] [--mrd1 4.5] [--cache DIR]

With ``--cache DIR`` each clip and its landmarks are kept, and a later run re-measures the eyes
from them without re-rendering or re-tracking (for trying eye-stage changes quickly).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from digital_mask import eyes as eyes_mod
from digital_mask import rendering
from digital_mask.io import VideoWriter, iter_frames
from digital_mask.pipeline import measure
from digital_mask.types import AvatarFrame

W, H, SCALE, FPS = 640, 480, 22.0, 30


def frames_for(gaze_yaw: float, gaze_pitch: float, upper_mm: float, lower_mm: float, seconds: float) -> list[AvatarFrame]:
    out = []
    for i in range(int(FPS * seconds)):
        t = i / FPS
        yaw, pitch = 15.0 * np.sin(2 * np.pi * t / seconds), 8.0 * np.sin(4 * np.pi * t / seconds)
        rot = Rotation.from_euler("yx", [yaw, pitch], degrees=True).as_matrix() @ np.diag([1.0, -1.0, -1.0])
        out.append(AvatarFrame(True, rot, SCALE, np.array([W / 2, H / 2 + 20, 0.0]), np.zeros((468, 3), np.float32),
                               np.full(2, gaze_yaw), np.full(2, gaze_pitch), np.full(2, upper_mm), np.full(2, lower_mm)))
    return out


def clip(cache: Path, gy: float, gp: float, up: float, lo: float, seconds: float):
    # (not Path.with_suffix: the name's decimal points would be taken for a suffix, and clips
    # differing only after the last one, e.g. the lower lid or the length, would share a file)
    stem = f"y{gy:+.0f}_p{gp:+.0f}_u{up:.1f}_l{lo:.1f}_{seconds:g}s"
    video, landmarks = cache / f"{stem}.mp4", cache / f"{stem}.npz"
    frames = frames_for(gy, gp, up, lo, seconds)
    if not landmarks.exists():
        with rendering.AvatarRenderer(W, H) as r, VideoWriter(video, W, H, Fraction(1, 15360), Fraction(FPS)) as w:
            for i, f in enumerate(frames):
                w.write(r.render(f), i * 512)
        track, _ = measure(video)
        np.savez(landmarks, points=track.points_px)
    points = np.load(landmarks)["points"]
    return video, frames, points


def eye_frame_errors(rgb_iter, frames, points):
    """Per frame and eye: (dx, dy) of measured - truth in the eye's frame (px), and valid."""
    errs, valid = [], []
    for rgb, f, p in zip(rgb_iter, frames, points):
        tr = rendering.limbus_centers_px(f)
        row, ok = [], []
        for e in range(2):
            s = eyes_mod.measure_eye(rgb, p, e)
            a, b = (p[i, :2].astype(float) for i in eyes_mod.EYE_CORNERS[e])
            if a[0] > b[0]:
                a, b = b, a
            u = (b - a) / np.linalg.norm(b - a)
            d = s.iris_center_px - tr[e]
            row.append([d @ u, d @ np.array([-u[1], u[0]])])
            ok.append(s.valid)
        errs.append(row)
        valid.append(ok)
    return np.array(errs), np.array(valid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yaw", type=float, nargs="+", default=[0.0, 10.0, -10.0, 20.0, -20.0, 30.0, -30.0])
    ap.add_argument("--pitch", type=float, nargs="+", default=[0.0])
    ap.add_argument("--mrd1", type=float, nargs="+", default=[4.5])
    ap.add_argument("--lower", type=float, default=4.5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/probe_iris"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    print("| gaze yaw | gaze pitch | MRD1 | R dx (med, SD) | R dy (med, SD) | L dx | L dy | R/L |dy|>4px | invalid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for gp in args.pitch:
        for gy in args.yaw:
            for up in args.mrd1:
                path, frames, points = clip(args.cache, gy, gp, up, args.lower, args.seconds)
                e, v = eye_frame_errors((f.rgb for f in iter_frames(path)), frames, points)
                cells = []
                for k in range(2):
                    m = v[:, k] & np.isfinite(e[:, k, 0])
                    for c in range(2):
                        x = e[m, k, c]
                        cells.append(f"{np.median(x):+.2f}, {np.std(x):.2f}")
                out = [int((np.abs(e[v[:, k], k, 1]) > 4).sum()) for k in range(2)]
                print(f"| {gy:+.0f} | {gp:+.0f} | {up:.1f} | " + " | ".join(cells) + f" | {out[0]}/{out[1]} | {int((~v).sum())} |", flush=True)


if __name__ == "__main__":
    main()
