"""Reconstruction stage: head pose, face motion, eyelids and eyeballs in 3D, per frame.

* Head: a similarity transform (scale, rotation, translation) fitting MediaPipe's canonical face
  to the landmarks (weighted Procrustes on MediaPipe's own rigid-point basis), lightly smoothed
  (jitter only: zero-phase Gaussian, ``POSE_SIGMA_FRAMES`` = 1 frame) and read ahead by the lag of
  MediaPipe's landmark filter (``POSE_LEAD_FRAMES``, at most ``POSE_LEAD_MAX_CM`` at the eyes).
* Face motion: landmarks brought into head coordinates minus the patient's neutral shape (the
  per-video median). Only the motion is kept; the neutral shape is discarded here.
* Eyeballs: per eye a sphere whose radius follows the iris ruler (11.7 mm visible iris, 12 mm
  eyeball radius), centred behind the midpoint of the eye corners (fixed per video, anatomical:
  never from gaze statistics, which would erase a constant squint). Per frame, the refined iris
  centre's view ray meets the sphere; the hit gives yaw and pitch. No temporal filter.
* Eyelids: upper and lower margin heights relative to the iris centre in the face plane, in mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from . import _spool
from .errors import NoFaceError
from .models import CANONICAL_FACE_MESH, model_path
from .types import EYEBALL_RADIUS_MM, IRIS_DIAMETER_MM, LIMBUS_DEPTH_RADII, EyeTrack, FaceFit, LandmarkTrack

EYE_CORNERS = ((33, 133), (263, 362))
LID_APEXES = ((159, 145), (386, 374))  # upper, lower lid apex landmarks per eye
# Horizontal eyeball reference per eye: a point beside the outer canthus and one beside the inner
# canthus, outside the lids. MediaPipe drags its eye contour along with the iris (corners by 10-35 %
# of a constant deviation, more on rendered faces than on real ones); these points move 3-7 %,
# alike on both (measured with simulated squints, docs/conventions.md).
EYE_REFERENCE = ((35, 245), (265, 465))
# Per-eye (x, y) shift (head cm) of the eyeball centres so that MediaPipe on our rendered template,
# the one face whose truth we know, reads its primary gaze as 0 (scripts/calibrate_template_eyes.py).
PRIMARY_GAZE_OFFSET_CM = np.array([[-0.051, 0.096], [-0.124, 0.135]])
# Eyeball centre depth behind the corner midpoint, in eyeball radii (cornea apex ~0.45 R ahead).
EYEBALL_DEPTH_RADII = 0.55
# Eyes turn at most ~50 deg from straight ahead (ductions); a reading beyond that is an iris deep in
# the canthus, measured off its visible part: kept at the limit (the mask then shows it there).
GAZE_LIMIT_DEG = 50.0
POSE_SIGMA_FRAMES = 1.0  # head-pose jitter filter: Gaussian sigma in frames (zero phase, no lag)
# MediaPipe's landmarks trail the head (its one-euro filter in VIDEO mode), by about half a frame
# at ordinary speeds and by a near-constant ~1 mm at the eyes once the head moves faster than ~2 %
# of the face's width a frame (on our rendered template, whose pose is known:
# scripts/probe_template_pose.py, docs/benchmarks.md). The pose is read that much ahead.
POSE_LEAD_FRAMES = 0.5
POSE_LEAD_MAX_CM = 0.1
MAX_RESIDUAL_CM = 1.0  # rigid-fit RMS above this (head cm; faces differ from the canonical by ~0.4) is untrustworthy


@dataclass(frozen=True, slots=True)
class CanonicalFace:
    """MediaPipe's canonical face: vertices (468, 3) cm, triangles, rigid-point basis."""

    vertices_cm: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray
    procrustes_idx: np.ndarray
    procrustes_w: np.ndarray
    lips: np.ndarray
    brows: np.ndarray


