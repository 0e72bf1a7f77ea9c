"""Read-back of the upper lid on our rendered template, whose truth we know (issue 3's MRD1 bar).

Renders the template with both upper margins held at known MRD1 values (lower margins 5 mm below
the iris) and at a few vertical gazes, while the head turns (+-15 deg) and nods (+-8 deg) as in
``calibrate_template_eyes.py``, measures each clip with the real pipeline and prints the median and
the frame-to-frame spread of the MRD1 read back per eye. A faithful measurement reads back the
requested MRD1 with a small spread; where it does not, the mask's MRD1 differs from the original's.

    python scripts/probe_template_lids.py [--mrd1 2 4 6 8] [--pitch -15 0 15]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from digital_mask import fitting, rendering
from digital_mask.metrics import measurements_from
from digital_mask.pipeline import measure

from calibrate_template_eyes import render_clip  # this folder: run as `python scripts/...`

SECONDS = 2.0
LOWER_MM = 5.0


def placed_mrd1(mrd1_mm: float, gaze_pitch: float) -> np.ndarray:
    """The MRD1 (mm) the renderer places per eye for this request: it cannot open a lid past its
    range, so that, not the request, is the truth (the placement does not depend on head pose)."""
    with rendering.AvatarRenderer(64, 64) as renderer:
        irises = rendering.iris_centers_cm(np.zeros(2), np.full(2, gaze_pitch))
        placed = []
        for e in range(2):
            renderer._lid_params(e, irises[e], mrd1_mm, LOWER_MM)
            placed.append(10.0 * (renderer._upper_margin_y[e] - irises[e][1]))
    return np.array(placed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mrd1", type=float, nargs="+", default=[2.0, 4.0, 6.0, 8.0])
    parser.add_argument("--pitch", type=float, nargs="+", default=[-15.0, 0.0, 15.0])
    args = parser.parse_args()
    print("| gaze pitch | MRD1 asked (mm) | drawn R / L | right: read (median, frame SD) | left: read (median, frame SD) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.mp4"
        for pitch in args.pitch:
            for mrd1 in args.mrd1:
                render_clip(path, 0.0, pitch, upper_mm=mrd1, lower_mm=LOWER_MM, seconds=SECONDS)
                placed = placed_mrd1(mrd1, pitch)
                track, eyes = measure(path)
                fit = fitting.fit_face(track, eyes)
                table, ok = measurements_from(track, eyes, fit).table, fit.tracked
                cells = [f"{np.nanmedian(table[f'{e}_mrd1_mm'][ok]):.2f}, {np.nanstd(table[f'{e}_mrd1_mm'][ok]):.2f}"
                         for e in ("right", "left")]
                print(f"| {pitch:+.0f} | {mrd1:.1f} | {placed[0]:.2f} / {placed[1]:.2f} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
