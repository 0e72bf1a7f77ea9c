"""Where the renderer drew each iris against where the eye stage reads it back on the mask.

    python scripts/drawn_vs_measured.py ORIGINAL MASKED [ORIGINAL MASKED ...]

For each pair (a video and its mask made by this checkout's code), re-fits the original as
``mask`` did, projects the limbus centre the renderer drew in every frame (eyeball centre + 10.5
mm along the fitted gaze, under the frame's pose), measures the mask's eyes with the real eye
stage and prints the median difference, measured - drawn, per eye (image px; y down), and the
median fitted upper-lid height (mm). A difference that changes between two cases (e.g. a
simulated lid retraction and its unmodified piece) is the measurement's on the template, not the
original's: it adds to whatever the original's own measurement carried over into the mask.

A second table splits the mask's gaze error (mask - original, frames where both see the eye) by
the original's gaze yaw into two terms: "pose", the mask's gaze computed from the drawn iris
centres (what MediaPipe's landmarks and the per-video eyeball on the template contribute), and
"locator", the rest (where the eye stage finds the drawn iris); mean and mean absolute value.
A third table splits the pitch difference the same way, over all those frames, per eye, and a
fourth splits it by the original's gaze yaw as the second does the yaw (a turned iris, deep in a
canthus, is where the locator's pitch errs most).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from digital_mask import rendering
from digital_mask.fitting import fit_face
from digital_mask.io import probe_video
from digital_mask.pipeline import measure, reconstruct

YAW_BINS = (-90, -25, -15, -5, 5, 15, 25, 90)


def main() -> None:
    args = [Path(a) for a in sys.argv[1:]]
    if not args or len(args) % 2:
        raise SystemExit(__doc__)
    rows, split, pitch_split, pitch_by_yaw = [], [], [], []
    for original, masked in zip(args[::2], args[1::2]):
        _, eyes, fit = reconstruct(original, probe_video(original))
        drawn = np.stack([rendering.limbus_centers_px(fit.frame(i)) for i in range(len(fit))])
        track, read = measure(masked)
        ok = read.valid & eyes.valid & fit.tracked[:, None]
        diff = read.iris_center_px - drawn
        cells = [f"{np.median(diff[ok[:, e], e, k]):+.2f}" if ok[:, e].any() else "-" for e in range(2) for k in range(2)]
        lids = " / ".join(f"{np.median(fit.upper_lid_mm[fit.tracked, e]):.2f}" for e in range(2))
        rows.append(f"| {original.name} | " + " | ".join(cells) + f" | {lids} |")
        mask_fit = fit_face(track, read)
        pose_fit = fit_face(track, dataclasses.replace(read, iris_center_px=drawn.astype(read.iris_center_px.dtype)))
        both = ok & mask_fit.tracked[:, None]
        for e, name in enumerate(("R", "L")):
            sel = both[:, e]
            total = (mask_fit.gaze_pitch_deg - fit.gaze_pitch_deg)[sel, e]
            pose = (pose_fit.gaze_pitch_deg - fit.gaze_pitch_deg)[sel, e]
            loc = (mask_fit.gaze_pitch_deg - pose_fit.gaze_pitch_deg)[sel, e]
            pitch_split.append(f"| {original.name} | {name} | {sel.sum()} | {total.mean():+.2f} / {np.abs(total).mean():.2f}"
                               f" | {pose.mean():+.2f} / {np.abs(pose).mean():.2f} | {loc.mean():+.2f} / {np.abs(loc).mean():.2f} |")
            yaw = fit.gaze_yaw_deg[sel, e]
            for table, angle in ((split, "gaze_yaw_deg"), (pitch_by_yaw, "gaze_pitch_deg")):
                pose = (getattr(pose_fit, angle) - getattr(fit, angle))[sel, e]
                loc = (getattr(mask_fit, angle) - getattr(pose_fit, angle))[sel, e]
                for lo, hi in zip(YAW_BINS[:-1], YAW_BINS[1:]):
                    s = (yaw >= lo) & (yaw < hi)
                    if s.sum() >= 5:
                        table.append(f"| {original.name} | {name} | [{lo}, {hi}) | {s.sum()} | {pose[s].mean():+.2f} / {np.abs(pose[s]).mean():.2f}"
                                     f" | {loc[s].mean():+.2f} / {np.abs(loc[s]).mean():.2f} |")
    by_yaw = ("original", "eye", "original's yaw (deg)", "frames")
    tables = (
        (("original", "R dx", "R dy", "L dx", "L dy", "upper lid R / L (mm)"), rows),
        (by_yaw + ("pose: mean / MAE (deg)", "locator: mean / MAE (deg)"), split),
        (("original", "eye", "frames", "pitch, mask - original: mean / MAE (deg)", "pose: mean / MAE", "locator: mean / MAE"), pitch_split),
        (by_yaw + ("pitch pose: mean / MAE (deg)", "pitch locator: mean / MAE (deg)"), pitch_by_yaw),
    )
    print("\n\n".join(markdown_table(head, body) for head, body in tables))


def markdown_table(head: tuple[str, ...], rows: list[str]) -> str:
    """A Markdown table: the header, its rule and the rows (each already a ``| ... |`` line)."""
    return "\n".join([f"| {' | '.join(head)} |", "|---" * len(head) + "|", *rows])


if __name__ == "__main__":
    main()