@cache
def canonical_face() -> CanonicalFace:
    """Load the bundled canonical face mesh (sha256-checked)."""
    with np.load(model_path(CANONICAL_FACE_MESH)) as d:
        return CanonicalFace(
            vertices_cm=d["V"].astype(np.float64),
            triangles=d["F"].astype(np.int32),
            uv=d["UV"].astype(np.float32),
            procrustes_idx=d["P_idx"].astype(np.int64),
            procrustes_w=d["P_w"].astype(np.float64),
            lips=d["lips"].astype(np.int64),
            brows=d["brows"].astype(np.int64),
        )


@cache
def rigid_points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's rigid-point basis minus the eye corners, which MediaPipe moves with the lids and
    irises (they would drag the head pose along with the eyes measured against it): landmark
    indices, their canonical positions (head cm) and weights."""
    face = canonical_face()
    keep = ~np.isin(face.procrustes_idx, np.ravel(EYE_CORNERS))
    idx = face.procrustes_idx[keep]
    return idx, face.vertices_cm[idx], face.procrustes_w[keep]


def eyeball_centers_cm(shape_cm: np.ndarray, radius_cm: float) -> np.ndarray:
    """Eyeball centres (2, 3) in head coordinates for a neutral face shape (468, 3).

    x: the midpoint of the eye's reference points (``EYE_REFERENCE``) plus their offset to the
    corner midpoint on the canonical face: not the corners themselves, which MediaPipe drags along
    with a deviated iris. y: the middle of the palpebral fissure from MediaPipe's lid apexes,
    averaged over BOTH eyes, so a one-sided ptosis cannot fake a vertical squint (MediaPipe's
    corners sit too low to define primary gaze: they read ~10-20 deg up on real faces); this is
    the starting point that ``fit_face`` replaces with the middle of the image-measured lids.
    z: behind the corners. Then the template calibration ``PRIMARY_GAZE_OFFSET_CM``.
    """
    canonical = canonical_face().vertices_cm
    centers = np.array([(shape_cm[a] + shape_cm[b]) / 2 for a, b in EYE_CORNERS])
    for e, ref in enumerate(EYE_REFERENCE):
        a, b = EYE_CORNERS[e]
        to_corners = (canonical[a, 0] + canonical[b, 0]) / 2 - canonical[list(ref), 0].mean()
        centers[e, 0] = shape_cm[list(ref), 0].mean() + to_corners
    centers[:, 1] = np.mean([(shape_cm[u, 1] + shape_cm[l, 1]) / 2 for u, l in LID_APEXES])
    centers[:, 2] -= EYEBALL_DEPTH_RADII * radius_cm
    centers[:, :2] += PRIMARY_GAZE_OFFSET_CM
    return centers


def fit_similarity(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted Umeyama: scale s, rotation R (proper), translation t minimising |s R src + t - dst|.

    Args:
        src, dst: (K, 3) corresponding points; w: (K,) non-negative weights.
    """
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    e = np.diag([1.0, 1.0, d])
    rot = u @ e @ vt
    var = float(w @ (a**2).sum(1))
    s = float((sig * np.diag(e)).sum() / var)
    t = mu_d - s * rot @ mu_s
    return s, rot, t


