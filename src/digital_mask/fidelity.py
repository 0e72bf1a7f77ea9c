"""Clinical consistency of the mask on simulated conditions (issue 5, ``digital-mask evaluate fidelity``).

For every face clip of a folder, one short piece where the eyes are open and tracked is chosen;
a grid of cases is simulated on it with ``simulate.simulate_video`` (strabismus, nystagmus,
ptosis, lid retraction at several sizes, plus the unmodified piece as a control); each case is
masked (``pipeline.mask_video``), the simulated original is measured from the masking pass itself
(``metrics.measurements_from`` on the ``MaskResult``) and the mask from its pixels
(``pipeline.measure_video``). Then, per case:

* **errors against the ground truth**, on the original and on the mask. The truth is a *change*,
  so a measurement is always *case minus the unmodified piece*, each side against its own
  baseline: the simulated original against the piece, the mask of the case against the mask of
  the piece (the control). Paired frame by frame (the simulator keeps every frame and its
  timestamp), medians over frames where the eye(s) are open in both videos and the truth says the
  condition is shown. Strabismus: deviation change in prism dioptres along the simulated axis;
  nystagmus: the frequency the measurement reports (``metrics.detect_nystagmus``; mean over the
  eyes where it found nystagmus; a case it missed on both eyes has no frequency, its miss counts in
  the diagnosis, and the more prominent of its two eyes' strongest peaks is kept apart, as
  ``peak_abs_error_*``) and amplitude (the least-squares gain of the measured gaze change on the
  truth waveform, times the truth's peak-to-peak); ptosis and retraction: MRD1 change in mm.
  Strabismus and nystagmus also count the cases within ``ERROR_BOUNDS`` of the truth.
* **an automated diagnosis** per case and eye (``diagnose``; thresholds in ``THRESHOLDS``), from
  the original and from the mask, with no knowledge of the truth (all frames open in both the case
  and its baseline);
* per condition: Cohen's kappa between original and mask, accuracy of each against the truth,
  mean absolute errors; 95 % intervals of kappa and of the accuracy gap (``bootstrap_ci95``,
  whole cases resampled);
* the paper's accuracy metric (``RunSummary.accuracy_pct``: eyeball and eyelid error as % of the
  distance between the eye centres) of every masking run.

Diagnosis rules (the truth is a change of a real, presumably healthy, face; absolute clinical
cut-offs would score the clip's own resting values, e.g. d6 reads 30 deg converged at rest):

* strabismus (one rating per case: a deviation is a relation between the eyes): the primary-gaze
  deviation changed by at least ``metrics.DEVIATION_H_PD`` horizontally or
  ``metrics.DEVIATION_V_PD`` vertically against the unmodified piece;
* nystagmus (per eye): ``metrics.detect_nystagmus`` (its thresholds) on the eye's gaze change
  against the unmodified piece (on a 3 s piece the detector run on the case alone also fires on
  natural gaze shifts and misses real oscillations: reported as ``absolute_rules``);
* ptosis / retraction (per eye): MRD1 lower / higher by at least ``LID_CHANGE_MM`` than on the
  unmodified piece.

A value that cannot be measured (fewer than ``MIN_FRAMES`` usable frames) counts as "no" (nothing
could be seen). Controls are the baselines: under relative rules they are "no" by construction, so
kappa and accuracy are over the simulated cases (a case x eye item for the per-eye conditions);
the absolute clinical flags of ``metrics.diagnosis_flags`` (controls included) are reported beside
them. A case whose condition the simulator could show in fewer than half of its frames (eyes too
small, closed, or turned too far) is left out with a note.

Cache: ``CACHE/pieces`` (the pieces), ``CACHE/selection`` (the piece choice per clip; both keyed by
a hash of the clip's bytes, so a copied clip finds them),
``CACHE/cases/<case>/`` (simulated clip + truth, keyed by a hash of the simulator and measurement
code; mask and both measurements, keyed by a hash of the whole masking code), so a rerun with
unchanged code only recomputes the statistics. Simulated clips show the real person: the cache
is private, like the inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, MaskError, NoFaceError
from .metrics import (
    DEVIATION_H_PD,
    DEVIATION_V_PD,
    NYSTAGMUS_BAND_HZ,
    NYSTAGMUS_MIN_P2P_DEG,
    NYSTAGMUS_MIN_PROMINENCE,
    NYSTAGMUS_MIN_VARIANCE_SHARE,
    detect_nystagmus,
    diagnosis_flags,
    prism_dioptres,
    summarize,
)
from .types import EYE_NAMES

log = logging.getLogger(__name__)

CONDITIONS = ("strabismus", "nystagmus", "ptosis", "retraction")
UNITS = {"strabismus": "prism dioptres (deviation change)", "nystagmus": "Hz (frequency, cases where it was found)",
         "ptosis": "mm (MRD1 change)", "retraction": "mm (MRD1 change)"}
LID_CHANGE_MM = 1.0  # |MRD1 change| at or above this = ptosis (down) / retraction (up)
# Per-case error bounds of issue 5's "done when" (3 PD of deviation, 0.3 Hz of nystagmus frequency).
ERROR_BOUNDS = {"strabismus": 3.0, "nystagmus": 0.3}
MIN_FRAMES = 10  # fewer usable frames: not measurable
PIECE_SECONDS = 3.0
MIN_PIECE_SECONDS = 2.0
PIECE_MIN_OPEN = 0.9  # preferred: both eyes open (iris found) in this share of the piece's frames
PIECE_FALLBACK_OPEN = 0.6  # below this nowhere in the clip: the clip is skipped
PIECE_STEP_S = 0.5
THRESHOLDS = {
    "strabismus": f"|deviation change vs the unmodified piece| >= {DEVIATION_H_PD:g} PD horizontal or >= "
                  f"{DEVIATION_V_PD:g} PD vertical (metrics.DEVIATION_H_PD / DEVIATION_V_PD); median over "
                  "frames with both eyes open in both videos; one rating per case",
    "nystagmus": "metrics.detect_nystagmus with its own thresholds (peak of a robust (Tukey) least-squares "
                 f"periodogram in {NYSTAGMUS_BAND_HZ[0]:g}-{NYSTAGMUS_BAND_HZ[1]:g} Hz >= "
                 f"{NYSTAGMUS_MIN_PROMINENCE:g}x the background (power law + white floor), >= "
                 f"{NYSTAGMUS_MIN_P2P_DEG:g} deg peak to peak and >= {100 * NYSTAGMUS_MIN_VARIANCE_SHARE:g} % of one "
                 "axis's variance) on the gaze change of the eye against the unmodified piece (frames with that "
                 "eye open in both videos); per eye",
    "ptosis": f"MRD1 change vs the unmodified piece <= -{LID_CHANGE_MM:g} mm (median over frames with that eye "
              "open in both videos); per eye",
    "retraction": f"MRD1 change vs the unmodified piece >= +{LID_CHANGE_MM:g} mm; per eye",
    "not_measurable": f"fewer than {MIN_FRAMES} usable frames: counted as 'no'",
    "rated_items": "simulated cases only: under these relative rules a control compared with itself is 'no' by "
                   "construction, so controls serve as baselines and are rated only under the absolute rules",
    "simulated": f"a case counts only if the simulator showed the condition in >= {100 * 0.5:.0f} % of its frames",
    "absolute_rules": "metrics.diagnosis_flags of each video alone (horizontal/vertical deviation flag != none, "
                      "nystagmus_<eye>, ptosis_<eye> MRD1 < 2 mm, lid_retraction_<eye> MRD1 > 6.35 mm), controls "
                      "included: reported in absolute_rules for comparison",
}
MIN_SHOWN_FRACTION = 0.5
DEFAULT_VIDEOS = Path("../shared/data/videos")
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})
DEFAULT_CACHE = Path.home() / ".cache" / "digital-mask" / "fidelity"

# code whose change invalidates a simulated clip / a mask and its measurements
_SIM_CODE = ("simulate.py", "_eye_edit.py", "eyes.py", "fitting.py", "tracking.py", "_mediapipe.py", "io.py",
             "pipeline.py", "types.py", "models.py")
_NOT_MASK_CODE = frozenset({"fidelity.py", "cli.py", "report.py", "metrics.py", "privacy.py", "benchmark.py",
                            "_recognisers.py", "_anonymisers.py", "__main__.py"})

RETEST_SHIFT_PX = 0.5  # the retest copy is the clip moved this far right and down

ProgressFn = Callable[[str, int, int], None]


# ----------------------------------------------------------------------------------------------
# statistics


def cohen_kappa(a: list | np.ndarray, b: list | np.ndarray) -> float:
    """Cohen's kappa between two raters' labels (any hashable categories).

    ``(p_o - p_e) / (1 - p_e)``, with p_o the observed agreement and p_e the agreement expected
    from each rater's marginal frequencies. NaN when undefined (no items, or both raters gave
    one and the same label to every item: p_e = 1).
    """
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"kappa: {len(a)} and {len(b)} labels")
    n = len(a)
    if n == 0:
        return float("nan")
    cats = sorted(set(a) | set(b), key=repr)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    p_e = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    if p_e >= 1.0:
        return float("nan")
    return (p_o - p_e) / (1.0 - p_e)


# ----------------------------------------------------------------------------------------------
# the grid


@dataclass(frozen=True, slots=True)
class Case:
    """One simulated case: a clip piece and a condition SPEC (None = the unmodified control)."""

    clip: str
    spec: str | None

    @property
    def condition(self) -> str:
        return "control" if self.spec is None else self.spec.split(":", 1)[0]

    @property
    def case_id(self) -> str:
        tag = "control" if self.spec is None else re.sub(r"[^a-z0-9.]+", "_", self.spec.lower()).strip("_")
        return f"{Path(self.clip).stem}__{tag}"


def clip_grid(k: int) -> list[str | None]:
    """The cases of the k-th clip (0-based): a control and each condition at two sizes.

    Eyes, directions and waveforms rotate with ``k`` so that the whole grid covers eso, exo and
    vertical deviations of 8 and 15 deg, nystagmus at 3 and 5 Hz with 4 and 8 deg peak to peak,
    pendular and jerk, ptosis 1.5 and 3 mm, retraction 1.5 and 2.5 mm, on both eyes.
    """
    e1, e2 = EYE_NAMES[k % 2], EYE_NAMES[(k + 1) % 2]
    small_dir = ("eso", "exo", "hyper")[k % 3]
    large_dir = ("exo", "eso", "eso")[k % 3]
    if k % 2 == 0:
        nys = ["nystagmus:hz=3,amp=8,wave=pendular,axis=horizontal", "nystagmus:hz=5,amp=4,wave=jerk,axis=horizontal"]
    else:
        nys = ["nystagmus:hz=5,amp=6,wave=pendular,axis=horizontal", "nystagmus:hz=3,amp=6,wave=jerk,axis=horizontal"]
    return [
        None,
        f"strabismus:eye={e1},dir={small_dir},deg=8",
        f"strabismus:eye={e2},dir={large_dir},deg=15",
        *nys,
        f"ptosis:eye={e1},mm=1.5",
        f"ptosis:eye={e2},mm=3",
        f"retraction:eye={e2},mm=1.5",
        f"retraction:eye={e1},mm=2.5",
    ]


def build_grid(clips: list[str], max_cases: int | None = None) -> list[Case]:
    """All cases of ``clips`` (in order, ``clip_grid`` each); with ``max_cases``, spread the cut
    over the clips round-robin (each clip's control first, so every kept case has its baseline)."""
    per_clip = [[Case(c, s) for s in clip_grid(k)] for k, c in enumerate(clips)]
    if max_cases is None or max_cases >= sum(map(len, per_clip)):
        return [case for cases in per_clip for case in cases]
    keep: set[Case] = set()
    depth = 0
    while len(keep) < max_cases:
        for cases in per_clip:
            if depth < len(cases) and len(keep) < max_cases:
                keep.add(cases[depth])
        depth += 1
    return [case for cases in per_clip for case in cases if case in keep]


# ----------------------------------------------------------------------------------------------
# piece selection


def choose_piece(table: dict[str, np.ndarray], seconds: float = PIECE_SECONDS,
                 min_seconds: float = MIN_PIECE_SECONDS, taken: list[dict] | None = None) -> dict:
    """The window of a clip's per-frame table best suited to simulate on (not overlapping the
    pieces already ``taken``: their ``start_frame`` and ``frames``).

    Candidates: windows of ``seconds`` (shorter, down to ``min_seconds``, inside a tracked run that
    is shorter) lying inside a run of tracked frames, every ``PIECE_STEP_S``. Preferred: both eyes
    open in >= PIECE_MIN_OPEN of the frames, then the steadiest gaze (lowest median SD of the
    two eyes' yaw and pitch over the open frames: natural gaze shifts would blur a simulated
    nystagmus); else the window with most open frames if >= PIECE_FALLBACK_OPEN.

    Returns:
        ``{"start_s", "duration_s", "start_frame", "frames", "open_fraction", "gaze_sd_deg"}``,
        or ``{"skip": reason}``.
    """
    t = np.asarray(table["time_s"], np.float64)
    n = len(t)
    if n < 2:
        return {"skip": "too few frames"}
    dt = float(np.median(np.diff(t)))
    tracked = np.asarray(table["tracked"], bool)
    both_open = tracked & np.asarray(table["right_open"], bool) & np.asarray(table["left_open"], bool)
    gaze = np.stack([table[f"{e}_gaze_{a}_deg"] for e in EYE_NAMES for a in ("yaw", "pitch")], axis=1)
    want, least = int(round(seconds / dt)), int(math.ceil(min_seconds / dt - 1e-6))
    step = max(1, int(round(PIECE_STEP_S / dt)))
    d = np.diff(np.concatenate([[0], tracked.astype(np.int8), [0]]))
    cands = []
    for s0, u0 in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)):
        length = min(want, u0 - s0)
        if length < least:
            continue
        for s in range(s0, u0 - length + 1, step):
            if any(s < c["start_frame"] + c["frames"] and c["start_frame"] < s + length for c in taken or []):
                continue
            sel = slice(s, s + length)
            ok = both_open[sel]
            frac = float(ok.mean())
            sd = float(np.median(np.nanstd(gaze[sel][ok], axis=0))) if ok.sum() >= 2 else float("inf")
            cands.append((s, length, frac, sd))
    if not cands:
        return {"skip": f"no {'other ' if taken else ''}run of {min_seconds:g} s with a tracked face"}
    good = [c for c in cands if c[2] >= PIECE_MIN_OPEN]
    if good:
        best = min(good, key=lambda c: (-c[1], c[3]))
    else:
        best = max(cands, key=lambda c: (c[2], c[1]))
        if best[2] < PIECE_FALLBACK_OPEN:
            return {"skip": f"both eyes open in at most {100 * best[2]:.0f} % of the frames of any "
                            f"{min_seconds:g}-{seconds:g} s piece"}
    s, length, frac, sd = best
    return {"start_s": round(float(t[s]), 4), "duration_s": round(length * dt, 4), "start_frame": int(s),
            "frames": int(length), "open_fraction": round(frac, 3), "gaze_sd_deg": round(sd, 2)}


