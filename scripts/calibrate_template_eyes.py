"""Calibrate the primary-gaze convention on our rendered template, the one face whose truth we know.

The eye measurement puts each eyeball centre at a fixed offset from MediaPipe landmarks beside the
eye (``fitting.eyeball_centers_cm``). MediaPipe places those landmarks on the rendered template a
little off (by an amount that depends on the landmark's label, not on the image: mirroring the
render does not move it), so a mask would read back a constant gaze offset per eye. This script
renders the template looking straight ahead (gaze 0) while the head moves smoothly, measures it
with the real pipeline and prints the per-eye offsets (head cm) that make the read-back zero: put
them in ``fitting.PRIMARY_GAZE_OFFSET_CM``. With ``--gaze`` it also renders clips held at other
gazes and prints the read-back slope (how much of a constant deviation the measurement sees).

    python scripts/calibrate_template_eyes.py [--gaze 10 ...]
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from digital_mask import fitting, rendering
from digital_mask.io import VideoWriter
from digital_mask.pipeline import measure
from digital_mask.types import AvatarFrame, EyeTrack, LandmarkTrack

W, H, SCALE, FPS, SECONDS = 640, 480, 22.0, 30, 6.0
LIDS_MM = 4.5  # both margins: the fissure middle at the iris centre, primary gaze by definition


def render_clip(path: Path, gaze_yaw: float, gaze_pitch: float = 0.0, *, upper_mm: float = LIDS_MM,
                lower_mm: float = LIDS_MM, seconds: float = SECONDS) -> None:
    """The template at a constant gaze and lids while the head turns (+-15 deg) and nods (+-8 deg)
    smoothly (one turn and two nods over the clip)."""
    n = int(FPS * seconds)
    with rendering.AvatarRenderer(W, H) as renderer, VideoWriter(path, W, H, Fraction(1, 15360), Fraction(FPS)) as w:
        for i in range(n):
            t = i / FPS
            yaw, pitch = 15.0 * np.sin(2 * np.pi * t / seconds), 8.0 * np.sin(4 * np.pi * t / seconds)
            rot = Rotation.from_euler("yx", [yaw, pitch], degrees=True).as_matrix() @ np.diag([1.0, -1.0, -1.0])
            frame = AvatarFrame(True, rot, SCALE, np.array([W / 2, H / 2 + 20, 0.0]), np.zeros((468, 3), np.float32),
                                np.full(2, gaze_yaw), np.full(2, gaze_pitch), np.full(2, upper_mm), np.full(2, lower_mm))
            w.write(renderer.render(frame), i * 512)


def read_back(track: LandmarkTrack, eyes: EyeTrack) -> tuple[np.ndarray, np.ndarray, float]:
    """Median measured (yaw, pitch) per eye (deg) and the iris centre orbit radius (head cm)."""
    fit = fitting.fit_face(track, eyes)
    ok = fit.tracked
    return np.median(fit.gaze_yaw_deg[ok], 0), np.median(fit.gaze_pitch_deg[ok], 0), fit.iris_orbit_cm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaze", type=float, nargs="*", default=[], help="also held gaze yaws: read-back slope")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "primary.mp4"
        render_clip(path, 0.0)
        track, eyes = measure(path)
        offsets = fitting.PRIMARY_GAZE_OFFSET_CM.copy()
        for it in range(4):  # the read-back is nearly linear in the offset: a few steps converge
            yaw, pitch, radius = read_back(track, eyes)
            print(f"step {it}: offsets {np.round(offsets, 4).tolist()} read back yaw {np.round(yaw, 2)} pitch {np.round(pitch, 2)}")
            offsets[:, 0] += radius * np.sin(np.radians(yaw))
            offsets[:, 1] += radius * np.sin(np.radians(pitch))
            fitting.PRIMARY_GAZE_OFFSET_CM[:] = offsets
        print(f"PRIMARY_GAZE_OFFSET_CM = np.array({np.round(offsets, 3).tolist()})")
        base = read_back(track, eyes)[0]
        for g in args.gaze:
            p = Path(tmp) / f"gaze{g}.mp4"
            render_clip(p, g)
            yaw = read_back(*measure(p))[0]
            print(f"held gaze {g:+.0f}: read back yaw {np.round(yaw, 2)}, slope {np.round((yaw - base) / g, 3)}")


if __name__ == "__main__":
    main()
