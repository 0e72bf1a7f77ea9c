"""Clinical signals from the reconstruction: a per-frame table, a summary, and agreement statistics.

Pure computation on (FaceFit, EyeTrack, LandmarkTrack): the same code measures an original video
and a masked one, so original-vs-mask agreement compares like with like. Nothing here reads a
frame; the per-eye values are the refined, image-based iris and lid measurement (``eyes.py``)
carried through ``fitting.fit_face``, never MediaPipe's raw iris and lid points.

Sign conventions (docs/conventions.md): ``gaze_yaw_deg`` + toward the patient's left, so the right
eye's + yaw and the left eye's - yaw are nasal; ``gaze_pitch_deg`` + up. Hence

* horizontal deviation = yaw(right) - yaw(left): + = both (or one) turned nasally = **eso**,
  - = **exo**;
* vertical deviation = pitch(right) - pitch(left): + = the right eye higher = **right hyper**
  (= left hypo), - = **left hyper**;
* prism dioptres = 100 * tan(angle).

Head angles (relative to facing the camera): ``head_yaw_deg`` + = face turned toward the
patient's left; ``head_pitch_deg`` + = chin up; ``head_roll_deg`` + = head tilted toward the
patient's left shoulder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .types import EYE_NAMES, IRIS_DIAMETER_MM, EyeTrack, FaceFit, LandmarkTrack

EYE_CORNERS = ((33, 133), (263, 362))  # (outer, inner), patient's right then left

# Named thresholds (stated in every summary so a clinician sees what was applied).
CLOSED_APERTURE_MM = 2.0  # palpebral fissure at the iris below this = eye closed
BLINK_MAX_S = 1.0  # a closure longer than this is a sustained closure, not a blink
BLINK_MERGE_GAP_S = 0.1  # open gaps this short inside a closure are bridged (flicker of a closing lid)
PTOSIS_MRD1_MM = 2.0  # MRD1 below this = ptosis
IRIS_RADIUS_MM = IRIS_DIAMETER_MM / 2.0  # 5.85 mm: MRD1 above this shows sclera above the limbus
RETRACTION_MARGIN_MM = 0.5
RETRACTION_MRD1_MM = IRIS_RADIUS_MM + RETRACTION_MARGIN_MM
PRIMARY_GAZE_DEG = 10.0  # frames whose binocular mean gaze is within this of straight ahead
DEVIATION_H_PD = 10.0  # |horizontal deviation| at or above this is reported as a tropia flag
DEVIATION_V_PD = 5.0
EPISODE_PD = 20.0  # one eye turned this far (in PD) relative to its fellow = a deviation episode
NYSTAGMUS_BAND_HZ = (1.0, 12.0)
NYSTAGMUS_MIN_P2P_DEG = 2.0  # peak-to-peak amplitude of the dominant oscillation
NYSTAGMUS_MIN_PROMINENCE = 8.0  # spectral peak over the band's background (power law + white floor)
NYSTAGMUS_MIN_VARIANCE_SHARE = 0.2  # robust mode: the rhythm carries this share of its axis's variance
NYSTAGMUS_MIN_CYCLES = 4.0  # the band starts at no less than this many cycles per window
NYSTAGMUS_SEGMENT_S = 10.0  # spectral window (longer traces: 50 % overlapping windows, powers averaged)
NYSTAGMUS_OVERSAMPLING = 8  # frequency grid step = 1 / (this x window length)
HARMONIC_POWER_SHARE = 0.5  # a sub-harmonic peak with this share of the top peak's power is the fundamental
NYSTAGMUS_IRLS_ITERATIONS = 7  # robust refits per frequency (3 Huber, then Tukey biweight)
HEAD_POSTURE_DEG = 10.0  # |mean head turn or tilt| at or above this = compensatory head posture

MEASURES = ("gaze_yaw_deg", "gaze_pitch_deg", "mrd1_mm", "mrd2_mm", "fissure_height_mm", "fissure_width_mm")


def prism_dioptres(angle_deg: np.ndarray | float) -> np.ndarray | float:
    """Prism dioptres of an angle: 100 * tan(angle)."""
    return 100.0 * np.tan(np.radians(angle_deg))


@dataclass(frozen=True)
class Measurements:
    """The clinical measurement of one video.

    source_name: the video's file name (never a path).
    table:       per-frame columns, each (T,) (see ``per_frame_table``), in output order.
    summary:     JSON-ready clinical summary (see ``summarize``).
    spectrum:    ``freq_hz`` (F,) and per-eye ``right``/``left`` gaze power (F,) deg^2 (yaw+pitch).
    """

    source_name: str
    table: dict[str, np.ndarray]
    summary: dict
    spectrum: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table["time_s"])


# ----------------------------------------------------------------------------------------------
# per-frame table


def head_angles_deg(rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(yaw, pitch, roll) in degrees from head rotations (T, 3, 3) (head -> image axes).

    yaw + = face turned toward the patient's left (image right for a non-mirrored video);
    pitch + = chin up; roll + = head tilted toward the patient's left shoulder.
    """
    fwd = rotation @ np.array([0.0, 0.0, 1.0])  # head "toward the viewer" in image axes (x r, y d, z away)
    fx, fy, fz = fwd[:, 0], -fwd[:, 1], -fwd[:, 2]  # to x right, y up, z toward the viewer
    yaw = np.degrees(np.arctan2(fx, fz))
    pitch = np.degrees(np.arcsin(np.clip(fy, -1.0, 1.0)))
    xa = rotation @ np.array([1.0, 0.0, 0.0])  # head +x (patient's left) in image axes
    roll = np.degrees(np.arctan2(xa[:, 1], xa[:, 0]))  # + = patient's left side lower in the image
    return yaw, pitch, roll


