"""MediaPipe's head pose on the rendered mask against the pose the mask was drawn with.

    python scripts/probe_template_pose.py VIDEO [VIDEO ...] [--lead 0 0.5 ...]

For each video: reconstructs it as ``mask`` does, renders the template with that fit (the real
motion: head, expression, eyes), tracks the rendering with MediaPipe and fits the head pose to its
landmarks as ``fitting.fit_face`` does (rigid points, Gaussian jitter filter), read ``--lead``
frames ahead, and as ``fit_face`` reads it ahead (row "fit": ``fitting.POSE_LEAD_FRAMES``, capped
at ``POSE_LEAD_MAX_CM``). Prints, per eye, the error of the template's eyeball
centre projected with that pose against where it was drawn (image px; mean and SD, x and y), and
the correlation of the error with the head's image velocity: MediaPipe's landmark filter trails a
moving head, so without a lead the error follows the velocity. Every pixel here is ~3.5 deg of gaze
at a 100 px eye distance (the mask's gaze is read against this pose).
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from digital_mask import _template, fitting, rendering
from digital_mask.io import VideoWriter, probe_video
from digital_mask.pipeline import measure, reconstruct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--lead", type=float, nargs="+", default=[0.0, 0.5])
    args = ap.parse_args()
    idx, canonical, weights = fitting.rigid_points()
    balls = _template.EYEBALL_CENTERS_CM
    flip = np.diag([1.0, -1.0, -1.0])
    print("| video | lead (frames) | R x: mean, SD | R y: mean, SD | L x: mean, SD | L y: mean, SD | corr(y err, y velocity) R / L |")
    print("|---|---|---|---|---|---|---|")
    for video in args.videos:
        _, _, fit = reconstruct(video, probe_video(video))
        w, h = fit.image_size
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "mask.mp4"
            with rendering.AvatarRenderer(w, h) as r, VideoWriter(out, w, h, Fraction(1, 15360), Fraction(30)) as wr:
                for i in range(len(fit)):
                    wr.write(r.render(fit.frame(i)), i * 512)
            track, _ = measure(out)
        ok = track.found & fit.tracked
        n = len(ok)
        rot, scale, trans = np.tile(np.eye(3), (n, 1, 1)), np.ones(n), np.zeros((n, 3))
        for i in np.flatnonzero(ok):
            scale[i], rot[i], trans[i] = fitting.fit_similarity(canonical, track.points_px[i, :468].astype(np.float64)[idx], weights)
        rotvec = fitting._smooth_runs(fitting._rotvecs(rot @ flip), ok, fitting.POSE_SIGMA_FRAMES)
        scale = fitting._smooth_runs(scale, ok, fitting.POSE_SIGMA_FRAMES)
        trans = fitting._smooth_runs(trans, ok, fitting.POSE_SIGMA_FRAMES)
        frames = np.flatnonzero(ok)
        drawn = np.array([(fit.scale_px_per_cm[i] * balls @ fit.rotation[i].T + fit.translation_px[i])[:, :2] for i in frames])
        velocity = np.gradient(drawn, axis=0)
        rule = fitting._pose_lead(fitting._rotation_matrices(rotvec) @ flip, scale, trans, ok)
        for lead in [*args.lead, rule]:
            rs = fitting._rotation_matrices(fitting._lead_runs(rotvec, ok, lead)) @ flip
            ss, ts = fitting._lead_runs(scale, ok, lead), fitting._lead_runs(trans, ok, lead)
            err = np.array([(ss[i] * balls @ rs[i].T + ts[i])[:, :2] for i in frames]) - drawn
            cells = [f"{err[:, e, k].mean():+.2f}, {err[:, e, k].std():.2f}" for e in range(2) for k in range(2)]
            corr = " / ".join(f"{np.corrcoef(velocity[:, e, 1], err[:, e, 1])[0, 1]:+.2f}" for e in range(2))
            label = "fit" if lead is rule else f"{lead:g}"
            print(f"| {video.name} | {label} | " + " | ".join(cells) + f" | {corr} |")


if __name__ == "__main__":
    main()