def _gaussian_along_frames(x: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d(x, sigma, axis=0, mode="nearest")`` for (T,) or (T, k)
    float64, in OpenCV (same truncation at 4 sigma, same edge rule): importing scipy.ndimage would
    add ~0.4 s to every start-up."""
    radius = int(4.0 * sigma + 0.5)
    columns = np.ascontiguousarray(x.reshape(len(x), -1))  # OpenCV reads a 1-D array as one row
    out = cv2.GaussianBlur(columns, (1, 2 * radius + 1), sigmaX=1e-9, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    return out.reshape(x.shape)


def _runs(ok: np.ndarray) -> list[np.ndarray]:
    """Frame indices of each run of consecutive ok frames."""
    idx = np.flatnonzero(ok)
    return np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1) if idx.size else []


def _steps_ahead(x: np.ndarray) -> np.ndarray:
    """x[t + 1] - x[t] along axis 0 for a run of frames; the last frame repeats the step before it."""
    step = np.diff(x, axis=0)
    return np.concatenate([step, step[-1:]])


def _smooth_runs(x: np.ndarray, ok: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 within each run of ok frames (runs never blend)."""
    out = x.copy()
    if sigma <= 0:
        return out
    for run in _runs(ok):
        if run.size > 2:
            out[run] = _gaussian_along_frames(x[run], sigma)
    return out


def _lead_runs(x: np.ndarray, ok: np.ndarray, lead: np.ndarray | float) -> np.ndarray:
    """``x`` read ``lead`` (0-1, per frame or one for all) frames later: interpolated toward the
    next frame, x[t] + lead (x[t + 1] - x[t]), within each run of ok frames (runs never blend; a
    run's last frame is extrapolated from the step before it). A half-frame advance at every
    frequency with a gain of at most 1: frame-to-frame jitter is damped, never boosted (a central
    difference boosts it by up to 12 %)."""
    out = x.copy()
    lead = np.broadcast_to(np.asarray(lead, np.float64), x.shape[:1])
    for run in _runs(ok):
        if run.size > 1:
            out[run] += lead[run].reshape((-1,) + (1,) * (x.ndim - 1)) * _steps_ahead(x[run])
    return out


def _pose_lead(rotations: np.ndarray, scales: np.ndarray, trans: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per frame, how far ahead to read the pose: ``POSE_LEAD_FRAMES``, less where the head moves
    so fast that half a frame's motion at the eyes would exceed ``POSE_LEAD_MAX_CM`` (MediaPipe's
    filter then trails by about that much, whatever the speed)."""
    face = canonical_face().vertices_cm
    between_eyes = np.mean([face[list(c)].mean(axis=0) for c in EYE_CORNERS], axis=0)
    at_eyes = scales[:, None] * np.einsum("tij,j->ti", rotations, between_eyes) + trans
    speed = np.zeros(len(ok))  # cm a frame at the eyes: the step _lead_runs takes
    for run in _runs(ok):
        if run.size > 1:
            speed[run] = np.linalg.norm(_steps_ahead(at_eyes[run, :2]), axis=1) / scales[run]
    return np.minimum(POSE_LEAD_FRAMES, POSE_LEAD_MAX_CM / np.maximum(speed, 1e-12))


def _rotvecs(rotations: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation matrices -> (T, 3) rotation vectors (axis * angle), OpenCV's Rodrigues."""
    return np.array([cv2.Rodrigues(r)[0].ravel() for r in rotations]).reshape(-1, 3)


def _rotation_matrices(rotvecs: np.ndarray) -> np.ndarray:
    """(T, 3) rotation vectors -> (T, 3, 3) rotation matrices."""
    return np.array([cv2.Rodrigues(v)[0] for v in rotvecs]).reshape(-1, 3, 3)


def fit_face(
    track: LandmarkTrack, eyes: EyeTrack, *, pose_sigma_frames: float = POSE_SIGMA_FRAMES, keep_patient_shape: bool = False
) -> FaceFit:
    """Reconstruct head pose, face motion, eyelids and eyeballs for a whole video.

    Args:
        track: landmarks per frame.
        eyes: refined eye measurements per frame (same T).
        pose_sigma_frames: Gaussian sigma of the head-pose jitter filter (eyes are never filtered).
        keep_patient_shape: ABLATION ONLY (privacy benchmark): also carry the patient's own neutral
            face shape into ``expression_cm``, as the 2022 mask did. Never used for real outputs.

    Raises:
        NoFaceError: no frame has a usable fit.
    """
    face = canonical_face()
    n = len(track.timestamps_s)
    flip = np.diag([1.0, -1.0, -1.0])  # head axes (y up, z to viewer) -> image axes (y down, z away)
    rotations = np.tile(np.eye(3), (n, 1, 1)) @ flip
    scales = np.ones(n)
    trans = np.zeros((n, 3))
    residual = np.full(n, np.nan)
    # Landmarks in head coordinates; becomes the face motion in place. Whole-video arrays (~5.6 KB a
    # frame each) are file-backed and walked in blocks, their pages released as we go (memory).
    aligned = _spool.empty((n, 468, 3), np.float32)
    pidx, canonical_rigid, pw = rigid_points()
    for i in np.flatnonzero(track.found):
        pts = track.points_px[i, :468].astype(np.float64)
        s, rot, t = fit_similarity(canonical_rigid, pts[pidx], pw)
        rotations[i], scales[i], trans[i] = rot, s, t
        aligned[i] = ((pts - t) @ rot) / s  # R^T (p - t) / s
        residual[i] = float(np.sqrt(np.mean(np.sum((s * canonical_rigid @ rot.T + t - pts[pidx]) ** 2, 1))))
        if i % _spool.RELEASE_EVERY == 0:
            _spool.release(track.points_px)
            _spool.release(aligned)
    _spool.release(track.points_px)
    tracked = track.found & (residual < MAX_RESIDUAL_CM * scales)
    if not tracked.any():
        raise NoFaceError("no usable face in any frame")

    # Face motion: aligned landmarks minus the per-video neutral shape (median), in place; the median
    # a few vertices at a time (no whole-video float64 copies).
    neutral = np.empty((468, 3))
    for lo in range(0, 468, 36):
        neutral[lo : lo + 36] = np.nanmedian(aligned[tracked, lo : lo + 36], axis=0)
        _spool.release(aligned)
    expression = aligned
    for lo in range(0, n, _spool.RELEASE_EVERY):
        block = expression[lo : lo + _spool.RELEASE_EVERY]
        block -= neutral.astype(np.float32)
        if keep_patient_shape:
            block += (neutral - face.vertices_cm).astype(np.float32)
        block[~tracked[lo : lo + _spool.RELEASE_EVERY]] = 0.0
        _spool.release(expression)

    # Smooth head-pose jitter only (MediaPipe's landmarks jitter; the eyes are measured against the
    # smoothed head, as the renderer draws them), then read it ahead by the lag of MediaPipe's filter.
    rotvec = _rotvecs(rotations @ flip)  # relative to the frontal pose
    rotvec = _smooth_runs(rotvec, tracked, pose_sigma_frames)
    scales_s = _smooth_runs(scales, tracked, pose_sigma_frames)
    trans_s = _smooth_runs(trans, tracked, pose_sigma_frames)
    lead = _pose_lead(_rotation_matrices(rotvec) @ flip, scales_s, trans_s, tracked)
    rotvec, scales_s, trans_s = (_lead_runs(x, tracked, lead) for x in (rotvec, scales_s, trans_s))
    rotations_s = _rotation_matrices(rotvec) @ flip

    # Eyes. Ruler: the refined iris radius in head units (per-video median, per eye pooled).
    iris_r_head = eyes.iris_radius_px / scales_s[:, None]
    ok_eye = eyes.valid & tracked[:, None]
    r_iris = float(np.nanmedian(iris_r_head[ok_eye])) if ok_eye.any() else float(np.nanmedian(iris_r_head[tracked]))
    mm_per_unit = IRIS_DIAMETER_MM / (2.0 * r_iris)
    radius = EYEBALL_RADIUS_MM / mm_per_unit
    centers = eyeball_centers_cm(neutral, radius)
    orbit = radius * LIMBUS_DEPTH_RADII  # the iris centre turns on this sphere

    # Height of primary gaze: where the measured lid openings sit (median over the video, both eyes
    # pooled): the middle of the image-measured fissure, which the mask reproduces, not MediaPipe's
    # lid landmarks, which it places differently on a rendered face (up to 10 deg of pitch bias).
    # One step: the middle depends on the centres only through the iris depth.
    middle = _eye_angles(eyes, tracked, rotations_s, scales_s, trans_s, centers, orbit, mm_per_unit)[4]
    seen = np.isfinite(middle)
    if seen.any():
        centers[:, 1] = np.mean([np.median(middle[seen[:, e], e]) for e in range(2) if seen[:, e].any()])
        centers[:, 1] += PRIMARY_GAZE_OFFSET_CM[:, 1]
    yaw, pitch, upper, lower, _ = _eye_angles(eyes, tracked, rotations_s, scales_s, trans_s, centers, orbit, mm_per_unit)
    # Closed eyes hide the iris: interpolate between the gazes seen before and after (lids cover it).
    for arr in (yaw, pitch):
        for e in range(2):
            col = arr[:, e]
            seen = np.flatnonzero(np.isfinite(col))
            if seen.size:
                arr[:, e] = np.interp(np.arange(n), seen, col[seen], left=col[seen[0]], right=col[seen[-1]])
            else:
                arr[:, e] = 0.0
    for arr in (upper, lower):
        arr[~tracked] = 4.0
        arr[:] = np.nan_to_num(arr, nan=4.0)

    return FaceFit(
        timestamps_s=track.timestamps_s,
        pts=track.pts,
        tracked=tracked,
        rotation=rotations_s,
        scale_px_per_cm=scales_s,
        translation_px=trans_s,
        expression_cm=expression,
        gaze_yaw_deg=yaw,
        gaze_pitch_deg=pitch,
        upper_lid_mm=upper,
        lower_lid_mm=lower,
        residual_px=residual,
        image_size=track.image_size,
        eyeball_center_cm=centers,
        eyeball_radius_cm=radius,
        mm_per_cm=mm_per_unit,
    )


def _eye_angles(
    eyes: EyeTrack, tracked: np.ndarray, rotations: np.ndarray, scales: np.ndarray, trans: np.ndarray,
    centers: np.ndarray, orbit: float, mm_per_unit: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame and eye: gaze yaw and pitch (deg; NaN where the iris was not seen) from the
    refined iris centres on eyeballs at ``centers``, the lid margins relative to the iris (mm), and
    the head-y of the middle between the lid margins (NaN where the iris was not seen).
    All frames at once (arrays (m, 2 eyes, 3) over the m tracked frames)."""
    n = len(tracked)
    out = [np.full((n, 2), np.nan) for _ in range(5)]  # yaw, pitch, upper, lower, middle
    idx = np.flatnonzero(tracked)
    if idx.size == 0:
        return tuple(out)  # type: ignore[return-value]
    rot, s, t = rotations[idx], scales[idx], trans[idx]
    view = rot[:, 2, :]  # image +z (away) in head coordinates: R^T e_z

    def to_head(px: np.ndarray) -> np.ndarray:  # (m, 2, 2) image px (z = 0) -> (m, 2, 3) head cm
        p = np.concatenate([px.astype(np.float64), np.zeros(px.shape[:2] + (1,))], axis=2) - t[:, None]
        return np.einsum("mji,mej->mei", rot, p) / s[:, None, None]  # R^T (p - t) / s

    # eyeball rotation from the refined iris centre (only where the iris was seen)
    oc = to_head(eyes.iris_center_px[idx]) - centers
    bq = np.einsum("mei,mi->me", oc, view)
    disc = bq * bq - ((oc * oc).sum(axis=2) - orbit * orbit)
    rim = oc - bq[..., None] * view[:, None]  # outside the silhouette: nearest point on the rim
    rim /= np.linalg.norm(rim, axis=2, keepdims=True)
    hit = (oc + (-bq - np.sqrt(np.maximum(disc, 0.0)))[..., None] * view[:, None]) / orbit
    g = np.where((disc < 0)[..., None], rim, hit)
    seen = eyes.valid[idx]
    yaw = np.clip(np.degrees(np.arctan2(g[..., 0], g[..., 2])), -GAZE_LIMIT_DEG, GAZE_LIMIT_DEG)
    pitch = np.clip(np.degrees(np.arcsin(np.clip(g[..., 1], -1.0, 1.0))), -GAZE_LIMIT_DEG, GAZE_LIMIT_DEG)
    # (at the iris's depth, as the lid heights: in the face plane through the iris)
    m0 = to_head((eyes.upper_lid_px[idx].astype(np.float64) + eyes.lower_lid_px[idx]) / 2.0)
    middle = m0[..., 1] + (centers[:, 2] + orbit * g[..., 2] - m0[..., 2]) / view[:, None, 2] * view[:, None, 1]
    for k, value in enumerate((yaw, pitch)):
        out[k][idx] = np.where(seen, value, np.nan)
    out[4][idx] = np.where(seen, middle, np.nan)
    # lid margins relative to the iris centre, in the face plane, in mm: solve (s R[:2, :2]) d = lid - iris
    a2 = s[:, None, None] * rot[:, :2, :2]
    iris = eyes.iris_center_px[idx].astype(np.float64)
    for k, lid, sign in ((2, eyes.upper_lid_px, 1.0), (3, eyes.lower_lid_px, -1.0)):
        d_head = np.linalg.solve(a2, (lid[idx].astype(np.float64) - iris).transpose(0, 2, 1))  # (m, xy, eye)
        out[k][idx] = sign * d_head[:, 1, :] * mm_per_unit
    return tuple(out)  # type: ignore[return-value]


def project_eye_model(fit: FaceFit, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image positions (2, 2) px of the 3D model's iris centres, upper and lower lid margins.

    Uses the per-video eyeball centres, the smoothed head pose and the per-frame angles and lid
    heights: what the model says, to compare with what the eye stage detected.
    """
    rot, s, t = fit.rotation[i], fit.scale_px_per_cm[i], fit.translation_px[i]
    yaw, pitch = np.radians(fit.gaze_yaw_deg[i]), np.radians(fit.gaze_pitch_deg[i])
    g = np.stack([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)], axis=1)
    iris = fit.eyeball_center_cm + fit.iris_orbit_cm * g
    up = iris.copy()
    up[:, 1] += fit.upper_lid_mm[i] / fit.mm_per_cm
    lo = iris.copy()
    lo[:, 1] -= fit.lower_lid_mm[i] / fit.mm_per_cm

    def proj(p: np.ndarray) -> np.ndarray:
        return (s * p @ rot.T + t)[:, :2]

    return proj(iris), proj(up), proj(lo)


def reconstruction_error_pct(fit: FaceFit, eyes: EyeTrack, track: LandmarkTrack) -> dict[str, float]:
    """The paper's accuracy metric: mean 2D distance between detected and projected-model points,
    as % of the distance between the two eye centres (corner midpoints), for eyeballs (iris
    centres, where the iris was seen) and eyelids (upper and lower margins), over tracked frames.
    """
    eyeball: list[float] = []
    eyelid: list[float] = []
    for i in np.flatnonzero(fit.tracked):
        p = track.points_px[i, :, :2].astype(np.float64)
        if i % _spool.RELEASE_EVERY == 0:
            _spool.release(track.points_px)
        mids = [(p[a] + p[b]) / 2 for a, b in EYE_CORNERS]
        iod = float(np.linalg.norm(mids[0] - mids[1]))
        iris, up, lo = project_eye_model(fit, i)
        for e in range(2):
            if eyes.valid[i, e]:
                eyeball.append(np.linalg.norm(iris[e] - eyes.iris_center_px[i, e]) / iod)
            eyelid.append(np.linalg.norm(up[e] - eyes.upper_lid_px[i, e]) / iod)
            eyelid.append(np.linalg.norm(lo[e] - eyes.lower_lid_px[i, e]) / iod)
    _spool.release(track.points_px)
    return {
        "eyeball_pct": 100.0 * float(np.mean(eyeball)) if eyeball else float("nan"),
        "eyelid_pct": 100.0 * float(np.mean(eyelid)) if eyelid else float("nan"),
    }