def per_frame_table(fit: FaceFit, eyes: EyeTrack, track: LandmarkTrack) -> dict[str, np.ndarray]:
    """Per-frame clinical columns, (T,) each; NaN where the frame has no trustworthy fit.

    Columns: frame, time_s, face_found, tracked, fit_residual_px, head_yaw_deg, head_pitch_deg,
    head_roll_deg, then per eye (``right_``/``left_`` prefix): gaze_yaw_deg, gaze_pitch_deg,
    iris_x_px, iris_y_px, iris_found, fissure_height_mm, fissure_width_mm, mrd1_mm, mrd2_mm, open;
    then horizontal_deviation_pd (+ eso) and vertical_deviation_pd (+ right hyper).
    """
    n = len(fit)
    if len(eyes.valid) != n or len(track.found) != n:
        raise ValueError(f"frame counts differ: fit {n}, eyes {len(eyes.valid)}, track {len(track.found)}")
    ok = np.asarray(fit.tracked, bool)
    nan = np.where(ok, 1.0, np.nan)
    yaw_h, pitch_h, roll_h = head_angles_deg(np.asarray(fit.rotation, np.float64))
    mm_per_px = fit.mm_per_cm / np.asarray(fit.scale_px_per_cm, np.float64)
    cols: dict[str, np.ndarray] = {
        "frame": np.arange(n, dtype=np.int64),
        "time_s": np.asarray(fit.timestamps_s, np.float64),
        "face_found": np.asarray(track.found, bool),
        "tracked": ok,
        "fit_residual_px": np.asarray(fit.residual_px, np.float64) * nan,
        "head_yaw_deg": yaw_h * nan,
        "head_pitch_deg": pitch_h * nan,
        "head_roll_deg": roll_h * nan,
    }
    for e, name in enumerate(EYE_NAMES):
        a, b = EYE_CORNERS[e]
        corners = track.points_px[:, [a, b], :2].astype(np.float64)
        mrd1 = np.asarray(fit.upper_lid_mm[:, e], np.float64) * nan
        mrd2 = np.asarray(fit.lower_lid_mm[:, e], np.float64) * nan
        height = mrd1 + mrd2
        width = np.linalg.norm(corners[:, 0] - corners[:, 1], axis=1) * mm_per_px * nan
        cols[f"{name}_gaze_yaw_deg"] = np.asarray(fit.gaze_yaw_deg[:, e], np.float64) * nan
        cols[f"{name}_gaze_pitch_deg"] = np.asarray(fit.gaze_pitch_deg[:, e], np.float64) * nan
        cols[f"{name}_iris_x_px"] = eyes.iris_center_px[:, e, 0].astype(np.float64) * nan
        cols[f"{name}_iris_y_px"] = eyes.iris_center_px[:, e, 1].astype(np.float64) * nan
        cols[f"{name}_iris_found"] = np.asarray(eyes.valid[:, e], bool) & ok
        cols[f"{name}_fissure_height_mm"] = height
        cols[f"{name}_fissure_width_mm"] = width
        cols[f"{name}_mrd1_mm"] = mrd1
        cols[f"{name}_mrd2_mm"] = mrd2
        cols[f"{name}_open"] = ok & (height >= CLOSED_APERTURE_MM) & cols[f"{name}_iris_found"]
    cols["horizontal_deviation_pd"] = prism_dioptres(cols["right_gaze_yaw_deg"] - cols["left_gaze_yaw_deg"])
    cols["vertical_deviation_pd"] = prism_dioptres(cols["right_gaze_pitch_deg"] - cols["left_gaze_pitch_deg"])
    return cols


# ----------------------------------------------------------------------------------------------
# blinks


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs (stop exclusive) of the True runs of a 1-D bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def closure_runs(closed: np.ndarray, merge_gap: int = 0) -> list[tuple[int, int]]:
    """Closure episodes (start, stop) of one eye; open gaps of ``merge_gap`` frames or less are bridged."""
    runs = _runs(np.asarray(closed, bool))
    merged: list[tuple[int, int]] = []
    for s, t in runs:
        if merged and s - merged[-1][1] <= merge_gap:
            merged[-1] = (merged[-1][0], t)
        else:
            merged.append((s, t))
    return merged


