"""Calibrate where the template's eyeballs sit so that measuring a mask reads back its gaze.

The eye measurement defines primary gaze by an anatomical convention (eyeball centre behind the
midpoint of MediaPipe's eye corners, ``fitting.eyeball_centers_cm``). MediaPipe perceives the
rendered template's corners a little off the canonical ones, so the template's eyeballs must sit
where that convention puts them, or every mask reads back a constant gaze offset.

This renders the template at gaze 0 under several head poses, measures it with the real pipeline
and moves the eyeball centres by the gaze read back, a few times. It prints the centres to put in
``_template.EYEBALL_CENTERS_CM``. Usage:

    python scripts/calibrate_template_eyes.py [ITERATIONS] [--hold N] [--gaze YAW ...]

``--hold N`` shows each head pose for N consecutive frames (default 3): MediaPipe's video mode
lags a pose that jumps every frame, which adds noise that real videos do not have (``--hold 1``
is the original protocol). ``--gaze`` renders several gaze yaws interleaved in ONE video (as in a
real recording, one neutral shape for all) and prints the read-back per gaze and the slope.
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from digital_mask import rendering
from digital_mask.fitting import fit_face
from digital_mask.io import VideoWriter
from digital_mask.pipeline import measure
from digital_mask.types import AvatarFrame

W, H, SCALE = 640, 480, 22.0


def read_back_gaze(path: Path, hold: int = 3, gaze_yaws: tuple[float, ...] = (0.0,)) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Render frames at the given gaze yaws under varied head poses; return measured (yaw, pitch)
    per eye, median per gaze."""
    poses = [(y, p) for y in (-15, -7, 0, 7, 15) for p in (-8, 0, 8)]
    gazes: list[float] = []
    with rendering.AvatarRenderer(W, H) as renderer, VideoWriter(path, W, H, Fraction(1, 15360), Fraction(30)) as w:
        i = 0
        for yaw, pitch in poses * (2 if hold == 1 else 1):
            rot = Rotation.from_euler("yx", [yaw, pitch], degrees=True).as_matrix() @ np.diag([1.0, -1.0, -1.0])
            for g in gaze_yaws:
                frame = AvatarFrame(True, rot, SCALE, np.array([W / 2, H / 2 + 20, 0.0]), np.zeros((468, 3), np.float32),
                                    np.full(2, g), np.zeros(2), np.array([4.0, 4.0]), np.array([5.0, 5.0]))
                image = renderer.render(frame)
                for _ in range(hold):
                    w.write(image, i * 512)
                    gazes.append(g)
                    i += 1
    track, eyes = measure(path)
    fit = fit_face(track, eyes)
    g_arr = np.array(gazes)
    return {g: (np.median(fit.gaze_yaw_deg[g_arr == g], axis=0), np.median(fit.gaze_pitch_deg[g_arr == g], axis=0))
            for g in gaze_yaws}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", nargs="?", type=int, default=3)
    parser.add_argument("--hold", type=int, default=3, help="frames per head pose (1 = jump every frame)")
    parser.add_argument("--gaze", type=float, nargs="+", default=[0.0], help="gaze yaws, one video")
    args = parser.parse_args()
    centers = rendering.EYEBALL_CENTERS_CM  # adjusted in place for the next iteration
    radius = rendering.EYEBALL_RADIUS_CM
    gazes = tuple(args.gaze)
    with tempfile.TemporaryDirectory() as tmp:
        for it in range(args.iterations + 1):
            result = read_back_gaze(Path(tmp) / f"calib{it}.mp4", args.hold, gazes)
            for g, (yaw, pitch) in result.items():
                print(f"iteration {it}: centres {np.round(centers, 3).tolist()} gaze {g:+.0f}: read back yaw "
                      f"{np.round(yaw, 2)} pitch {np.round(pitch, 2)}")
            if len(gazes) > 1:
                lo, hi = min(gazes), max(gazes)
                print(f"  slope {np.round((result[hi][0] - result[lo][0]) / (hi - lo), 3)}")
            if it == args.iterations or 0.0 not in result:
                break
            yaw, pitch = result[0.0]
            centers[:, 0] -= radius * np.sin(np.radians(yaw))
            centers[:, 1] -= radius * np.sin(np.radians(pitch))


if __name__ == "__main__":
    main()