# ----------------------------------------------------------------------------------------------
# measurements of one case


def _median(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size >= MIN_FRAMES else None


def _pd(deg: float | None) -> float | None:
    return None if deg is None else float(prism_dioptres(deg))


def changes(case: dict[str, np.ndarray], base: dict[str, np.ndarray], summary: dict,
            shown: np.ndarray | None = None) -> dict:
    """What changed in a case against its unmodified baseline (both per-frame tables, same frames).

    Args:
        case, base: ``metrics.per_frame_table`` of the case and of its baseline (same length).
        summary: ``metrics.summarize`` of the case alone (its absolute nystagmus detection, kept
            for comparison as ``nystagmus_absolute``).
        shown: optional (T,) bool, frames where the condition is shown (truth); None = all.

    Nystagmus: ``metrics.detect_nystagmus`` (its thresholds unchanged, ``robust=True``) on the gaze
    CHANGE of each eye (case minus baseline, frames with that eye open in both): the natural gaze
    shifts of the piece cancel, the simulated oscillation remains, and a mis-measured frame is an
    outlier of it.

    Returns:
        ``{"deviation_h_pd", "deviation_v_pd", "mrd1_change_mm": {eye: x}, "nystagmus": {eye: bool},
        "nystagmus_hz": {eye: x}, "nystagmus_p2p_deg": {eye: x}, "nystagmus_absolute": {eye: bool},
        "frames": {...}}``; None where fewer than MIN_FRAMES frames were usable.
    """
    n = min(len(case["time_s"]), len(base["time_s"]))
    sel = np.ones(n, bool) if shown is None else np.asarray(shown, bool)[:n]

    def col(t: dict, key: str) -> np.ndarray:
        return np.asarray(t[key][:n], np.float64)

    def is_open(t: dict, eye: str) -> np.ndarray:
        return np.asarray(t[f"{eye}_open"][:n], bool)

    both = sel & is_open(case, "right") & is_open(case, "left") & is_open(base, "right") & is_open(base, "left")
    dh = (col(case, "right_gaze_yaw_deg") - col(case, "left_gaze_yaw_deg")) - (
        col(base, "right_gaze_yaw_deg") - col(base, "left_gaze_yaw_deg"))
    dv = (col(case, "right_gaze_pitch_deg") - col(case, "left_gaze_pitch_deg")) - (
        col(base, "right_gaze_pitch_deg") - col(base, "left_gaze_pitch_deg"))
    out: dict = {"deviation_h_pd": _pd(_median(dh[both])), "deviation_v_pd": _pd(_median(dv[both])),
                 "mrd1_change_mm": {}, "nystagmus": {}, "nystagmus_hz": {}, "nystagmus_p2p_deg": {},
                 "nystagmus_prominence": {},
                 "nystagmus_absolute": {}, "frames": {"both_open": int(both.sum())}}
    t = col(case, "time_s")
    for eye in EYE_NAMES:
        ok = sel & is_open(case, eye) & is_open(base, eye)
        out["frames"][f"{eye}_open"] = int(ok.sum())
        out["mrd1_change_mm"][eye] = _median((col(case, f"{eye}_mrd1_mm") - col(base, f"{eye}_mrd1_mm"))[ok])
        d_yaw = col(case, f"{eye}_gaze_yaw_deg") - col(base, f"{eye}_gaze_yaw_deg")
        d_pitch = col(case, f"{eye}_gaze_pitch_deg") - col(base, f"{eye}_gaze_pitch_deg")
        ok &= np.isfinite(d_yaw) & np.isfinite(d_pitch)
        hz = p2p = prominence = None
        detected = False
        if ok.sum() >= MIN_FRAMES:
            ny = detect_nystagmus(np.where(ok, d_yaw, np.nan), np.where(ok, d_pitch, np.nan), t, ok, robust=True)
            detected = bool(ny["detected"])
            peak = ny if "frequency_hz" in ny else ny.get("strongest_peak", {})
            hz, p2p, prominence = peak.get("frequency_hz"), peak.get("amplitude_p2p_deg"), ny.get("prominence")
        out["nystagmus"][eye] = detected
        out["nystagmus_hz"][eye] = hz
        out["nystagmus_p2p_deg"][eye] = p2p
        out["nystagmus_prominence"][eye] = prominence
        out["nystagmus_absolute"][eye] = bool(summary.get("nystagmus", {}).get(eye, {}).get("detected", False))
    return out


def diagnose(ch: dict) -> dict:
    """Diagnosis from ``changes``' output (see the module docstring for the rules).

    Returns ``{"strabismus": bool, "nystagmus": {eye: bool}, "ptosis": {eye: bool},
    "retraction": {eye: bool}}``; an unmeasurable value gives False.
    """
    h, v = ch.get("deviation_h_pd"), ch.get("deviation_v_pd")
    strab = bool((h is not None and abs(h) >= DEVIATION_H_PD) or (v is not None and abs(v) >= DEVIATION_V_PD))
    out: dict = {"strabismus": strab, "nystagmus": {}, "ptosis": {}, "retraction": {}}
    for eye in EYE_NAMES:
        d = ch["mrd1_change_mm"].get(eye)
        out["nystagmus"][eye] = bool(ch["nystagmus"].get(eye, False))
        out["ptosis"][eye] = bool(d is not None and d <= -LID_CHANGE_MM)
        out["retraction"][eye] = bool(d is not None and d >= LID_CHANGE_MM)
    return out


def truth_labels(condition: dict | None) -> dict:
    """The diagnosis the truth implies, in ``diagnose``'s layout (condition: truth["condition"];
    None for a control)."""
    name = None if condition is None else condition["name"]
    out: dict = {"strabismus": name == "strabismus", "nystagmus": {}, "ptosis": {}, "retraction": {}}
    for eye in EYE_NAMES:
        out["nystagmus"][eye] = name == "nystagmus"
        for lid in ("ptosis", "retraction"):
            out[lid][eye] = name == lid and condition.get("eye") == eye
    return out


def _items(diag: dict, cond: str) -> list[bool]:
    """A case's rated items for one condition: one for strabismus, one per eye otherwise."""
    return [diag["strabismus"]] if cond == "strabismus" else [diag[cond][e] for e in EYE_NAMES]


def case_errors(truth: dict, case_orig: dict, base_orig: dict, sum_orig: dict,
                case_mask: dict, base_mask: dict, sum_mask: dict) -> dict:
    """Errors of the measurement against the truth, on the original and on the mask (shown frames)."""
    cond = truth["condition"]
    pf = truth["per_frame"]
    shown = np.asarray(pf["shown"], bool)
    out: dict = {"condition": cond["name"]}
    sides = {"original": (case_orig, base_orig, sum_orig), "mask": (case_mask, base_mask, sum_mask)}
    yaw_off, pitch_off = np.asarray(pf["gaze_yaw_offset_deg"]), np.asarray(pf["gaze_pitch_offset_deg"])
    lid_off = np.asarray(pf["upper_lid_offset_mm"])
    if cond["name"] == "strabismus":
        axis = "h" if cond["axis"] == "horizontal" else "v"
        off = yaw_off if axis == "h" else pitch_off
        sel = shown & np.isfinite(off).all(axis=1)
        truth_pd = _pd(float(np.median(off[sel, 0] - off[sel, 1]))) if sel.any() else None
        out["truth"] = None if truth_pd is None else round(truth_pd, 2)
        for side, (c, b, s) in sides.items():
            m = changes(c, b, s, shown)[f"deviation_{axis}_pd"]
            out[f"measured_{side}"] = None if m is None else round(m, 2)
            out[f"abs_error_{side}"] = None if m is None or truth_pd is None else round(abs(m - truth_pd), 2)
    elif cond["name"] == "nystagmus":
        f0, amp = float(cond["frequency_hz"]), float(cond["amplitude_pp_deg"])
        out["truth"] = f0
        out["truth_amplitude_pp_deg"] = amp
        key = "gaze_yaw_deg" if cond["axis"] == "horizontal" else "gaze_pitch_deg"
        off = yaw_off if cond["axis"] == "horizontal" else pitch_off
        for side, (c, b, s) in sides.items():
            ch = changes(c, b, s, shown)
            # the frequency the measurement reports: of the eyes where it found nystagmus. A case it
            # found on neither eye has none (the miss counts in the diagnosis); the more prominent of
            # the two eyes' strongest peaks is kept apart (an average of two unrelated peaks would be
            # neither's frequency)
            found = [e for e in EYE_NAMES if ch["nystagmus"][e] and ch["nystagmus_hz"][e] is not None]
            peaks = [e for e in EYE_NAMES if ch["nystagmus_hz"][e] is not None]
            measured = float(np.mean([ch["nystagmus_hz"][e] for e in found])) if found else None
            peak = measured
            if peak is None and peaks:
                peak = ch["nystagmus_hz"][max(peaks, key=lambda e: ch["nystagmus_prominence"][e] or 0.0)]
            out[f"measured_{side}"] = None if measured is None else round(measured, 3)
            out[f"abs_error_{side}"] = None if measured is None else round(abs(measured - f0), 3)
            out[f"peak_abs_error_{side}"] = None if peak is None else round(abs(peak - f0), 3)
            gains = []
            n = min(len(c["time_s"]), len(b["time_s"]), len(off))
            for e, eye in enumerate(EYE_NAMES):
                ok = shown[:n] & np.asarray(c[f"{eye}_open"][:n], bool) & np.asarray(b[f"{eye}_open"][:n], bool)
                d = np.asarray(c[f"{eye}_{key}"][:n], np.float64) - np.asarray(b[f"{eye}_{key}"][:n], np.float64)
                o = off[:n, e]
                ok &= np.isfinite(d)
                if ok.sum() >= MIN_FRAMES and np.sum(o[ok] ** 2) > 0:
                    gains.append(float(np.sum(d[ok] * o[ok]) / np.sum(o[ok] ** 2)))
            g = float(np.mean(gains)) if gains else None
            out[f"amplitude_{side}_pp_deg"] = None if g is None else round(g * amp, 2)
            out[f"amplitude_abs_error_{side}_deg"] = None if g is None else round(abs(g - 1.0) * amp, 2)
    else:
        e = EYE_NAMES.index(cond["eye"])
        sel = shown & np.isfinite(lid_off[:, e])
        truth_mm = float(np.median(lid_off[sel, e])) if sel.any() else None
        out["truth"] = None if truth_mm is None else round(truth_mm, 3)
        for side, (c, b, s) in sides.items():
            m = changes(c, b, s, shown)["mrd1_change_mm"][cond["eye"]]
            out[f"measured_{side}"] = None if m is None else round(m, 3)
            out[f"abs_error_{side}"] = None if m is None or truth_mm is None else round(abs(m - truth_mm), 3)
    return out


# ----------------------------------------------------------------------------------------------
# aggregate


BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci95(per_case: list[tuple[list, list, list]], stat, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = 0) -> list[float] | None:
    """95 % percentile interval of ``stat(original, mask, truth)`` (flat item lists) over resamples
    of whole cases with replacement (a case's two eyes stay together; cases on one clip are not
    independent either, so the interval is if anything too narrow). Resamples where ``stat`` is
    undefined (NaN) are skipped; None when fewer than half are defined."""
    if not per_case:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        o: list = []
        m: list = []
        t: list = []
        for i in rng.integers(0, len(per_case), len(per_case)):
            o += per_case[i][0]
            m += per_case[i][1]
            t += per_case[i][2]
        v = stat(o, m, t)
        if math.isfinite(v):
            values.append(v)
    if len(values) < resamples / 2:
        return None
    return [round(float(x), 3) for x in np.percentile(values, [2.5, 97.5])]


def _accuracy(x: list[bool], truth: list[bool]) -> float:
    return sum(a == b for a, b in zip(x, truth)) / len(truth) if truth else float("nan")


def aggregate(rows: list[dict], *, prefix: str = "", controls: bool = False, intervals: bool = True) -> dict:
    """Per condition: kappa (original vs mask), accuracy of each against the truth, mean abs errors;
    95 % intervals (``bootstrap_ci95``) of kappa and of the accuracy gap (mask minus original).

    ``rows``: per-case dicts with ``condition``, ``diagnosis_original``, ``diagnosis_mask``,
    ``truth_diagnosis`` (``diagnose`` layout) and ``errors`` (``case_errors``; None for controls).
    prefix: read ``{prefix}diagnosis_original`` / ``_mask`` instead (``"absolute_"``).
    controls: rate the control rows too (False for the relative rules: "no" by construction).
    intervals: compute the bootstrap intervals (None without).
    """
    out: dict = {}
    rated = [r for r in rows if controls or r["condition"] != "control"]
    for cond in CONDITIONS:
        per_case = [(_items(r[f"{prefix}diagnosis_original"], cond), _items(r[f"{prefix}diagnosis_mask"], cond),
                     _items(r["truth_diagnosis"], cond)) for r in rated]
        orig = [x for o, _, _ in per_case for x in o]
        mask = [x for _, m, _ in per_case for x in m]
        truth = [x for _, _, t in per_case for x in t]
        n = len(truth)
        kappa = cohen_kappa(orig, mask)
        errs = [r["errors"] for r in rows if r.get("errors") and r["errors"]["condition"] == cond]

        def mean_abs(key: str, errs: list[dict] = errs) -> float | None:
            v = [e[key] for e in errs if e.get(key) is not None]
            return round(float(np.mean(v)), 3) if v else None

        def med_abs(key: str, errs: list[dict] = errs) -> float | None:
            v = [e[key] for e in errs if e.get(key) is not None]
            return round(float(np.median(v)), 3) if v else None

        def table(x: list[bool], y: list[bool]) -> list[list[int]]:
            return [[sum(1 for a, b in zip(x, y) if a == i and b == j) for j in (False, True)] for i in (False, True)]

        c = {
            "kappa": None if not math.isfinite(kappa) else round(kappa, 3),
            "accuracy_original": round(_accuracy(orig, truth), 3) if n else None,
            "accuracy_mask": round(_accuracy(mask, truth), 3) if n else None,
            "kappa_ci95": bootstrap_ci95(per_case, lambda o, m, t: cohen_kappa(o, m)) if intervals else None,
            "accuracy_gap_ci95": (bootstrap_ci95(per_case, lambda o, m, t: _accuracy(m, t) - _accuracy(o, t))
                                  if intervals else None),
            "abs_error_original": mean_abs("abs_error_original"),
            "abs_error_mask": mean_abs("abs_error_mask"),
            "unit": UNITS[cond],
            "items": n,
            "item": "case" if cond == "strabismus" else "case x eye",
            "positives_truth": int(sum(truth)),
            "positives_original": int(sum(orig)),
            "positives_mask": int(sum(mask)),
            "agreement_table_original_rows_mask_cols": table(orig, mask),
            "sensitivity_original": _rate([a for a, t in zip(orig, truth) if t]),
            "sensitivity_mask": _rate([a for a, t in zip(mask, truth) if t]),
            "specificity_original": _rate([not a for a, t in zip(orig, truth) if not t]),
            "specificity_mask": _rate([not a for a, t in zip(mask, truth) if not t]),
            "cases_with_error": len(errs),
            "median_abs_error_original": med_abs("abs_error_original"),
            "median_abs_error_mask": med_abs("abs_error_mask"),
            "threshold": THRESHOLDS[cond],
        }
        if cond == "nystagmus":
            c["abs_error_incl_missed_original"] = mean_abs("peak_abs_error_original")
            c["abs_error_incl_missed_mask"] = mean_abs("peak_abs_error_mask")
            c["abs_error_amplitude_original_deg"] = mean_abs("amplitude_abs_error_original_deg")
            c["abs_error_amplitude_mask_deg"] = mean_abs("amplitude_abs_error_mask_deg")
        if cond in ERROR_BOUNDS:
            c["error_bound"] = ERROR_BOUNDS[cond]
            for side in ("original", "mask"):
                v = [e[f"abs_error_{side}"] for e in errs if e.get(f"abs_error_{side}") is not None]
                c[f"cases_read_{side}"] = len(v)
                c[f"within_bound_{side}"] = sum(1 for x in v if x <= ERROR_BOUNDS[cond])
        out[cond] = c
    return out


def _rate(x: list[bool]) -> float | None:
    return round(sum(x) / len(x), 3) if x else None


# ----------------------------------------------------------------------------------------------
# running the grid


def _digest(names: list[str]) -> str:
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in sorted(names):
        p = pkg / name
        h.update(name.encode())
        h.update(p.read_bytes() if p.is_file() else b"-")
    return h.hexdigest()[:12]


def code_fingerprints() -> dict[str, str]:
    """Hashes of the code a simulated clip depends on, and of the code a mask depends on."""
    pkg = Path(__file__).resolve().parent
    mask_code = [p.name for p in pkg.glob("*.py") if p.name not in _NOT_MASK_CODE]
    return {"simulate": _digest(list(_SIM_CODE)), "mask": _digest(mask_code)}


def face_clips(videos: Path) -> list[Path]:
    """Video files of a folder, sorted by name (faceless ones are skipped later, with a note)."""
    if not videos.is_dir():
        raise InputError(f"{videos}: not a folder")
    return sorted(p for p in videos.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def _atomic_json(path: Path, data: object) -> None:
    from .report import to_json

    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(to_json(data))
    tmp.replace(path)


def _clip_key(path: Path) -> str:
    """The clip's name and a hash of its bytes: a copied clip (new mtime) still finds its cache, an
    edited one never reads a stale one."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{path.stem}-{h.hexdigest()[:16]}"


def select_pieces(clip: Path, cache: Path, fp: dict[str, str], seconds: float, n: int,
                  progress: ProgressFn | None) -> list[dict]:
    """The ``n`` pieces of ``clip`` to simulate on (``choose_piece`` on the full clip's measurement,
    each not overlapping the ones before; cached). A piece that cannot be found is ``{"skip": ...}``."""
    from .pipeline import measure_video

    stem = f"{_clip_key(clip)}-{seconds:g}s-{fp['simulate']}"  # the clip's bytes hashed once
    keys = [cache / "selection" / f"{stem}{f'-{k + 1}' if k else ''}.json" for k in range(n)]
    if all(key.is_file() for key in keys):
        return [json.loads(key.read_text()) for key in keys]
    keys[0].parent.mkdir(parents=True, exist_ok=True)
    try:
        table = measure_video(clip, None, progress).table
    except NoFaceError:
        table = None
    choices: list[dict] = []
    for key in keys:
        if table is None:
            choice = {"skip": "no face found"}
        elif choices and "skip" in choices[-1]:
            choice = choices[-1]
        else:
            choice = choose_piece(table, seconds, taken=choices)
        _atomic_json(key, choice)
        choices.append(choice)
    return choices


def piece_name(clip: Path, k: int) -> str:
    """The name a clip's k-th piece goes by in cases and reports: the clip's name for the first."""
    return clip.name if k == 0 else f"{clip.stem}-piece{k + 1}{clip.suffix}"


def cut_piece(clip: Path, choice: dict, cache: Path) -> Path:
    """Write the chosen frames of ``clip`` (its own timestamps, x264 crf 12) once; returns the path."""
    from .io import VideoWriter, iter_frames, probe_video

    out = cache / "pieces" / f"{_clip_key(clip)}-{choice['start_frame']}-{choice['frames']}.mp4"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    info = probe_video(clip)
    s, u = choice["start_frame"], choice["start_frame"] + choice["frames"]
    tmp = out.with_name(f"partial-{out.name}")
    tmp.unlink(missing_ok=True)
    with VideoWriter(tmp, info.width, info.height, info.time_base, info.average_rate, crf=12) as writer:
        for frame in iter_frames(clip):
            if s <= frame.index < u:
                writer.write(frame.rgb, frame.pts)
            elif frame.index >= u:
                break
    tmp.replace(out)
    return out


def shifted_copy(src: Path, dst: Path, shift_px: float = RETEST_SHIFT_PX) -> None:
    """``src`` moved ``shift_px`` right and down (bilinear, edges repeated) and re-encoded with the
    mask's encoder settings: the same eyes, so measuring it against ``src`` gives the measurement's
    own repeatability (``benchmarks/fidelity.py``'s retest rows)."""
    import cv2

    from .io import VideoWriter, iter_frames, probe_video
    from .pipeline import RunConfig

    config, info = RunConfig(), probe_video(src)
    m = np.array([[1.0, 0.0, shift_px], [0.0, 1.0, shift_px]])
    with VideoWriter(dst, info.width, info.height, info.time_base, info.average_rate,
                     crf=config.crf, preset=config.preset) as writer:
        for f in iter_frames(src):
            writer.write(cv2.warpAffine(f.rgb, m, (info.width, info.height), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE), f.pts)


TABLE_BOOL = ("face_found", "tracked", "right_iris_found", "left_iris_found", "right_open", "left_open")


def _save_table(path: Path, table: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f"partial-{path.name}")
    with open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in table.items()})
    tmp.replace(path)


def _load_table(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def run_case(case: Case, piece: Path, cache: Path, fp: dict[str, str], progress: ProgressFn | None = None) -> dict:
    """Simulate (unless a control), mask and measure one case; everything cached.

    Returns ``{"truth": dict | None, "original": table, "mask": table, "accuracy_pct": dict,
    "mask_path": Path, "seconds": {...}, "cached": bool}``.
    """
    from .metrics import measurements_from
    from .pipeline import RunConfig, mask_video, measure_video
    from .simulate import simulate_video, truth_path_for

    d = cache / "cases" / f"{piece.stem}__{case.case_id.split('__', 1)[1]}"
    d.mkdir(parents=True, exist_ok=True)
    secs: dict[str, float] = {}
    truth = None
    src = piece
    if case.spec is not None:
        sim = d / f"simulated-{fp['simulate']}.mp4"
        tp = truth_path_for(sim)
        if not (sim.is_file() and tp.is_file()):
            t0 = time.perf_counter()
            simulate_video(piece, sim, case.spec, overwrite=True, progress=progress)
            secs["simulate"] = round(time.perf_counter() - t0, 2)
        truth = json.loads(tp.read_text())
        src = sim
    tag = f"{fp['simulate']}-{fp['mask']}"
    masked = d / f"mask-{tag}.mp4"
    res = d / f"result-{tag}.json"
    t_orig, t_mask = d / f"original-{tag}.npz", d / f"masked-{tag}.npz"
    cached = res.is_file() and t_orig.is_file() and t_mask.is_file() and masked.is_file()
    if not cached:
        t0 = time.perf_counter()
        r = mask_video(src, masked, RunConfig(overwrite=True), progress)
        secs["mask"] = round(time.perf_counter() - t0, 2)
        original = measurements_from(r.track, r.eyes, r.fit, source_name=src.name)
        t0 = time.perf_counter()
        mm = measure_video(masked, None, progress)
        secs["measure_mask"] = round(time.perf_counter() - t0, 2)
        _save_table(t_orig, original.table)
        _save_table(t_mask, mm.table)
        _atomic_json(res, {"accuracy_pct": r.summary.accuracy_pct, "frames": r.summary.frames,
                           "frames_tracked": r.summary.frames_tracked, "seconds": secs})
    info = json.loads(res.read_text())
    return {"truth": truth, "original": _load_table(t_orig), "mask": _load_table(t_mask),
            "accuracy_pct": info["accuracy_pct"], "mask_path": masked,
            "seconds": secs if not cached else {}, "cached": cached}


def _summary(table: dict[str, np.ndarray]) -> dict:
    return summarize(table)[0]


def _versions() -> dict[str, str]:
    from .pipeline import versions  # local: importing this module must not load the models

    return versions()


def evaluate_fidelity(
    videos: Path | str = DEFAULT_VIDEOS,
    *,
    clips: list[str] | None = None,
    seconds: float = PIECE_SECONDS,
    max_cases: int | None = None,
    cache_dir: Path | str | None = None,
    pieces: dict[str, dict] | None = None,
    pieces_per_clip: int = 1,
    grid: Callable[[list[str], int | None], list[Case]] = build_grid,
    progress: ProgressFn | None = None,
    note: Callable[[str], None] | None = None,
) -> dict:
    """Run the simulated-condition grid over the face clips of ``videos`` and return the report.

    Args:
        videos: folder of clips (every video file; faceless clips are skipped with a note).
        clips: only these file names (default: all).
        seconds: piece length (shorter clips or tracked runs: down to MIN_PIECE_SECONDS).
        max_cases: keep at most this many cases (spread over the clips, controls first).
        cache_dir: cache folder (default ``~/.cache/digital-mask/fidelity``).
        pieces: ``{clip name: {"start_frame", "frames"}}`` to skip the automatic piece choice.
        pieces_per_clip: this many non-overlapping pieces of each clip (the second is named
            ``<stem>-piece2``, and so on: ``piece_name``); later pieces' cases follow all the
            first pieces' in the grid, so the first pieces' cases do not change with this number.
        grid: ``(clip names, max_cases) -> cases`` (default ``build_grid``).
        progress: ``(stage, done, total)`` callback: "cases" plus the pipeline's stages.
        note: called with one line per skipped clip or failed case.

    Raises:
        InputError: ``videos`` is not a folder, a named clip is missing, or no case could be evaluated.

    Returns:
        The JSON-ready report: ``n_cases``, ``conditions`` (see ``aggregate``), ``accuracy_pct``,
        ``cases`` (per-case rows), ``clips``, ``notes``, ``thresholds``, ``versions``, ``runtime_s``.
    """
    t_start = time.perf_counter()
    videos = Path(videos)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    fp = code_fingerprints()
    notes: list[str] = []

    def add_note(msg: str) -> None:
        notes.append(msg)
        log.info(msg)
        if note:
            note(msg)

    paths = face_clips(videos)
    if clips is not None:
        missing = set(clips) - {p.name for p in paths}
        if missing:
            raise InputError(f"{videos}: no clip named {', '.join(sorted(missing))}")
        paths = [p for p in paths if p.name in clips]
    chosen: dict[str, dict] = {}
    by_rank: list[dict[str, Path]] = [{} for _ in range(pieces_per_clip)]
    for i, clip in enumerate(paths):
        if pieces and clip.name in pieces:
            choices = [dict(pieces[clip.name])]
        else:
            try:
                choices = select_pieces(clip, cache, fp, seconds, pieces_per_clip, progress)
            except MaskError as exc:
                choices = [{"skip": str(exc)}]
        if progress:
            progress("select", i + 1, len(paths))
        for k, choice in enumerate(choices):
            name = piece_name(clip, k)
            if k and "skip" in choice and "skip" in choices[0]:
                continue  # the clip itself was skipped: one note
            chosen[name] = choice
            if "skip" in choice:
                add_note(f"{name}: skipped ({choice['skip']})")
                continue
            by_rank[k][name] = cut_piece(clip, choice, cache)
    piece_paths = {name: path for rank in by_rank for name, path in rank.items()}
    cases = grid(list(piece_paths), max_cases)
    rows: list[dict] = []
    excluded: list[dict] = []
    baselines: dict[str, dict] = {}
    acc: list[dict] = []
    mask_paths: dict[str, Path] = {}
    for k, case in enumerate(cases):
        if progress:
            progress("cases", k, len(cases))
        piece = piece_paths[case.clip]
        ctrl = Case(case.clip, None)
        try:
            if case.clip not in baselines:
                baselines[case.clip] = run_case(ctrl, piece, cache, fp, progress)
            base = baselines[case.clip]
            res = base if case.spec is None else run_case(case, piece, cache, fp, progress)
        except MaskError as exc:
            add_note(f"{case.case_id}: failed ({exc})")
            continue
        truth = res["truth"]
        shown = None if truth is None else np.asarray(truth["per_frame"]["shown"], bool)
        sums = {side: _summary(res[side]) for side in ("original", "mask")}
        ch = {side: changes(res[side], base[side], sums[side]) for side in ("original", "mask")}
        row = {
            "case": case.case_id, "clip": case.clip, "condition": case.condition, "spec": case.spec,
            "frames": int(len(res["original"]["time_s"])),
            "frames_shown": None if truth is None else int(truth["frames_shown"]),
            "truth_diagnosis": truth_labels(None if truth is None else truth["condition"]),
            "diagnosis_original": diagnose(ch["original"]), "diagnosis_mask": diagnose(ch["mask"]),
            "changes_original": ch["original"], "changes_mask": ch["mask"],
            "absolute_flags_original": _abs_flags(sums["original"]), "absolute_flags_mask": _abs_flags(sums["mask"]),
            "absolute_diagnosis_original": absolute_diagnosis(_abs_flags(sums["original"])),
            "absolute_diagnosis_mask": absolute_diagnosis(_abs_flags(sums["mask"])),
            "errors": None if truth is None else case_errors(truth, res["original"], base["original"], sums["original"],
                                                             res["mask"], base["mask"], sums["mask"]),
            "accuracy_pct": res["accuracy_pct"], "seconds": res["seconds"], "cached": res["cached"],
            "illustration_frame": illustration_frame(truth, int(len(res["original"]["time_s"]))),
        }
        if shown is not None and shown.sum() < MIN_SHOWN_FRACTION * len(shown):
            add_note(f"{case.case_id}: left out, the simulator showed the condition in only {int(shown.sum())} of "
                     f"{len(shown)} frames")
            excluded.append(row)
            continue
        rows.append(row)
        acc.append(res["accuracy_pct"])
        mask_paths[case.case_id] = res["mask_path"]
    if progress:
        progress("cases", len(cases), len(cases))
    if not rows:
        raise InputError(f"{videos.name or videos}: no case could be evaluated ({'; '.join(notes) or 'no clip'})")
    conditions = aggregate(rows) if rows else {}
    absolute = {c: {k: v[k] for k in ("kappa", "accuracy_original", "accuracy_mask", "items", "positives_truth",
                                      "positives_original", "positives_mask", "agreement_table_original_rows_mask_cols")}
                for c, v in aggregate(rows, prefix="absolute_", controls=True, intervals=False).items()} if rows else {}
    accuracy = {k: round(float(np.mean([a[k] for a in acc if a.get(k) is not None])), 3)
                for k in ("eyeball_pct", "eyelid_pct")} if acc else {}
    return {
        "n_cases": len(rows),
        "conditions": conditions,
        "accuracy_pct": {**accuracy, "statistic": "mean over the masking runs of all cases (the paper's metric: "
                                                  "% of the distance between the eye centres)"},
        "n_cases_per_condition": {c: sum(r["condition"] == c for r in rows) for c in ("control", *CONDITIONS)},
        "absolute_rules": absolute,
        "thresholds": THRESHOLDS,
        "method": {"baseline": "each measurement is case minus the unmodified piece, the original against the piece, "
                               "the mask against the mask of the piece; frames paired by index",
                   "errors": "medians over frames where the truth says the condition is shown and the eye(s) are open "
                             "in both videos; nystagmus amplitude = least-squares gain of the gaze change on the truth "
                             "waveform times the truth peak-to-peak",
                   "accuracy_unit": "fraction of rated items (case, or case x eye) equal to the truth"},
        "clips": chosen,
        "notes": notes,
        "cases": rows,
        "cases_left_out": [{k: r[k] for k in ("case", "clip", "spec", "frames", "frames_shown")} for r in excluded],
        "versions": _versions(),
        "code_fingerprints": fp,
        "seconds_per_piece": seconds,
        "runtime_s": round(time.perf_counter() - t_start, 1),
        "_mask_paths": {k: str(v) for k, v in mask_paths.items()},
    }


def illustration_frame(truth: dict | None, n: int) -> int:
    """The frame a figure shows: for nystagmus the shown frame of largest gaze offset, else the shown
    frame nearest the middle (the middle frame for a control)."""
    if truth is None:
        return n // 2
    pf = truth["per_frame"]
    shown = np.flatnonzero(np.asarray(pf["shown"], bool)[:n])
    if shown.size == 0:
        return n // 2
    if truth["condition"]["name"] == "nystagmus":
        off = np.abs(np.asarray(pf["gaze_yaw_offset_deg"]) + np.asarray(pf["gaze_pitch_offset_deg"])).max(axis=1)
        return int(shown[np.argmax(off[shown])])
    return int(shown[np.argmin(np.abs(shown - n // 2))])


def absolute_diagnosis(flags: dict) -> dict:
    """``diagnose``'s layout from the absolute flags of ``_abs_flags`` (None / not measurable = no)."""
    dev = any(flags[k] not in ("none", "not measurable", None) for k in ("horizontal_deviation", "vertical_deviation"))
    return {"strabismus": bool(dev),
            "nystagmus": {e: bool(flags[f"nystagmus_{e}"]) for e in EYE_NAMES},
            "ptosis": {e: bool(flags[f"ptosis_{e}"]) for e in EYE_NAMES},
            "retraction": {e: bool(flags[f"lid_retraction_{e}"]) for e in EYE_NAMES}}


def _abs_flags(summary: dict) -> dict:
    """The absolute clinical flags of ``metrics.diagnosis_flags`` that concern the four conditions."""
    f = diagnosis_flags(summary)
    keys = ["horizontal_deviation", "vertical_deviation"] + [f"{k}_{e}" for k in ("nystagmus", "ptosis", "lid_retraction")
                                                             for e in EYE_NAMES]
    return {k: f[k] for k in keys}


# ----------------------------------------------------------------------------------------------
# images (MASKED OUTPUT ONLY)


def write_case_images(report: dict, out_dir: Path | str, prefix: str = "fidelity_") -> list[Path]:
    """One PNG per condition: the masked control next to the masked case, cropped around the eyes.

    Only masked videos are read (``_mask_paths``): never an original or a simulated original.
    The case shown per condition is the first whose original and mask both got the truth's
    diagnosis (else the first case of that condition).
    """
    from .io import iter_frames, write_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = report.get("_mask_paths", {})
    written = []
    for cond in CONDITIONS:
        rows = [r for r in report["cases"] if r["condition"] == cond and r["case"] in paths]
        if not rows:
            continue
        good = [r for r in rows if _items(r["diagnosis_original"], cond) == _items(r["truth_diagnosis"], cond)
                and _items(r["diagnosis_mask"], cond) == _items(r["truth_diagnosis"], cond)]
        row = (good or rows)[0]
        ctrl = next((r for r in report["cases"] if r["clip"] == row["clip"] and r["condition"] == "control"), None)
        case_mask = Path(paths[row["case"]])
        frame_i = row.get("illustration_frame", row["frames"] // 2)
        tiles = []
        for video in ([Path(paths[ctrl["case"]])] if ctrl else []) + [case_mask]:
            rgb = next((f.rgb for f in iter_frames(video) if f.index == frame_i), None)
            if rgb is not None:
                tiles.append(rgb)
        if not tiles:
            continue
        crop = _eye_crop(tiles[-1])
        img = np.concatenate([t[crop] for t in tiles], axis=1)
        path = out / f"{prefix}{cond}.png"
        write_png(path, img)
        written.append(path)
    return written


def _eye_crop(rgb: np.ndarray) -> tuple[slice, slice]:
    """The upper-middle of a masked frame (eyes and brows of the template), from its tracked eye corners."""
    from .tracking import FaceTracker

    h, w = rgb.shape[:2]
    try:
        from .types import Frame

        with FaceTracker((w, h), still=True) as tracker:
            pts = tracker.track(Frame(index=0, pts=0, time_s=0.0, rgb=rgb))
        if np.isfinite(pts[:, :2]).all():
            a, b = pts[33, :2], pts[263, :2]
            c, d = (a + b) / 2.0, float(np.linalg.norm(b - a))
            x0, x1 = int(max(0, c[0] - 1.1 * d)), int(min(w, c[0] + 1.1 * d))
            y0, y1 = int(max(0, c[1] - 0.6 * d)), int(min(h, c[1] + 0.45 * d))
            if x1 - x0 > 16 and y1 - y0 > 16:
                return slice(y0, y1), slice(x0, x1)
    except (MaskError, TypeError, ValueError):
        pass
    return slice(h // 5, h // 2), slice(w // 5, 4 * w // 5)


def markdown_table(report: dict) -> str:
    """The benchmark table of a report (Markdown)."""
    lines = ["| condition | items (positives) | kappa orig vs mask [95 % CI] | accuracy original | accuracy mask "
             "[gap, 95 % CI] | abs error original | abs error mask | cases within bound: original; mask | unit |",
             "|---|---|---|---|---|---|---|---|---|"]

    def f(v: object, nd: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{nd}f}"

    for cond, c in report["conditions"].items():
        within = "n/a"
        if "error_bound" in c:
            within = (f"{c['within_bound_original']} of {c['cases_read_original']}; "
                      f"{c['within_bound_mask']} of {c['cases_read_mask']} (<= {c['error_bound']:g})")
        ci = c.get("kappa_ci95") or [None, None]
        gap = c.get("accuracy_gap_ci95") or [None, None]
        lines.append(f"| {cond} | {c['items']} ({c['positives_truth']}) | {f(c['kappa'])} [{f(ci[0])}, {f(ci[1])}] | "
                     f"{f(c['accuracy_original'])} | {f(c['accuracy_mask'])} [{f(gap[0], 3)}, {f(gap[1], 3)}] | "
                     f"{f(c['abs_error_original'])} | {f(c['abs_error_mask'])} | {within} | {c['unit']} |")
    return "\n".join(lines) + "\n"


def public_report(report: dict) -> dict:
    """The report without the local cache paths (what ``--json`` writes)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def write_report_json(report: dict, path: Path | str) -> Path:
    """Write ``public_report(report)`` as JSON (NaN -> null), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_json(path, public_report(report))
    return path


__all__ = [
    "CONDITIONS", "Case", "LID_CHANGE_MM", "THRESHOLDS", "aggregate", "build_grid", "case_errors", "changes",
    "absolute_diagnosis", "bootstrap_ci95", "choose_piece", "piece_name", "clip_grid", "code_fingerprints", "cohen_kappa", "diagnose", "evaluate_fidelity",
    "markdown_table", "public_report", "shifted_copy", "truth_labels", "write_case_images", "write_report_json",
]