def detect_blinks(closed: np.ndarray, timestamps_s: np.ndarray, tracked: np.ndarray | None = None) -> dict:
    """Blink and closure events per eye, each marked as both-eye or one-eye.

    Args:
        closed: (T, 2) bool, eye closed (index 0 right, 1 left).
        timestamps_s: (T,) seconds.
        tracked: (T,) bool frames with a trustworthy fit (blink rate is per tracked minute).

    Returns:
        ``{"right": [event...], "left": [...], "episodes": [...], "blinks_per_minute": x, ...}``;
        an event is ``{"start_frame", "end_frame", "start_s", "duration_s", "kind", "both_eyes"}``
        with ``kind`` "blink" (<= BLINK_MAX_S) or "sustained closure"; ``both_eyes`` is True when
        the other eye's closure overlaps it. An episode is a union of overlapping closures of
        either eye: ``{"start_frame", "end_frame", "eyes": "both"|"right only"|"left only", ...}``.
    """
    closed = np.asarray(closed, bool)
    t = np.asarray(timestamps_s, np.float64)
    n = len(t)
    tracked = np.ones(n, bool) if tracked is None else np.asarray(tracked, bool)
    dt = float(np.median(np.diff(t))) if n > 1 else 1.0 / 30.0
    gap = int(np.floor(BLINK_MERGE_GAP_S / dt + 1e-6))
    runs = [closure_runs(closed[:, e] & tracked, gap) for e in range(2)]

    def overlaps(a: tuple[int, int], others: list[tuple[int, int]]) -> bool:
        return any(s < a[1] and a[0] < u for s, u in others)

    def event(s: int, u: int, both: bool) -> dict:
        dur = float(t[u - 1] - t[s] + dt)
        return {"start_frame": s, "end_frame": u - 1, "start_s": round(float(t[s]), 3),
                "duration_s": round(dur, 3), "kind": "blink" if dur <= BLINK_MAX_S else "sustained closure",
                "both_eyes": both}

    out: dict = {}
    for e, name in enumerate(EYE_NAMES):
        out[name] = [event(s, u, overlaps((s, u), runs[1 - e])) for s, u in runs[e]]
    union = closure_runs(closed.any(axis=1) & tracked, gap)
    episodes = []
    for s, u in union:
        r = overlaps((s, u), runs[0])
        lft = overlaps((s, u), runs[1])
        if not (r or lft):
            continue
        ev = event(s, u, r and lft)
        ev["eyes"] = "both" if (r and lft) else ("right only" if r else "left only")
        del ev["both_eyes"]
        episodes.append(ev)
    minutes = tracked.sum() * dt / 60.0
    blinks = [ep for ep in episodes if ep["kind"] == "blink"]
    out["episodes"] = episodes
    out["blinks_per_minute"] = round(len(blinks) / minutes, 2) if minutes > 0 else None
    out["blink_count"] = len(blinks)
    out["sustained_closures"] = sum(ep["kind"] == "sustained closure" for ep in episodes)
    out["one_eye_closures"] = {name: sum(ep["eyes"] == f"{name} only" for ep in episodes) for name in EYE_NAMES}
    return out


# ----------------------------------------------------------------------------------------------
# strabismus


def primary_gaze_deviation(yaw_deg: np.ndarray, pitch_deg: np.ndarray, usable: np.ndarray,
                           frame_ids: np.ndarray | None = None) -> dict:
    """Deviation between the eyes in primary gaze, in prism dioptres.

    Args:
        yaw_deg, pitch_deg: (T, 2) per-eye gaze (index 0 right, 1 left), conventions above.
        usable: (T,) or (T, 2) bool frames where both irises were measured (eyes open).
        frame_ids: (T,) frame numbers to report (default 0..T-1).

    Primary gaze = frames whose binocular mean gaze (version) lies within PRIMARY_GAZE_DEG of the
    video's median version: a clinical recording fixates ahead most of the time, and the fitted
    eyeball's zero direction is anatomical, not exact, so "ahead" is taken from the video itself.
    The deviation is the median over those frames of yaw(right) - yaw(left) (and pitch), so a
    constant tropia is measured while a brief one-eye turn is not (``deviation_episodes`` lists those).
    """
    yaw = np.asarray(yaw_deg, np.float64)
    pitch = np.asarray(pitch_deg, np.float64)
    ok = np.asarray(usable, bool)
    if ok.ndim == 2:
        ok = ok.all(axis=1)
    ids = np.arange(len(yaw)) if frame_ids is None else np.asarray(frame_ids)
    ok = ok & np.isfinite(yaw).all(axis=1) & np.isfinite(pitch).all(axis=1)
    primary = ok.copy()
    if ok.any():
        vy, vp = yaw.mean(axis=1), pitch.mean(axis=1)
        cy, cp = np.median(vy[ok]), np.median(vp[ok])
        primary &= (np.abs(vy - cy) < PRIMARY_GAZE_DEG) & (np.abs(vp - cp) < PRIMARY_GAZE_DEG)
    base = {"primary_gaze": f"binocular mean gaze within {PRIMARY_GAZE_DEG:g} deg of the video's median",
            "frames_used": int(primary.sum()),
            "frame_ranges": [[int(ids[s]), int(ids[u - 1])] for s, u in _runs(primary)],
            "flag_threshold_pd": {"horizontal": DEVIATION_H_PD, "vertical": DEVIATION_V_PD}}
    if not primary.any():
        return {**base, "horizontal_pd": None, "horizontal_direction": "not measurable", "vertical_pd": None,
                "vertical_direction": "not measurable", "horizontal_flag": "not measurable",
                "vertical_flag": "not measurable"}
    h_deg = float(np.median(yaw[primary, 0] - yaw[primary, 1]))
    v_deg = float(np.median(pitch[primary, 0] - pitch[primary, 1]))
    h_pd, v_pd = float(prism_dioptres(h_deg)), float(prism_dioptres(v_deg))
    h_dir = "eso" if h_pd > 0 else "exo" if h_pd < 0 else "none"
    v_dir = "right hyper" if v_pd > 0 else "left hyper" if v_pd < 0 else "none"
    return {**base, "horizontal_pd": round(abs(h_pd), 2), "horizontal_direction": h_dir,
            "horizontal_signed_pd": round(h_pd, 2), "vertical_pd": round(abs(v_pd), 2), "vertical_direction": v_dir,
            "vertical_signed_pd": round(v_pd, 2),
            "horizontal_flag": h_dir if abs(h_pd) >= DEVIATION_H_PD else "none",
            "vertical_flag": v_dir if abs(v_pd) >= DEVIATION_V_PD else "none"}


