"""Eye stage: image-based iris and eyelid measurement per eye, MediaPipe as the starting point.

MediaPipe pulls the iris toward the middle of the eye when the eyes do not move together, couples
the two eyes' lid openings and misjudges iris size (DESIGN.md). So for each eye, inside a crop
normalised to the eye corners, we measure from pixels:

* the iris centre: the disc that holds the most dark and the least bright pixels of the visible
  eye opening; pixels hidden by the lids count for neither, so a partly covered or cornered iris
  is still found. A second look counts only the measured opening (lashes and lid shadow above
  the margin are dark too and would pull the disc up). Then the limbus edge places it across: a
  blurred dark circle fitted (robust least squares) to the pixels around the edge, clear of the
  lid margins; the height stays the disc's. A turned iris's limbus is an ellipse, cos(turn) as
  wide as tall: the circle slides toward the canthus by the width it has too much, so it is
  refitted as that ellipse (the turn from an eyeball placed with this frame's landmarks);
* the iris radius (the mm ruler): from the two horizontal limbus edges where both are visible,
  else MediaPipe's;
* the upper lid margin at the iris column: the sclera's top edge (sub-pixel, halfway from sclera
  to lash line) on the columns beside the iris, where it is sharp, carried to the iris column by
  a parabola through them (over a dark iris the lash line has no edge). Where too little sclera
  shows, as the lower margin: the extent of the non-skin band (sclera, iris, lash line) that
  holds the iris centre (a dark brow or crease above is a band of its own), where "skin" is
  modelled per frame from the skin above and below that eye, the dark lash line above the
  upper margin measured beside the iris and taken off. No iris found = eye closed: both
  margins meet.

Each eye is measured on its own; nothing is smoothed over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from . import _spool
from .fitting import eyeball_centers_cm, fit_similarity, rigid_points
from .types import EYEBALL_RADIUS_MM, IRIS_DIAMETER_MM, LIMBUS_DEPTH_RADII, EyeTrack

# 16-point eye contours (patient's side), corners first: outer, then inner.
EYE_CORNERS = ((33, 133), (263, 362))
UPPER_LID = ((246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398))
LOWER_LID = ((7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382))
IRIS = ((468, 469, 470, 471, 472), (473, 474, 475, 476, 477))

# Normalised crop: corners at (CROP_X0, CROP_YC) and (CROP_X1, CROP_YC).
CROP_W, CROP_H = 96, 80
CROP_X0, CROP_X1, CROP_YC = 16.0, 80.0, 40.0
CROP_EYE_W = CROP_X1 - CROP_X0
_ROWS, _COLS = np.arange(CROP_H), np.arange(CROP_W)  # the crop's row and column indices
_SKIN_PRIOR = np.eye(3) * 16.0
LIMBUS_RANGE = (0.75, 1.3)  # a limbus radius is believed within this range of MediaPipe's iris radius
LIMBUS_BAND_PX = 3.5  # the limbus fit uses the pixels this close to the edge (crop px)
LIMBUS_BLUR_PX = 0.5  # the edge's width in the limbus fit (logistic scale, crop px)
LIMBUS_FIT_STEPS = 6  # Gauss-Newton steps at most (3-4 are typical)
_LIMBUS_DAMPING = np.diag([1e-3, 1e-3, 1e-6, 1e-6])  # keeps the normal equations solvable
DISC_ASPECT = 0.9  # the refining looks' kernel height over width: a kernel taller than the visible
# iris slides into a lid-covered edge when sclera shows at the other (a retracted lid: ~1 px down).
# The first look, which decides whether there is an iris at all, stays round: a shorter kernel
# also fits a closed eye's thick lash line (d14's closure, frames 120-200).
IRIS_GAP_SPAN = 0.9  # skin-coloured gaps in the iris column's non-skin band are bridged this many radii round its centre
IRIS_GAP_MAX = 0.35  # ... when at most this many iris radii long (a light iris's bright ring round the pupil)
LID_GAP_PX = 1.5  # the limbus fit keeps this far from the lid margins (lash line, lid shadow)
# The limbus centre turns on an orbit this many iris radii round the eyeball centre (10.5 / 5.85 mm).
LIMBUS_ORBIT_RADII = EYEBALL_RADIUS_MM * LIMBUS_DEPTH_RADII / (IRIS_DIAMETER_MM / 2.0)
TURNED_SLACK_PX = 0.25  # a turned iris's refit may move the centre this much past its width deficit


@dataclass(frozen=True, slots=True)
class EyeSample:
    """One eye in one frame, image pixels (NaN when not measurable)."""

    iris_center_px: np.ndarray  # (2,)
    iris_radius_px: float
    upper_lid_px: np.ndarray  # (2,)
    lower_lid_px: np.ndarray  # (2,)
    mp_iris_center_px: np.ndarray
    mp_upper_lid_px: np.ndarray
    mp_lower_lid_px: np.ndarray
    valid: bool


def _crop_transform(points_px: np.ndarray, eye: int) -> np.ndarray:
    """2x3 affine mapping image pixels to the eye's normalised crop (image-left corner first)."""
    a, b = (points_px[i, :2].astype(np.float64) for i in EYE_CORNERS[eye])
    if a[0] > b[0]:
        a, b = b, a
    d = b - a
    length = max(float(np.hypot(*d)), 1e-6)
    s = CROP_EYE_W / length
    c, sn = d / length
    rot = s * np.array([[c, sn], [-sn, c]])
    t = np.array([CROP_X0, CROP_YC]) - rot @ a
    return np.hstack([rot, t[:, None]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _lid_at(xs: np.ndarray, ys: np.ndarray, x: float) -> float:
    """Lid height at column x from a lid polyline (crop coordinates), corners included."""
    order = np.argsort(xs)
    return float(np.interp(x, xs[order], ys[order]))


def _distances(cx: float, cy: float, radius: float) -> tuple[slice, slice, np.ndarray]:
    """Distances (np.hypot) from (cx, cy) of the crop's pixels in the box of rows and columns
    that holds all those within ``radius`` (outside it a coordinate difference alone exceeds
    ``radius``; hypot on the whole crop costs ~50 us): rows, columns, distances."""
    ys = slice(max(0, int(np.floor(cy - radius))), max(0, int(np.ceil(cy + radius)) + 1))
    xs = slice(max(0, int(np.floor(cx - radius))), max(0, int(np.ceil(cx + radius)) + 1))
    return ys, xs, np.hypot(_COLS[None, xs] - cx, _ROWS[ys, None] - cy)


@cache
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.mgrid[-n : n + 1, -n : n + 1])  # type: ignore[return-value]


def _disc(r: float, aspect: float = 1.0) -> np.ndarray:
    """The iris kernel: ``r`` across, ``aspect * r`` tall."""
    yy, xx = _grid(int(np.ceil(r)))
    return ((xx / r) ** 2 + (yy / (aspect * r)) ** 2 <= 1.0).astype(np.float32)


def _skin_model(crop: np.ndarray, upper: float, lower: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse covariance of skin colour from bands above and below the eye opening."""
    h = crop.shape[0]
    rows = np.r_[max(0, int(upper) - 14) : max(1, int(upper) - 7), min(h - 1, int(lower) + 3) : min(h, int(lower) + 11)]
    band = crop[rows, int(CROP_X0) + 8 : int(CROP_X1) - 8].reshape(-1, 3).astype(np.float64)
    mean = band.sum(0) / len(band)  # sums, not .mean(): numpy's mean costs ~30 us a call here
    # np.cov(band.T) step by step (the same operations on the same memory layout, so the same
    # bits; its argument handling costs ~100 us a call): centred samples, X X^T, / (n - 1). The
    # sums of integer pixel values are exact, so ``mean`` is np.cov's average to the bit.
    centred = band - mean
    cov = np.dot(centred.T, centred)
    cov *= np.true_divide(1, len(band) - 1)
    return mean, np.linalg.inv(cov + _SKIN_PRIOR)


def _first_run(column: np.ndarray, start: int, stop: int, run: int = 2) -> int | None:
    """First index in [start, stop) where ``column`` is True for ``run`` consecutive rows."""
    hits = column[start:stop]
    if hits.size < run:
        return None
    windows = hits[: hits.size - run + 1].copy()
    for k in range(1, run):
        windows &= hits[k : hits.size - run + 1 + k]
    i = int(windows.argmax())  # the first True, if any
    return start + i if windows[i] else None


def _lash_thickness(nonskin: np.ndarray, sclera: np.ndarray, center: np.ndarray, r: float, top: int) -> float:
    """Rows of dark lash line between the top of the non-skin band and the top of the bright
    sclera (``sclera``: bright non-skin pixels, see ``_sclera_mask``), on the columns just beside
    the iris (0 where no sclera is visible there)."""
    found = []
    for fx in (center[0] - 1.35 * r, center[0] + 1.35 * r):
        x = int(round(fx))
        if not CROP_X0 + 3 <= x <= CROP_X1 - 3:
            continue
        stop = int(min(CROP_H, center[1] + r))
        # "at least half of the 3 columns" = at least 2 of them
        band_top = _first_run(nonskin[:, x - 1] + nonskin[:, x] + nonskin[:, x + 1] >= 2, top, stop, run=1)
        sclera_top = _first_run(sclera[:, x - 1].astype(np.uint8) + sclera[:, x] + sclera[:, x + 1] >= 2, top, stop)
        if band_top is not None and sclera_top is not None and 0 <= sclera_top - band_top <= 0.6 * r:
            found.append(sclera_top - band_top)
    return float(min(found)) if found else 0.0


def _sclera_mask(gray: np.ndarray, nonskin: np.ndarray, thr: float) -> np.ndarray:
    """Sclera: bright (over the iris threshold + 10) non-skin pixels."""
    return (gray > thr + 10.0) & (nonskin > 0)


def _sclera_tops(gray: np.ndarray, sclera: np.ndarray, xs: np.ndarray, y0: int, lo_y: int) -> np.ndarray:
    """Sub-pixel row where each column of ``xs`` leaves the sclera going up from row ``y0``: the
    crossing halfway between the sclera's brightness and the darkest of the few rows above it
    (lash line or lid skin); NaN where ``(x, y0)`` is not sclera, the sclera reaches ``lo_y`` or
    the edge is weak (under 30 grey levels).

    All columns at once (a per-column loop costs ~10 us a column). Per column: the sclera run
    that holds ``y0`` starts at row ``y``; ``top``, its brightest row (first of equals) from ``y``
    down to ``y0``; ``mid``, halfway from ``top`` to the darkest of the (up to) 4 rows above ``y``;
    the edge lies between the last row at or above ``top`` darker than ``mid`` and the row below.
    Arithmetic in float32 as numpy does for float32 pixels and Python scalars, so the rows are
    those of the per-column loop this replaces, to the bit.
    """
    out = np.full(len(xs), np.nan)
    if y0 < lo_y or not len(xs):
        return out
    col = gray[lo_y : y0 + 1, xs]  # rows lo_y..y0, relative row index r = row - lo_y
    sc = sclera[lo_y : y0 + 1, xs]
    rows = _ROWS[: y0 + 1 - lo_y, None]
    gap = np.where(sc, -1, rows).max(axis=0)  # last non-sclera row at or above y0 (-1: none)
    ok = sc[-1] & (gap >= 0)
    if not ok.any():
        return out
    y = gap + 1  # top of the sclera run holding y0
    darkest = np.where((rows < y) & (rows >= y - 4), col, np.inf).min(axis=0)
    top = np.where(rows >= y, col, -np.inf).argmax(axis=0)
    brightest = col[top, np.arange(len(xs))]
    ok &= ~(brightest - darkest < 30.0)
    mid = (0.5 * (brightest.astype(np.float64) + darkest.astype(np.float64))).astype(np.float32)
    below = (col < mid) & (rows <= top)  # darker than mid, at or above top
    ok &= below.any(axis=0)
    if not ok.any():
        return out
    k = len(rows) - 1 - below[::-1].argmax(axis=0)  # the last such row
    i = np.flatnonzero(ok)
    ck, ck1 = col[k[i], i], col[k[i] + 1, i]
    out[i] = (k[i] + lo_y).astype(np.float32) + (mid[i] - ck) / (ck1 - ck)
    return out


def _upper_from_sclera(gray: np.ndarray, sclera: np.ndarray, center: np.ndarray, r: float, lo_y: int) -> float | None:
    """Upper margin row at the iris column from the top of the sclera beside the iris.

    Over a dark iris the lash line has no edge to find; beside the iris the sclera -> lid edge is
    sharp. It is read (sub-pixel) on the columns 1.1-1.7 iris radii either side and a parabola
    through those edges, the lid's own curve, is read at the iris column. None when fewer than
    three columns on either side show a clear edge (iris in a corner, a narrow fissure).

    Why not the non-skin band minus the lash line measured beside the iris: on our rendered
    template the band's top lies on the lid's soft shading, 5-7 px above the margin, and the
    lash line beside the iris took 6-7 px off or (past its limit) nothing, so the mask's MRD1
    read back with a gain of ~1.4 and jumped ~2.5 mm between frames (docs/benchmarks.md).
    """
    y0 = int(round(center[1]))
    dx = np.arange(1.1 * r, 1.7 * r, 1.0)
    cols = np.rint(np.concatenate([center[0] - dx, center[0] + dx]))  # left side first
    cols = cols[(cols >= CROP_X0) & (cols <= CROP_X1)].astype(np.intp)
    ys = _sclera_tops(gray, sclera, cols, y0, lo_y)
    found = ~np.isnan(ys)
    xs, ys = cols[found] - center[0], ys[found]
    if (xs < 0).sum() < 3 or (xs > 0).sum() < 3:
        return None
    return float(np.polyfit(xs, ys, 2)[-1])


def _locate_iris(dark: np.ndarray, bright: np.ndarray, r: float, allowed: np.ndarray,
                 aspect: float = 1.0) -> np.ndarray | None:
    """Centre (x, y) of the disc (r wide, ``aspect`` * r tall) with the most dark and least bright pixels, or None
    when there is no such disc (too little dark) or the dark is a line (a closed eye's lashes)."""
    k = _disc(r, aspect)
    score = np.where(allowed, cv2.filter2D(dark - 1.5 * bright, -1, k, borderType=cv2.BORDER_CONSTANT), -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
    # an iris is a dark blob with non-dark flanks; a closed eye's lash line is dark across
    n = int(np.ceil(r))
    band = dark[max(0, iy - n // 2) : iy + n // 2 + 1]
    flanks = [f.sum() / f.size for f in (band[:, max(0, ix - 2 * n) : max(0, ix - n - 1)], band[:, ix + n + 2 : ix + 2 * n + 1]) if f.size]
    if not score[iy, ix] > 0.25 * k.sum() or (flanks and min(flanks) > 0.5):
        return None

    def sub(a: float, b: float, c: float) -> float:  # sub-pixel: parabola through neighbours
        den = a - 2 * b + c
        return 0.0 if not np.isfinite(den) or abs(den) < 1e-9 else float(min(max(0.5 * (a - c) / den, -0.5), 0.5))

    dx = sub(score[iy, ix - 1], score[iy, ix], score[iy, ix + 1]) if 0 < ix < CROP_W - 1 else 0.0
    dy = sub(score[iy - 1, ix], score[iy, ix], score[iy + 1, ix]) if 0 < iy < CROP_H - 1 else 0.0
    return np.array([ix + dx, iy + dy])


def _limbus_radius(gray: np.ndarray, mask: np.ndarray, center: np.ndarray, r: float,
                   sclera_level: float) -> float | None:
    """Iris radius from the two horizontal limbus edges (iris -> sclera) on the centre row, at the
    level halfway between iris and sclera, or None when either edge is hidden (iris in a corner
    or under the lids). ``mask``: the visible opening's non-skin pixels (a pink caruncle or the
    skin past a canthus is no sclera); ``sclera_level``: the 90th percentile of ``gray`` there."""
    y, x0 = int(round(center[1])), center[0]
    ys, xs, dist = _distances(x0, center[1], 0.5 * r)
    iris = gray[ys, xs][(dist < 0.5 * r) & (mask[ys, xs] > 0)]
    if not iris.size:
        return None
    iris_level = float(np.median(iris))
    if sclera_level - iris_level < 30.0:
        return None
    level = 0.5 * (iris_level + sclera_level)
    near = gray[max(0, y - 1) : y + 2]
    rows = near.sum(axis=0) / len(near)
    inside = mask[max(0, y - 1) : y + 2].min(axis=0) > 0
    edges = []
    for step in (-1, 1):
        xs = x0 + step * np.arange(0.6 * r, 1.6 * r, 0.25)
        xi = np.clip(np.round(xs).astype(int), 0, CROP_W - 1)
        vals = np.interp(xs, np.arange(CROP_W), rows)
        crossing = np.flatnonzero(vals > level)
        if not crossing.size or crossing[0] == 0 or not inside[xi[crossing[0]]]:
            return None
        k = crossing[0]
        edges.append(float(np.interp(level, [vals[k - 1], vals[k]], [xs[k - 1], xs[k]])))
    return abs(edges[1] - edges[0]) / 2.0


def _fit_limbus(gray: np.ndarray, use: np.ndarray, center: np.ndarray, r: float, width: float = 1.0,
                levels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Limbus centre and grey levels ``(a, b)`` from the pixels around the iris's edge: a dark disc
    of radius ``r`` (an ellipse ``width`` times as wide, for a turned iris) on a brighter ground,
    its edge blurred, ``grey = a + b * sigmoid(edge distance / LIMBUS_BLUR_PX)``, fitted to the
    pixels of ``use`` (the opening, clear of the lid margins) within ``LIMBUS_BAND_PX`` of the edge
    by Gauss-Newton on (cx, cy, a, b), with Tukey weights (lashes, the caruncle and reflections do
    not fit the model and lose their weight). Given ``levels``, only the centre is fitted, weighted
    from the start (pixels unlike both iris and sclera, such as a dark caruncle, weigh nothing).

    The disc locator counts whole pixels as dark or bright; the edge's grey levels place the
    circle to a fraction of a pixel (on real clips the simulated horizontal gaze changes read back
    with less scatter; docs/benchmarks.md, "Clinical consistency"). None when too few pixels, too
    little contrast or a centre implausibly far from the disc's (the disc's centre then stands).
    """
    def edge_distance(cx: float, cy: float, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Signed distance (px, + outside) from the edge, to first order (exact for a circle)."""
        u, v = (px - cx) / width, py - cy
        q = np.maximum(np.hypot(u, v), 1e-9)
        return (q - r) * q / np.maximum(np.hypot(u / width, v), 1e-9)

    ys, xs, _ = _distances(center[0], center[1], r + LIMBUS_BAND_PX)
    sel = use[ys, xs] & (np.abs(edge_distance(*center, _COLS[None, xs], _ROWS[ys, None])) < LIMBUS_BAND_PX)
    yy, xx = np.nonzero(sel)
    if yy.size < 30:
        return None
    px = (xx + xs.start).astype(np.float64)
    py = (yy + ys.start).astype(np.float64)
    g = gray[ys, xs][sel].astype(np.float64)
    # (cx, cy, a, b): the grey levels start at the extremes and are solved exactly in the
    # first step (the model is linear in them); the edge's weights start at 1
    p = np.array([center[0], center[1], g.min(), g.max() - g.min()])
    free = np.arange(4) if levels is None else np.arange(2)
    if levels is not None:
        p[2:] = levels
    w = np.ones_like(g)
    jac = np.empty((g.size, 4))  # d model / d (cx, cy, a, b)
    jac[:, 2] = 1.0
    h = 0.01  # px: the centre's derivatives by forward differences
    for i in range(LIMBUS_FIT_STEPS):
        sd = edge_distance(p[0], p[1], px, py)
        sig = 1.0 / (1.0 + np.exp(-sd / LIMBUS_BLUR_PX))
        res = g - (p[2] + p[3] * sig)
        if i or levels is not None:  # Tukey weights, from the residuals of the first step's levels
            u = res / (4.685 * (1.4826 * np.median(np.abs(res)) + 1.0))
            w = np.maximum(1.0 - u * u, 0.0) ** 2
        k = p[3] / LIMBUS_BLUR_PX * sig * (1 - sig)  # d model / d edge distance
        jac[:, 0] = k * (edge_distance(p[0] + h, p[1], px, py) - sd) / h
        jac[:, 1] = k * (edge_distance(p[0], p[1] + h, px, py) - sd) / h
        jac[:, 3] = sig
        jw = jac[:, free].T * w
        step = np.linalg.solve(jw @ jac[:, free] + _LIMBUS_DAMPING[np.ix_(free, free)], jw @ res)
        step[:2] = np.clip(step[:2], -1.0, 1.0)
        p[free] += step
        if i and np.abs(step[:2]).max() < 0.05:
            break
    c = p[:2]
    if not (p[3] > 20.0 and np.hypot(*(c - center)) < 0.5 * r):
        return None
    return c, p[2:]


def _between_lids(up: np.ndarray, lo: np.ndarray, upper_y: float, lower_y: float, x: float) -> np.ndarray:
    """Crop mask of the opening at least ``LID_GAP_PX`` inside both lids: MediaPipe's lid
    polylines (``up``, ``lo``: crop points) moved vertically to pass through the measured margins
    ``upper_y``, ``lower_y`` at column ``x`` (MediaPipe's lid shape, the image's lid height)."""
    cu = np.interp(_COLS, *up[np.argsort(up[:, 0])].T)
    cl = np.interp(_COLS, *lo[np.argsort(lo[:, 0])].T)
    cu += upper_y + LID_GAP_PX - np.interp(x, _COLS, cu)
    cl += lower_y - LID_GAP_PX - np.interp(x, _COLS, cl)
    return (_ROWS[:, None] >= cu) & (_ROWS[:, None] <= cl)


def _bridge_iris_gaps(band: np.ndarray, cy: int, r: float) -> None:
    """Fill, in place, short gaps of ``band`` (the non-skin rows of the iris column) that lie
    inside the iris (within IRIS_GAP_SPAN radii of its centre row ``cy``) with non-skin on both
    sides: a light iris's bright ring round the pupil reads as skin in a row or two and ended the
    band there (d10's grey iris: the lower margin found in the iris, MRD2 4-6 mm short). A lid over
    the iris is skin down to past the iris, so it is never such a gap."""
    lo, hi = max(0, int(cy - IRIS_GAP_SPAN * r)), min(len(band), int(cy + IRIS_GAP_SPAN * r) + 1)
    longest = max(1, int(IRIS_GAP_MAX * r))
    y = lo
    while y < hi:
        if band[y]:
            y += 1
            continue
        end = y
        while end < hi and not band[end]:
            end += 1
        if y > lo and end < hi and band[y - 1] and band[end] and end - y <= longest:
            band[y:end] = True
        y = end


def _lids_at(gray: np.ndarray, nonskin: np.ndarray, sclera: np.ndarray, center: np.ndarray, r: float,
             upper_mp: float, lower_mp: float) -> tuple[float, float]:
    """Upper and lower lid margin rows at the iris column: the top of the sclera beside the iris
    carried to the iris column (``_upper_from_sclera``), else the extent of the non-skin band.
    ``sclera``: ``_sclera_mask``."""
    x = int(min(max(round(center[0]), 2), CROP_W - 3))
    prof = nonskin[:, x - 2 : x + 3].sum(axis=1) / 5
    prof = np.convolve(prof, np.ones(3) / 3, mode="same")
    lo_y = int(max(0, upper_mp - 0.2 * CROP_EYE_W))
    hi_y = int(min(CROP_H - 1, lower_mp + 0.15 * CROP_EYE_W))
    band = prof >= 0.5
    cy = int(min(max(round(center[1]), lo_y), hi_y))
    _bridge_iris_gaps(band, cy, r)
    if not band[cy]:  # iris seen but no band (e.g. very dark skin model): MediaPipe's lids
        return upper_mp, lower_mp
    # The band that holds the iris centre: a dark brow or lid crease above the margin is a band
    # of its own unless it touches the opening.
    top, bottom = cy, cy
    while top > lo_y and band[top - 1]:
        top -= 1
    while bottom < hi_y and band[bottom + 1]:
        bottom += 1
    rows = np.array([top, bottom])
    # Upper margin: from the sclera's top edge beside the iris; where too little sclera shows,
    # the top of the non-skin band minus the lash line above the margin (its thickness read
    # beside the iris, where the margin is the top of the bright sclera).
    # Lower margin: outer extent of the band (the iris's lighter lower half must not end it early).
    upper = _upper_from_sclera(gray, sclera, center, r, lo_y)
    if upper is None:
        upper = rows[0] - 0.5 + _lash_thickness(nonskin, sclera, center, r, lo_y)
    return upper, rows[-1] + 0.5


def _eyeball_center_px(points_px: np.ndarray, eye: int) -> np.ndarray | None:
    """This eye's eyeball centre (image px), placed as ``fitting`` places it but from this frame's
    landmarks alone: the head pose fitted to the rigid points, ``fitting.eyeball_centers_cm`` on
    the landmarks brought into head coordinates. Only how far the iris has turned is read from it
    (``_refit_turned``); the measured gaze comes from ``fitting``'s per-video eyeball. None when
    the rigid points do not span a face."""
    idx, canonical, weights = rigid_points()
    pts = points_px[:468].astype(np.float64)
    s, rot, t = fit_similarity(canonical, pts[idx], weights)
    if not s > 1e-6:
        return None
    ball = eyeball_centers_cm(((pts - t) @ rot) / s, EYEBALL_RADIUS_MM / 10.0)[eye]
    return (s * rot @ ball + t)[:2]


def _refit_turned(gray: np.ndarray, use: np.ndarray, center: np.ndarray, levels: np.ndarray, ball_x: float,
                  r: float) -> np.ndarray:
    """The limbus centre of a turned iris: ``center`` from the circle fit, refitted as an ellipse.

    A turned iris's limbus is seen obliquely: an ellipse cos(turn) times as wide as tall. A
    circle slides toward the canthus by up to the width it has too much, r (1 - cos), because
    the caruncle and the skin past the canthus cost it nothing (on the rendered template: 1-2 px
    at a 30-40 deg turn, docs/benchmarks.md). The turn: the centre's offset across from the eyeball
    centre (``ball_x``, crop column) on a ``LIMBUS_ORBIT_RADII`` orbit. The refit is kept only when
    it moves the centre back toward the eyeball centre by at most r (1 - cos) (plus
    ``TURNED_SLACK_PX``): one that runs outward, or further, took a caruncle's edge for the limbus.
    """
    sin = min(abs(center[0] - ball_x) / (LIMBUS_ORBIT_RADII * r), 0.95)
    deficit = r * (1.0 - np.sqrt(1.0 - sin * sin))
    if deficit < TURNED_SLACK_PX:
        return center
    oval = _fit_limbus(gray, use, center, r, float(np.sqrt(1.0 - sin * sin)), levels)
    if oval is None:
        return center
    inward = np.sign(center[0] - ball_x) * (center[0] - oval[0][0])
    return np.array([oval[0][0], center[1]]) if 0.0 <= inward <= deficit + TURNED_SLACK_PX else center


def _near_center(center: np.ndarray, radius: float) -> np.ndarray:
    """Crop mask: within ``radius`` of ``center`` (np.hypot <= radius)."""
    out = np.zeros((CROP_H, CROP_W), bool)
    ys, xs, dist = _distances(center[0], center[1], radius)
    out[ys, xs] = dist <= radius
    return out


def measure_eye(rgb: np.ndarray, points_px: np.ndarray, eye: int) -> EyeSample:
    """Measure one eye of one frame.

    Args:
        rgb: (H, W, 3) uint8 frame.
        points_px: (478, 3) MediaPipe landmarks in pixels (NaN if no face).
        eye: 0 = patient's right eye, 1 = left eye.

    Returns:
        EyeSample with refined and MediaPipe-only positions, image pixels.
    """
    nan2 = np.full(2, np.nan)
    if not np.isfinite(points_px[:, :2]).all():
        return EyeSample(nan2, np.nan, nan2, nan2, nan2, nan2, nan2, False)
    m = _crop_transform(points_px, eye)
    minv = cv2.invertAffineTransform(m)
    crop = cv2.warpAffine(rgb, m, (CROP_W, CROP_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # grey = (R + G + B) / 3 in float32; cv2 sums the channels (exactly) ~5x faster than numpy
    gray = cv2.add(cv2.add(crop[..., 0], crop[..., 1], dtype=cv2.CV_32F), crop[..., 2], dtype=cv2.CV_32F)
    gray /= 3

    iris = points_px[list(IRIS[eye]), :2].astype(np.float64)
    mp_center = iris[0]
    up = _apply(m, points_px[list(UPPER_LID[eye] + EYE_CORNERS[eye]), :2].astype(np.float64))
    lo = _apply(m, points_px[list(LOWER_LID[eye] + EYE_CORNERS[eye]), :2].astype(np.float64))
    c_mp = _apply(m, mp_center[None])[0]
    r_img = float(np.linalg.norm(iris[1:] - mp_center, axis=1).sum() / 4)
    scale = float(np.hypot(*m[0, :2]))
    r = min(max(r_img * scale, 6.0), 18.0)

    mp_up_img = _apply(minv, np.array([[c_mp[0], _lid_at(up[:, 0], up[:, 1], c_mp[0])]]))[0]
    mp_lo_img = _apply(minv, np.array([[c_mp[0], _lid_at(lo[:, 0], lo[:, 1], c_mp[0])]]))[0]

    # Visible opening: MediaPipe's contour polygon, grown a little (its lids are coupled).
    poly = np.vstack([up[np.argsort(up[:, 0])], lo[np.argsort(-lo[:, 0])]])
    mask = np.zeros((CROP_H, CROP_W), np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(np.float32)

    # Skin model and non-skin probability.
    upper_mp = _lid_at(up[:, 0], up[:, 1], c_mp[0])
    lower_mp = _lid_at(lo[:, 0], lo[:, 1], c_mp[0])
    mean, icov = _skin_model(crop, upper_mp, lower_mp)
    # d2 = ((diff @ icov) * diff).sum(axis=1), with the channel sum written out in numpy's order
    # (((a + b) + c): the same bits) and cv2 subtracting the mean: ~5x faster
    diff = cv2.subtract(crop.astype(np.float64), (*mean, 0.0)).reshape(-1, 3)
    q = diff @ icov
    q *= diff
    d2 = ((q[:, 0] + q[:, 1]) + q[:, 2]).reshape(CROP_H, CROP_W)
    skin_gray = float(mean.sum() / 3)
    nonskin = ((d2 > 9.0) | (gray < skin_gray - 35.0)).astype(np.float32)

    # Iris: dark disc. Darkness threshold from the opening's own intensities (Otsu).
    inside = gray[mask > 0]
    valid = inside.size >= 20 and float(inside.max() - inside.min()) > 25.0
    center, thr = c_mp.copy(), 0.0
    if valid:
        thr = float(cv2.threshold(inside.astype(np.uint8)[:, None], 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0])
        dark = np.clip((thr + 10.0 - gray) / 20.0, 0.0, 1.0) * mask
        bright = np.clip((gray - thr + 10.0) / 20.0, 0.0, 1.0) * mask * nonskin
        # (conditions on rows and on columns, broadcast: the grid's values without the grid)
        near_mp = (np.abs(_ROWS - c_mp[1]) < r * 0.8)[:, None] & ((_COLS > CROP_X0 - r * 0.5) & (_COLS < CROP_X1 + r * 0.5))
        found = _locate_iris(dark, bright, r, near_mp)
        valid = found is not None
    if valid:
        center = found
        sclera = _sclera_mask(gray, nonskin, thr)
        upper_y, lower_y = _lids_at(gray, nonskin, sclera, center, r, upper_mp, lower_mp)
        # Second look: lashes and lid shadow above the margin are dark too and pull the disc up.
        # Only the measured opening (between the lids, around the iris) counts now.
        opening = ((_ROWS >= upper_y) & (_ROWS <= lower_y))[:, None] | (np.abs(_COLS - center[0]) > 1.6 * r)
        dark_open, bright_open = dark * opening, bright * opening
        near_center = _near_center(center, 0.4 * r)
        refined = _locate_iris(dark_open, bright_open, r, near_center, DISC_ASPECT)
        if refined is not None:
            center = refined
            upper_y, lower_y = _lids_at(gray, nonskin, sclera, center, r, upper_mp, lower_mp)
        visible = mask * nonskin
        sclera_level = float(np.percentile(gray[visible > 0], 90)) if visible.any() else np.nan
        limbus = _limbus_radius(gray, visible, center, r, sclera_level)
        if limbus is not None and not LIMBUS_RANGE[0] * r <= limbus <= LIMBUS_RANGE[1] * r:
            limbus = None  # an edge past the iris (a caruncle or lid shadow touching it): not the limbus
        if limbus is not None and abs(limbus - r) > 0.05 * r:
            # MediaPipe's radius was off: a disc of the wrong size sits off-centre vertically,
            # which shortens the measured chord; look once more with the limbus radius.
            near_center = _near_center(center, 0.4 * r)
            again = _locate_iris(dark_open, bright_open, limbus, near_center, DISC_ASPECT)
            if again is not None:
                center = again
                limbus = _limbus_radius(gray, visible, center, limbus, sclera_level) or limbus
        if limbus is not None:
            r = limbus
        # The limbus's edge, fitted, places the centre across; its height stays the disc's
        # (docs/benchmarks.md, "Fidelity": the fitted height moved with simulated lid and iris
        # edits and doubled on the masks). Then the lids are measured at its column.
        use = _between_lids(up, lo, upper_y, lower_y, center[0]) & (mask > 0)
        circle = _fit_limbus(gray, use, center, r)
        if circle is not None:
            center = np.array([circle[0][0], center[1]])
            ball = _eyeball_center_px(points_px, eye)
            if ball is not None:
                center = _refit_turned(gray, use, center, circle[1], float(_apply(m, ball[None])[0, 0]), r)
        upper_y, lower_y = _lids_at(gray, nonskin, sclera, center, r, upper_mp, lower_mp)
    else:  # no iris: closed, lids meet at MediaPipe's middle
        upper_y = lower_y = 0.5 * (upper_mp + lower_mp)
    lids = _apply(minv, np.array([[center[0], upper_y], [center[0], lower_y]]))
    center_img = _apply(minv, center[None])[0]
    return EyeSample(
        iris_center_px=center_img,
        iris_radius_px=r / scale,
        upper_lid_px=lids[0],
        lower_lid_px=lids[1],
        mp_iris_center_px=mp_center,
        mp_upper_lid_px=mp_up_img,
        mp_lower_lid_px=mp_lo_img,
        valid=bool(valid),
    )


class EyeTrackBuilder:
    """Accumulates per-frame eye measurements into an ``EyeTrack`` (streaming: no frames kept; one
    compact row a frame, in a temporary file, so memory does not grow with the video's length)."""

    # Per eye, in this order, the float32 columns of a row: 2 + 1 + 2 * 5 + 1 (valid) = 14.
    _FIELDS = (("iris_center_px", 2), ("iris_radius_px", 1), ("upper_lid_px", 2), ("lower_lid_px", 2),
               ("mp_iris_center_px", 2), ("mp_upper_lid_px", 2), ("mp_lower_lid_px", 2), ("valid", 1))

    def __init__(self) -> None:
        self._rows = _spool.FrameSpool((2, sum(k for _, k in self._FIELDS)), np.float32)

    def add(self, rgb: np.ndarray, points_px: np.ndarray) -> None:
        samples = (measure_eye(rgb, points_px, 0), measure_eye(rgb, points_px, 1))
        self._rows.append([np.hstack([getattr(s, name) for name, _ in self._FIELDS]) for s in samples])

    def build(self) -> EyeTrack:
        """The whole track (once: the rows' spool is closed)."""
        rows = self._rows.array()
        columns, at = {}, 0
        for name, k in self._FIELDS:
            col = rows[:, :, at : at + k]
            columns[name] = col[:, :, 0] != 0 if name == "valid" else np.array(col if k > 1 else col[:, :, 0])
            at += k
        return EyeTrack(**columns)
