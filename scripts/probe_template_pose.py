"""MediaPipe's head pose on the rendered mask against the pose the mask was drawn with.

    python scripts/probe_template_pose.py VIDEO [VIDEO ...] [--lead 0 0.5 ...] [--still-face] [--still-eyes]

For each video: reconstructs it as ``mask`` does, renders the template with that fit (the real
motion: head, expression, eyes), tracks the rendering with MediaPipe and fits the head pose to its
landmarks with ``fitting.fit_face`` itself, once for each ``--lead`` (``fitting.POSE_LEAD_FRAMES``,
0 = no lead; the cap ``POSE_LEAD_MAX_CM`` stays; the default 0.5 is the pipeline's). Prints, per eye, the error of the template's eyeball
centre projected with that pose against where it was drawn (image px; mean and SD, x and y), and
the correlation of the error with the head's image velocity: MediaPipe's landmark filter trails a
moving head, so without a lead the error follows the velocity. Every pixel here is ~3.5 deg of gaze
at a 100 px eye distance (the mask's gaze is read against this pose).

``--still-face`` renders the template without the face's motion (brows, mouth, cheeks: the
expression held at zero) and ``--still-eyes`` with both eyes straight ahead and the lids held
(MRD1 4 mm, MRD2 5 mm); with both, the template is a rigid head that only moves as the
video's head moves, so what is left is MediaPipe's error on a rigid rendered head. With
``--still-eyes`` a second table gives the gaze the measurement reads on those still eyes (each
eye's yaw and pitch: mean absolute deviation from its own median, frames where it sees the eye;
drawn: 0 in every frame), i.e. the instrument's own gaze error on such a head.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from digital_mask import _template, fitting, rendering
from digital_mask.io import VideoWriter, probe_video
from digital_mask.pipeline import measure, reconstruct
from digital_mask.types import AvatarFrame


# MRD1 and MRD2 (mm) of the still eyes: an ordinary opening, the iris's top just under the upper lid
# (as scripts/probe_template_lids.py holds the lower lid)
STILL_LIDS_MM = (4.0, 5.0)


def held(frame: AvatarFrame, still_face: bool, still_eyes: bool) -> AvatarFrame:
    """The frame with the face's motion and/or the eyes held still (the head's pose unchanged)."""
    if still_face:
        frame = dataclasses.replace(frame, expression_cm=np.zeros_like(frame.expression_cm))
    if still_eyes:
        frame = dataclasses.replace(
            frame, gaze_yaw_deg=np.zeros(2), gaze_pitch_deg=np.zeros(2),
            upper_lid_mm=np.full(2, STILL_LIDS_MM[0]), lower_lid_mm=np.full(2, STILL_LIDS_MM[1]))
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--lead", type=float, nargs="+", default=[0.0, fitting.POSE_LEAD_FRAMES])
    ap.add_argument("--still-face", action="store_true", help="no expression motion")
    ap.add_argument("--still-eyes", action="store_true", help="eyes straight ahead, lids held (MRD1 4, MRD2 5 mm)")
    args = ap.parse_args()
    balls = _template.EYEBALL_CENTERS_CM
    still_gaze = []
    print("| video | lead (frames) | R x: mean, SD | R y: mean, SD | L x: mean, SD | L y: mean, SD | corr(y err, y velocity) R / L |")
    print("|---|---|---|---|---|---|---|")
    for video in args.videos:
        _, _, fit = reconstruct(video, probe_video(video))
        w, h = fit.image_size
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "mask.mp4"
            with rendering.AvatarRenderer(w, h) as r, VideoWriter(out, w, h, Fraction(1, 15360), Fraction(30)) as wr:
                for i in range(len(fit)):
                    wr.write(r.render(held(fit.frame(i), args.still_face, args.still_eyes)), i * 512)
            track, eyes = measure(out)

        def at_eyeballs(f, frames):  # the template's eyeball centres under a fit's pose, image px
            return np.array([(f.scale_px_per_cm[i] * balls @ f.rotation[i].T + f.translation_px[i])[:, :2] for i in frames])

        default = fitting.POSE_LEAD_FRAMES
        for lead in args.lead:
            fitting.POSE_LEAD_FRAMES = lead
            read = fitting.fit_face(track, eyes)
            frames = np.flatnonzero(read.tracked & fit.tracked)
            drawn = at_eyeballs(fit, frames)
            err = at_eyeballs(read, frames) - drawn
            velocity = np.gradient(drawn, axis=0)
            cells = [f"{err[:, e, k].mean():+.2f}, {err[:, e, k].std():.2f}" for e in range(2) for k in range(2)]
            corr = " / ".join(f"{np.corrcoef(velocity[:, e, 1], err[:, e, 1])[0, 1]:+.2f}" for e in range(2))
            print(f"| {video.name} | {lead:g} | " + " | ".join(cells) + f" | {corr} |")
            if args.still_eyes:
                seen = read.tracked[:, None] & fit.tracked[:, None] & eyes.valid
                gaze = [np.abs(a[seen[:, e], e] - np.median(a[seen[:, e], e])).mean()
                        for e in range(2) for a in (read.gaze_yaw_deg, read.gaze_pitch_deg)]
                still_gaze.append(f"| {video.name} | {lead:g} | " + " | ".join(f"{g:.2f}" for g in gaze) + " |")
        fitting.POSE_LEAD_FRAMES = default
    if still_gaze:
        print("\n| video | lead (frames) | R yaw | R pitch | L yaw | L pitch (deg: mean absolute deviation from the median) |")
        print("|---|---|---|---|---|---|")
        print("\n".join(still_gaze))


if __name__ == "__main__":
    main()