def deviating_eye(yaw_deg: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, which eye is turned relative to its fellow, and by how much.

    Where the two eyes' yaws differ by EPISODE_PD or more, the eye further from the head's
    straight-ahead is the deviating one (the fixating eye looks at the camera, which is ahead of a
    face filmed for an eye examination). A per-video median would not do: a patient (or performer)
    who is crossed much of the time would move it.

    Returns:
        eye: (T,) int8, 0 right, 1 left, -1 none; nasal_deg: (T,) its turn toward the nose
        (negative = outward).
    """
    yaw = np.asarray(yaw_deg, np.float64)
    ok = np.asarray(usable, bool)
    if ok.ndim == 2:
        ok = ok.all(axis=1)
    ok = ok & np.isfinite(yaw).all(axis=1)
    n = len(yaw)
    eye = np.full(n, -1, np.int8)
    nasal = np.full(n, np.nan)
    if not ok.any():
        return eye, nasal
    rel = yaw
    rel_nasal = np.stack([rel[:, 0], -rel[:, 1]], axis=1)  # + = toward the nose, each eye
    diff = np.abs(prism_dioptres(rel[:, 0] - rel[:, 1]))
    which = np.argmax(np.abs(rel), axis=1)
    hit = ok & (diff >= EPISODE_PD)
    eye[hit] = which[hit]
    nasal[hit] = rel_nasal[hit, which[hit]]
    return eye, nasal


def deviation_episodes(yaw_deg: np.ndarray, usable: np.ndarray, timestamps_s: np.ndarray) -> list[dict]:
    """Runs of frames where one eye is turned relative to the other (``deviating_eye``).

    A performer or patient may alternate the deviating eye every few frames: an episode lists the
    frames in which each eye was the deviating one.
    """
    eye, nasal = deviating_eye(yaw_deg, usable)
    t = np.asarray(timestamps_s, np.float64)
    out = []
    for s, u in closure_runs(eye >= 0, merge_gap=3):
        seg = slice(s, u)
        e_seg, n_seg = eye[seg], nasal[seg]
        ep: dict = {"start_frame": s, "end_frame": u - 1, "start_s": round(float(t[s]), 3)}
        for e, name in enumerate(EYE_NAMES):
            sel = e_seg == e
            ep[f"{name}_frames"] = int(sel.sum())
            ep[f"{name}_max_turn_deg"] = round(float(n_seg[sel][np.argmax(np.abs(n_seg[sel]))]), 1) if sel.any() else None
        counts = [ep["right_frames"], ep["left_frames"]]
        main = int(np.argmax(counts))
        turn = ep[f"{EYE_NAMES[main]}_max_turn_deg"]
        ep["eye"] = EYE_NAMES[main] if counts[1 - main] == 0 else f"mostly {EYE_NAMES[main]}, alternating"
        ep["direction"] = "inward (eso)" if turn is not None and turn > 0 else "outward (exo)"
        out.append(ep)
    return out


# ----------------------------------------------------------------------------------------------
# nystagmus


def _tukey_fit(X: np.ndarray, y: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Robust least squares of y on each design in X (F, N, p), batched: IRLS, Huber then Tukey.

    Starts from ordinary least squares (``iterations`` = 0: that is all), runs 3 Huber steps (k = 1.345) and then Tukey's biweight
    (c = 4.685), the scale re-estimated each step as 1.4826 * median |residual| (the usual 95 %
    efficiency constants; as statsmodels' RLM with its default scale update). Frames the rhythm
    does not explain (a mis-measured frame, a short run of them) get weight 0 instead of spreading
    their power over the whole spectrum.

    Returns:
        (coef (F, p), weights (F, N)).
    """
    F, N, p = X.shape
    w = np.ones((F, N))
    coef = np.zeros((F, p))
    ridge = 1e-9 * np.eye(p)
    Xt = np.ascontiguousarray(X.transpose(0, 2, 1))  # (F, p, N)
    for it in range(iterations + 1):
        Xtw = Xt * w[:, None, :]
        coef = np.linalg.solve(Xtw @ X + ridge, (Xtw @ y)[:, :, None])[:, :, 0]
        if it == iterations:
            break
        r = y[None, :] - (X @ coef[:, :, None])[:, :, 0]
        s = np.maximum(1.4826 * np.median(np.abs(r), axis=1, keepdims=True), 1e-3)
        u = r / s
        if it < 3:
            w = np.minimum(1.0, 1.345 / np.maximum(np.abs(u), 1e-12))
        else:
            w = np.where(np.abs(u) < 4.685, (1.0 - (u / 4.685) ** 2) ** 2, 0.0)
    return coef, w


def _design(t: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """(F, N, 4): offset, linear trend, cos and sin at each frequency."""
    tc = t - t.mean()
    ph = 2.0 * np.pi * freqs[:, None] * tc[None, :]
    return np.stack([np.ones_like(ph), np.broadcast_to(tc, ph.shape), np.cos(ph), np.sin(ph)], axis=2)


def robust_periodogram(t: np.ndarray, x: np.ndarray, freqs: np.ndarray, iterations: int = NYSTAGMUS_IRLS_ITERATIONS,
                       chunk: int = 256) -> np.ndarray:
    """Power (deg^2, the variance of the fitted sinusoid) of a robust sinusoid fit at each frequency.

    An M-periodogram (Katkovnik, Signal Processing 1998): at every candidate frequency an offset,
    a linear trend and one sinusoid are fitted to the samples (irregular times allowed, gaps are
    not bridged) by ``_tukey_fit``; the power is (a^2 + b^2) / 2. Unlike an FFT/Welch spectrum it
    has no bin grid (any frequency can be evaluated) and no leakage from isolated bad frames.
    ``iterations`` = 0: the ordinary least-squares (Lomb-Scargle-type) periodogram.
    """
    out = np.zeros(len(freqs))
    for s in range(0, len(freqs), chunk):
        f = freqs[s : s + chunk]
        coef, _ = _tukey_fit(_design(t, f), x, iterations)
        out[s : s + chunk] = 0.5 * (coef[:, 2] ** 2 + coef[:, 3] ** 2)
    return out


def fit_rhythm(t: np.ndarray, x: np.ndarray, f0: float, iterations: int = NYSTAGMUS_IRLS_ITERATIONS) -> tuple[float, float]:
    """Peak-to-peak (deg) of the sinusoid at f0, fitted robustly (``_tukey_fit``, with an offset and
    a linear trend), and the robust scale (1.4826 x median absolute residual, deg) of the trace
    around that fit (what the rhythm must stand out of, ``NYSTAGMUS_MIN_VARIANCE_SHARE``).

    The detector uses the fundamental alone (the dominant oscillation, as NYSTAGMUS_MIN_P2P_DEG is
    stated); a jerk waveform's fundamental is 2/pi (0.64) of its full peak to peak.
    """
    X = _design(t, np.array([f0]))
    coef, _ = _tukey_fit(X, x, iterations)
    ph = np.linspace(0.0, 2.0 * np.pi, 360, endpoint=False)
    resid = x - X[0] @ coef[0]
    return (float(np.ptp(coef[0, 2] * np.cos(ph) + coef[0, 3] * np.sin(ph))),
            float(1.4826 * np.median(np.abs(resid))))


def _segments(t: np.ndarray, ok: np.ndarray, length: float, dt: float) -> list[np.ndarray]:
    """Indices of usable frames in windows of ``length`` s tiling t's span with 50 % overlap; windows
    with fewer than half their frames (or < 16) usable are dropped."""
    t0, t1 = float(t[0]), float(t[-1]) + dt
    n_seg = max(1, int(np.ceil((t1 - t0 - length) / (length / 2) - 1e-9)) + 1)
    starts = np.linspace(t0, max(t0, t1 - length), n_seg)
    out = []
    for s in starts:
        idx = np.flatnonzero(ok & (t >= s - 1e-9) & (t < s + length - 1e-9))
        if len(idx) >= max(16, 0.5 * length / dt):
            out.append(idx)
    return out


def _background(freqs: np.ndarray, power: np.ndarray) -> np.ndarray:
    """The spectrum a rhythm must stand above: a power law (gaze shifts and drift, falling as
    1/f^a) plus a white floor (per-frame measurement noise, flat up to Nyquist), fitted to the log
    power; points far above the fit (the rhythm itself) are left out and it is refitted (up to
    three fits in all).
    A power law alone falls below a white floor towards Nyquist, where the noise then stands out
    as a spurious ~10 Hz "rhythm" of a 30 fps trace."""
    from scipy.optimize import least_squares

    logf, logp = np.log(freqs), np.log(np.maximum(power, 1e-12))
    slope, icpt = np.polyfit(logf, logp, 1)
    x0 = np.array([icpt, min(max(-slope, 0.0), 6.0), float(np.min(logp))])

    def model(x: np.ndarray) -> np.ndarray:
        return np.logaddexp(x[0] - x[1] * logf, x[2])

    keep = np.ones(len(freqs), bool)
    for _ in range(3):
        fit = least_squares(lambda x: (model(x) - logp)[keep], x0, bounds=([-np.inf, 0.0, -30.0], [np.inf, 6.0, np.inf]))
        x0 = fit.x
        new = logp - model(x0) < np.log(3.0)
        if new.sum() < 4 or np.array_equal(new, keep):
            break
        keep = new
    return np.exp(model(x0))


def _fundamental(freqs: np.ndarray, power: np.ndarray, ratio: np.ndarray) -> int:
    """Index of the rhythm's fundamental: the highest peak of ``ratio``, or a peak at 1/2 or 1/3 of
    its frequency that is itself prominent and holds at least HARMONIC_POWER_SHARE of its power
    (a jerk waveform's harmonics can outshine its fundamental over a falling background, yet
    carry less power: a sawtooth's n-th harmonic 1/n^2; the beat frequency is the fundamental's)."""
    k = int(np.argmax(ratio))
    tol = 1.5 * (freqs[1] - freqs[0])  # detect_nystagmus evaluates >= 24 frequencies
    for n in (3, 2):
        near = np.flatnonzero(np.abs(freqs - freqs[k] / n) <= max(tol, 0.04 * freqs[k] / n))
        if not near.size:
            continue
        j = int(near[np.argmax(ratio[near])])
        is_peak = 0 < j < len(freqs) - 1 and ratio[j] >= max(ratio[j - 1], ratio[j + 1])
        if is_peak and ratio[j] >= NYSTAGMUS_MIN_PROMINENCE and power[j] >= HARMONIC_POWER_SHARE * power[k]:
            return j
    return k


def detect_nystagmus(yaw_deg: np.ndarray, pitch_deg: np.ndarray, timestamps_s: np.ndarray, usable: np.ndarray,
                     robust: bool = False) -> dict:
    """Nystagmus of one eye from the spectrum of its gaze traces.

    Spectrum: least-squares periodogram (``robust_periodogram``; robust fits with ``robust``) of
    yaw plus that of pitch, on the usable frames (nothing
    interpolated), in windows of at most NYSTAGMUS_SEGMENT_S (50 % overlap, powers averaged), on a
    frequency grid NYSTAGMUS_OVERSAMPLING times finer than 1 / window. The strongest peak within
    NYSTAGMUS_BAND_HZ (capped below 0.9 x Nyquist and at NYSTAGMUS_MIN_CYCLES per window or more)
    counts when it stands NYSTAGMUS_MIN_PROMINENCE times above the band's background (``_background``:
    a narrow rhythm, not the falling spectrum of saccades and gaze shifts nor the flat one of
    per-frame measurement noise; a harmonic gives way to its fundamental, ``_fundamental``) and the
    oscillation at that frequency (``fit_rhythm`` of the fundamental, median over windows, yaw and
    pitch combined) reaches NYSTAGMUS_MIN_P2P_DEG peak to peak.

    ``robust`` (Tukey IRLS at every frequency) is for a gaze CHANGE against a baseline of the same
    frames (``fidelity.changes``): natural gaze shifts cancel there, so what is left besides the
    rhythm is measurement error, whose wild frames are outliers. On a re-tracked mask single frames
    (or short runs) are off by 5-30 deg; such a frame has a flat spectrum and, in the Welch spectrum
    used before, outshone 4-6 deg rhythms of a 3 s piece. On a raw gaze trace large gaze shifts are
    signal, not outliers: down-weighting them leaves an irregular remainder in which chance peaks
    stand out (single_face, 2.4 s: prominence 9-10 robust, 2-3 plain), so the default is the plain
    least-squares fit. Robust mode also asks the rhythm to carry NYSTAGMUS_MIN_VARIANCE_SHARE of
    the variance of the change trace of one axis (its sinusoid against the robust scatter around
    it, yaw or pitch, whichever is larger; so a noisy vertical reading under a lid neither
    counts as a rhythm nor hides a horizontal one): in a 3 s piece a lid over the iris leaves dense
    measurement noise in which chance peaks pass the prominence rule with 2-4 deg. On the fidelity
    grid (originals and masks) the peaks that passed the other rules carried a median 14 % of the
    variance (26 of 29 below 20 %) on cases without nystagmus, 70 % (3 of 48 below 20 %) on
    simulated nystagmus. On a raw trace
    the scatter holds the patient's own gaze shifts, so the rule is not applied there.

    Args:
        yaw_deg, pitch_deg, timestamps_s, usable: (T,) one eye's traces and usable frames.
        robust: robust (Tukey) fits instead of least squares (see above).

    Returns:
        ``{"detected": bool, "frequency_hz", "amplitude_p2p_deg", "direction", "threshold", ...}``
        plus ``_freq_hz``/``_power`` arrays (removed before writing JSON).
    """
    t = np.asarray(timestamps_s, np.float64)
    yaw, pitch = np.asarray(yaw_deg, np.float64), np.asarray(pitch_deg, np.float64)
    ok = np.asarray(usable, bool) & np.isfinite(yaw) & np.isfinite(pitch)
    threshold = {"band_hz": list(NYSTAGMUS_BAND_HZ), "min_p2p_deg": NYSTAGMUS_MIN_P2P_DEG,
                 "min_prominence": NYSTAGMUS_MIN_PROMINENCE, "min_cycles_in_window": NYSTAGMUS_MIN_CYCLES,
                 **({"min_variance_share": NYSTAGMUS_MIN_VARIANCE_SHARE} if robust else {}),
                 "window_s": NYSTAGMUS_SEGMENT_S,
                 "spectrum": "robust (Tukey) least-squares periodogram" if robust else "least-squares periodogram"}
    iterations = NYSTAGMUS_IRLS_ITERATIONS if robust else 0
    none = {"detected": False, "result": "none detected", "threshold": threshold}
    empty = np.zeros(0)
    if len(t) < 8 or ok.sum() < 8:
        return {**none, "result": "not measurable (too few frames)", "_freq_hz": empty, "_power": empty}
    dt = float(np.median(np.diff(t)))
    fs = 1.0 / dt
    length = min(NYSTAGMUS_SEGMENT_S, float(t[-1] - t[0]) + dt)
    f_lo = max(NYSTAGMUS_BAND_HZ[0], NYSTAGMUS_MIN_CYCLES / length)
    f_hi = min(NYSTAGMUS_BAND_HZ[1], 0.9 * fs / 2)
    freqs = np.arange(f_lo, f_hi + 1e-9, 1.0 / (NYSTAGMUS_OVERSAMPLING * length))
    segs = _segments(t, ok, length, dt)
    if not segs:
        return {**none, "result": "not measurable (too few frames)", "_freq_hz": empty, "_power": empty}
    if len(freqs) < 3 * NYSTAGMUS_OVERSAMPLING:
        return {**none, "result": "not measurable (clip too short)", "_freq_hz": empty, "_power": empty}
    power = np.zeros(len(freqs))
    for idx in segs:
        power += robust_periodogram(t[idx], yaw[idx], freqs, iterations) + robust_periodogram(t[idx], pitch[idx], freqs, iterations)
    power /= len(segs)
    ratio = power / _background(freqs, power)
    k = _fundamental(freqs, power, ratio)
    prominence = float(ratio[k])
    f0 = float(freqs[k])
    if 0 < k < len(freqs) - 1 and np.all(power[k - 1 : k + 2] > 0):  # parabolic refinement (log power)
        a, b, c = np.log(power[k - 1 : k + 2])
        den = a - 2 * b + c
        if abs(den) > 1e-12:
            f0 += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) * float(freqs[1] - freqs[0])
    fits = np.array([[fit_rhythm(t[idx], x[idx], f0, iterations) for x in (yaw, pitch)] for idx in segs])
    h, v = (float(a) for a in np.median(fits[:, :, 0], axis=0))
    p2p = float(np.hypot(h, v))
    direction = "horizontal" if h >= 2 * v else "vertical" if v >= 2 * h else "oblique"
    # the rhythm's share of its axis's variance: sinusoid (p2p / 2)^2 / 2 against the scatter around it
    var = (np.array([h, v]) / 2) ** 2 / 2
    scatter2 = np.median(fits[:, :, 1], axis=0) ** 2
    share = float(np.max(var / np.maximum(var + scatter2, 1e-12)))
    detected = (p2p >= NYSTAGMUS_MIN_P2P_DEG and prominence >= NYSTAGMUS_MIN_PROMINENCE
                and (not robust or share >= NYSTAGMUS_MIN_VARIANCE_SHARE))
    res = {"detected": bool(detected), "result": "detected" if detected else "none detected",
           "frequency_hz": round(f0, 2), "amplitude_p2p_deg": round(p2p, 2), "direction": direction,
           "horizontal_p2p_deg": round(h, 2), "vertical_p2p_deg": round(v, 2), "prominence": round(prominence, 1),
           "variance_share": round(share, 3),
           "threshold": threshold, "_freq_hz": freqs, "_power": power}
    if not detected:
        res["strongest_peak"] = {key: res.pop(key) for key in ("frequency_hz", "amplitude_p2p_deg", "direction")}
    return res


# ----------------------------------------------------------------------------------------------
# summary


def _median(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return round(float(np.median(x)), 2) if x.size else None


def summarize(table: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """Clinical summary of a per-frame table, and the per-eye gaze spectra (for the plots)."""
    t = table["time_s"]
    tracked = table["tracked"]
    n = len(t)
    dt = float(np.median(np.diff(t))) if n > 1 else 0.0
    yaw = np.stack([table["right_gaze_yaw_deg"], table["left_gaze_yaw_deg"]], axis=1)
    pitch = np.stack([table["right_gaze_pitch_deg"], table["left_gaze_pitch_deg"]], axis=1)
    iris = np.stack([table["right_iris_found"], table["left_iris_found"]], axis=1)
    is_open = np.stack([table["right_open"], table["left_open"]], axis=1)
    closed = tracked[:, None] & ~is_open
    summary: dict = {
        "frames": n,
        "frames_tracked": int(tracked.sum()),
        "duration_s": round(float(t[-1] - t[0] + dt), 3) if n else 0.0,
        "conventions": {
            "eyes": "right/left are the patient's own",
            "gaze": "yaw + toward the patient's left, pitch + up, degrees, relative to the head",
            "mrd": "MRD1/MRD2: upper/lower lid margin above/below the iris centre, mm (iris diameter 11.7 mm ruler)",
            "head": "turn + toward the patient's left, tilt + toward the patient's left shoulder, pitch + chin up",
        },
    }
    blinks = detect_blinks(closed, t, tracked)
    summary["blinks"] = {
        "blinks_per_minute": blinks["blinks_per_minute"],
        "blink_count": blinks["blink_count"],
        "sustained_closures": blinks["sustained_closures"],
        "one_eye_closures": blinks["one_eye_closures"],
        "events": {name: blinks[name] for name in EYE_NAMES},
        "episodes": blinks["episodes"],
        "threshold": {"closed_fissure_mm": CLOSED_APERTURE_MM, "blink_max_s": BLINK_MAX_S,
                      "bridged_open_gap_s": BLINK_MERGE_GAP_S},
    }
    both = iris.all(axis=1) & is_open.all(axis=1)
    dev = primary_gaze_deviation(yaw, pitch, both, table["frame"])
    dev["episodes"] = deviation_episodes(yaw, both, t)
    dev["episode_threshold_pd"] = EPISODE_PD
    summary["deviation"] = dev
    summary["nystagmus"] = {}
    spectrum: dict[str, np.ndarray] = {}
    for e, name in enumerate(EYE_NAMES):
        res = detect_nystagmus(yaw[:, e], pitch[:, e], t, tracked)
        spectrum["freq_hz"] = res.pop("_freq_hz")
        spectrum[name] = res.pop("_power")
        summary["nystagmus"][name] = res
    summary["lids"] = {}
    for e, name in enumerate(EYE_NAMES):
        ok = is_open[:, e]
        mrd1 = _median(table[f"{name}_mrd1_mm"][ok])
        summary["lids"][name] = {
            "mrd1_mm": mrd1,
            "mrd2_mm": _median(table[f"{name}_mrd2_mm"][ok]),
            "fissure_height_mm": _median(table[f"{name}_fissure_height_mm"][ok]),
            "fissure_width_mm": _median(table[f"{name}_fissure_width_mm"][ok]),
            "frames_used": int(ok.sum()),
            "ptosis": None if mrd1 is None else bool(mrd1 < PTOSIS_MRD1_MM),
            "lid_retraction": None if mrd1 is None else bool(mrd1 > RETRACTION_MRD1_MM),
        }
    summary["lids"]["threshold"] = {
        "ptosis": f"MRD1 < {PTOSIS_MRD1_MM} mm",
        "lid_retraction": f"MRD1 > {RETRACTION_MRD1_MM:.2f} mm (iris radius {IRIS_RADIUS_MM} mm + "
                          f"{RETRACTION_MARGIN_MM} mm: sclera visible above the limbus)",
        "statistic": "median over open-eye frames",
    }
    turn = _median_mean(table["head_yaw_deg"][tracked])
    tilt = _median_mean(table["head_roll_deg"][tracked])
    pitch_h = _median_mean(table["head_pitch_deg"][tracked])
    summary["head"] = {
        "mean_turn_deg": turn, "mean_tilt_deg": tilt, "mean_pitch_deg": pitch_h,
        "turn_direction": _side(turn), "tilt_direction": _side(tilt),
        "compensatory_posture": None if turn is None else bool(abs(turn) >= HEAD_POSTURE_DEG or abs(tilt) >= HEAD_POSTURE_DEG),
        "threshold_deg": HEAD_POSTURE_DEG,
    }
    return summary, spectrum


def _median_mean(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return round(float(np.mean(x)), 2) if x.size else None


def _side(angle: float | None) -> str:
    if angle is None:
        return "not measurable"
    if abs(angle) < HEAD_POSTURE_DEG:
        return "none"
    return "toward the patient's left" if angle > 0 else "toward the patient's right"


def measurements_from(track: LandmarkTrack, eyes: EyeTrack, fit: FaceFit, *, source_name: str = "") -> Measurements:
    """The clinical measurement of a video from its pass-1 values and reconstruction (no decoding)."""
    table = per_frame_table(fit, eyes, track)
    summary, spectrum = summarize(table)
    summary = {"source": source_name, **summary}
    return Measurements(source_name=source_name, table=table, summary=summary, spectrum=spectrum)


# ----------------------------------------------------------------------------------------------
# agreement


def icc_2_1(x: np.ndarray, y: np.ndarray) -> float:
    """ICC(2,1) (Shrout & Fleiss): two-way random effects, absolute agreement, single measurement.

    Args:
        x, y: (n,) paired measurements (the two "raters": original and mask).

    Returns NaN when fewer than 3 pairs or no variance at all.
    """
    data = np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=1)
    n, k = data.shape
    if n < 3:
        return float("nan")
    grand = data.mean()
    ss_rows = k * ((data.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((data.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((data - grand) ** 2).sum() - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    den = msr + (k - 1) * mse + k * (msc - mse) / n
    if den <= 0:
        return float("nan") if msr == 0 and mse == 0 and msc == 0 else 0.0
    return float((msr - mse) / den)


def bland_altman(original: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Bias (mask - original), 95 % limits of agreement (bias +- 1.96 SD) and mean absolute difference."""
    d = np.asarray(mask, np.float64) - np.asarray(original, np.float64)
    if d.size == 0:
        return {"mae": float("nan"), "bias": float("nan"), "loa_low": float("nan"), "loa_high": float("nan")}
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return {"mae": float(np.abs(d).mean()), "bias": bias, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def _pair_frames(a: Measurements, b: Measurements) -> tuple[np.ndarray, np.ndarray]:
    """Indices pairing frames of a and b by timestamp (same pts are kept by the mask)."""
    ta, tb = a.table["time_s"], b.table["time_s"]
    if len(ta) == len(tb) and np.allclose(ta, tb, atol=1e-3):
        idx = np.arange(len(ta))
        return idx, idx
    j = np.clip(np.searchsorted(tb, ta), 1, max(len(tb) - 1, 1))
    j = np.where(np.abs(tb[j - 1] - ta) <= np.abs(tb[np.minimum(j, len(tb) - 1)] - ta), j - 1, j)
    good = np.abs(tb[j] - ta) < 0.5 * float(np.median(np.diff(ta))) if len(ta) > 1 else np.ones(len(ta), bool)
    return np.flatnonzero(good), j[good]


def compare_measurements(original: Measurements, mask: Measurements) -> dict:
    """Agreement between an original's measurement and its mask's, per measure and per eye, and per flag.

    Frames: paired by timestamp; gaze, MRD1 and MRD2 on frames where both videos saw the iris open;
    fissure height and width on all frames tracked in both (closures included).

    Returns:
        ``{"per_eye": {"right": {MEASURE: {"icc", "mae", "bias", "loa_low", "loa_high", "n"}}, "left": ...},
        "flags": {FLAG: {"original", "mask", "agree"}}, "frames_paired": n}``.
    """
    ia, ib = _pair_frames(original, mask)
    ta, tb = original.table, mask.table
    both_tracked = ta["tracked"][ia] & tb["tracked"][ib]
    per_eye: dict = {}
    for name in EYE_NAMES:
        open_both = both_tracked & ta[f"{name}_open"][ia] & tb[f"{name}_open"][ib]
        per_eye[name] = {}
        for m in MEASURES:
            sel = both_tracked if m.startswith("fissure") else open_both
            x, y = ta[f"{name}_{m}"][ia][sel], tb[f"{name}_{m}"][ib][sel]
            fin = np.isfinite(x) & np.isfinite(y)
            x, y = x[fin], y[fin]
            stats = {"icc": icc_2_1(x, y), **bland_altman(x, y)}
            per_eye[name][m] = {k: (None if not np.isfinite(v) else round(v, 4)) for k, v in stats.items()}
            per_eye[name][m]["n"] = int(x.size)
    return {"per_eye": per_eye, "flags": compare_flags(original.summary, mask.summary),
            "frames_paired": int(len(ia)), "original": original.source_name, "mask": mask.source_name}


def diagnosis_flags(summary: dict) -> dict:
    """The diagnosis flags of one summary (what a clinician would conclude)."""
    dev = summary["deviation"]
    flags = {
        "horizontal_deviation": dev.get("horizontal_flag", "not measurable"),
        "vertical_deviation": dev.get("vertical_flag", "not measurable"),
    }
    for name in EYE_NAMES:
        flags[f"nystagmus_{name}"] = summary["nystagmus"][name]["detected"]
    for name in EYE_NAMES:
        flags[f"ptosis_{name}"] = summary["lids"][name]["ptosis"]
        flags[f"lid_retraction_{name}"] = summary["lids"][name]["lid_retraction"]
    b = summary["blinks"]
    flags["blink_count"] = b["blink_count"]
    for name in EYE_NAMES:
        flags[f"closures_{name}"] = len(b["events"][name])
        flags[f"one_eye_closures_{name}"] = b["one_eye_closures"][name]
    flags["sustained_closures"] = b["sustained_closures"]
    flags["compensatory_head_posture"] = summary["head"]["compensatory_posture"]
    return flags


def compare_flags(original: dict, mask: dict) -> dict:
    """Per diagnosis flag: the original's value, the mask's, and whether they agree (equal)."""
    fa, fb = diagnosis_flags(original), diagnosis_flags(mask)
    return {k: {"original": fa[k], "mask": fb[k], "agree": bool(fa[k] == fb[k])} for k in fa}
