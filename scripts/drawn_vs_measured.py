"""Where the renderer drew each iris against where the eye stage reads it back on the mask.

    python scripts/drawn_vs_measured.py ORIGINAL MASKED [ORIGINAL MASKED ...]

For each pair (a video and its mask made by this checkout's code), re-fits the original as
``mask`` did, projects the limbus centre the renderer drew in every frame (eyeball centre + 10.5
mm along the fitted gaze, under the frame's pose), measures the mask's eyes with the real eye
stage and prints the median difference, measured - drawn, per eye (image px; y down), and the
median fitted upper-lid height (mm). A difference that changes between two cases (e.g. a
simulated lid retraction and its unmodified piece) is the measurement's on the template, not the
original's: it adds to whatever the original's own measurement carried over into the mask.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from digital_mask import rendering
from digital_mask.io import probe_video
from digital_mask.pipeline import measure, reconstruct


def main() -> None:
    args = [Path(a) for a in sys.argv[1:]]
    if not args or len(args) % 2:
        raise SystemExit(__doc__)
    print("| original | R dx | R dy | L dx | L dy | upper lid R / L (mm) |")
    print("|---|---|---|---|---|---|")
    for original, masked in zip(args[::2], args[1::2]):
        _, eyes, fit = reconstruct(original, probe_video(original))
        drawn = np.stack([rendering.limbus_centers_px(fit.frame(i)) for i in range(len(fit))])
        _, read = measure(masked)
        ok = read.valid & eyes.valid & fit.tracked[:, None]
        diff = read.iris_center_px - drawn
        cells = [f"{np.median(diff[ok[:, e], e, k]):+.2f}" if ok[:, e].any() else "-" for e in range(2) for k in range(2)]
        lids = " / ".join(f"{np.median(fit.upper_lid_mm[fit.tracked, e]):.2f}" for e in range(2))
        print(f"| {original.name} | " + " | ".join(cells) + f" | {lids} |", flush=True)


if __name__ == "__main__":
    main()
