"""Pixel edits of one eye in one frame, for the condition simulator (``simulate``).

Everything works in an *eye frame*: ``s`` along the line through the two eye corners (image-left
corner to image-right corner), ``t`` perpendicular to it, pointing down in the image; origin at
the corners' midpoint; both in image pixels. The lid margins are smooth curves ``t_upper(s)``,
``t_lower(s)`` through MediaPipe's 16 eye-contour points (shape-preserving PCHIP), pulled inward
where the image-based lid measurement finds the opening smaller (``simulate`` passes the measured
lower lid only to lid edits, where it caps a lowered lid: it can read high, and an iris moved in
an opening whose lower edge runs through the iris leaves the old iris's lower part on screen;
docs/simulate.md, "Accuracy"). The edits:

* ``move_iris``: the iris disc is cut out of the original frame (its parts hidden by the lids are
  completed from the mirror image across its horizontal axis, else from its mean colour at that
  radius), its old place is filled with the eye's own sclera (a smooth colour model fitted to the
  visible sclera of this eye in this frame) and it is pasted at the shifted centre, with the
  outline of its new turn (``simulate.gaze_outline``); everything is clipped by the lid opening,
  so the lids stay on top.
* ``shift_upper_lid``: the upper lid skin is warped along ``t`` by a smooth displacement field:
  the margin and the lash zone above it move rigidly, the skin above stretches or compresses
  (smoothstep), nothing moves at the corners (plateau in the middle third, cosine fall-off).
  Lowering covers the eyeball below; raising uncovers it, and the uncovered band is synthesised
  as sclera plus the completed iris.

Only ``simulate`` uses this module. Inputs are RGB uint8 frames; edits return a new frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .eyes import EYE_CORNERS, LOWER_LID, UPPER_LID

PLATEAU_U = 0.3  # lid displacement is full for |u| < this (u: -1..1 between the corners)
MIN_SCLERA_SAMPLES = 12

if TYPE_CHECKING:  # imported where used: scipy.interpolate adds ~0.4 s to every CLI start
    from scipy.interpolate import PchipInterpolator
CORNER_MARGIN_RADII = 0.6  # an iris centre closer than this to a canthus is not moved
LASH_ZONE_RADII = 1.0  # the upper lid moves rigidly from its margin up to this height (lashes included)


@dataclass(frozen=True)
class EyeGeometry:
    """One eye's frame and lid curves in one video frame (see the module docstring).

    origin_px: (2,) corners' midpoint; ex, ey: (2,) unit axes (ey = ex turned +90 deg, image down).
    s0, s1: s of the image-left and image-right corners.
    upper_s, upper_t, lower_s, lower_t: knots of the lid curves (corners included).
    upper_shift_t: extra (positive = down) upper-lid shift at the refinement point, spread by a bump.
    """

    origin_px: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    s0: float
    s1: float
    upper_s: np.ndarray
    upper_t: np.ndarray
    lower_s: np.ndarray
    lower_t: np.ndarray
    upper_shift_t: float = 0.0
    lower_shift_t: float = 0.0
    refine_s: float = 0.0

    @property
    def half_width(self) -> float:
        return 0.5 * (self.s1 - self.s0)

    def to_eye(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - self.origin_px[0], y - self.origin_px[1]
        return dx * self.ex[0] + dy * self.ex[1], dx * self.ey[0] + dy * self.ey[1]

    def to_image(self, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (self.origin_px[0] + s * self.ex[0] + t * self.ey[0],
                self.origin_px[1] + s * self.ex[1] + t * self.ey[1])

    def u(self, s: np.ndarray) -> np.ndarray:
        """Normalised position between the corners: -1 (image-left corner) .. 1."""
        return (s - 0.5 * (self.s0 + self.s1)) / max(self.half_width, 1e-6)

    def _bump(self, s: np.ndarray) -> np.ndarray:
        """1 at the refinement column, falling to 0 at the corners (cosine)."""
        u, ur = self.u(s), self.u(np.asarray(self.refine_s))
        d = np.where(u < ur, (u - ur) / max(1.0 + ur, 1e-6), (u - ur) / max(1.0 - ur, 1e-6))
        return np.where(np.abs(d) < 1.0, 0.5 * (1.0 + np.cos(np.pi * np.clip(d, -1, 1))), 0.0)

    @cached_property
    def _upper(self) -> PchipInterpolator:
        from scipy.interpolate import PchipInterpolator

        return PchipInterpolator(self.upper_s, self.upper_t)

    @cached_property
    def _lower(self) -> PchipInterpolator:
        from scipy.interpolate import PchipInterpolator

        return PchipInterpolator(self.lower_s, self.lower_t)

    def t_upper(self, s: np.ndarray) -> np.ndarray:
        """Upper lid margin t at s (corner height outside the corners)."""
        t = self._upper(np.clip(s, self.s0, self.s1))
        return t + self.upper_shift_t * self._bump(s) if self.upper_shift_t else t

    def t_lower(self, s: np.ndarray) -> np.ndarray:
        """Lower lid margin t at s."""
        t = self._lower(np.clip(s, self.s0, self.s1))
        return t - self.lower_shift_t * self._bump(s) if self.lower_shift_t else t

    def opening_alpha(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Coverage (0..1, 1 px anti-aliased) of the visible eye opening between the lids."""
        inside = np.minimum(t - self.t_upper(s), self.t_lower(s) - t)
        inside = np.minimum(inside, np.minimum(s - self.s0, self.s1 - s))
        return np.clip(inside + 0.5, 0.0, 1.0)


def _knots(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, strictly increasing knots (duplicates in s merged)."""
    order = np.argsort(s)
    s, t = s[order], t[order]
    keep = np.r_[True, np.diff(s) > 1e-3]
    return s[keep], t[keep]


def eye_geometry(points_px: np.ndarray, eye: int, *, upper_lid_px: np.ndarray | None = None,
                 lower_lid_px: np.ndarray | None = None) -> EyeGeometry | None:
    """The eye frame and lid curves of one eye from MediaPipe's contour, refined by measured lids.

    Args:
        points_px: (478, 2|3) landmarks in pixels.
        eye: 0 = patient's right, 1 = left.
        upper_lid_px, lower_lid_px: (2,) image-measured lid margin points (``eyes.measure_eye``);
            where one lies inside MediaPipe's opening, that lid is pulled in to pass through it
            (never outward: the measured upper lid includes the lashes).

    Returns:
        The geometry, or None when the contour is degenerate (non-finite, corners < 4 px apart).
    """
    p = np.asarray(points_px, np.float64)[:, :2]
    a, b = p[EYE_CORNERS[eye][0]], p[EYE_CORNERS[eye][1]]
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    if a[0] > b[0]:
        a, b = b, a
    length = float(np.hypot(*(b - a)))
    if length < 4.0:
        return None
    ex = (b - a) / length
    ey = np.array([-ex[1], ex[0]])
    origin = 0.5 * (a + b)
    geom0 = EyeGeometry(origin, ex, ey, -0.5 * length, 0.5 * length, np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2))
    corners = list(EYE_CORNERS[eye])
    up = p[list(UPPER_LID[eye]) + corners]
    lo = p[list(LOWER_LID[eye]) + corners]
    if not (np.isfinite(up).all() and np.isfinite(lo).all()):
        return None
    us, ut = _knots(*geom0.to_eye(up[:, 0], up[:, 1]))
    ls, lt = _knots(*geom0.to_eye(lo[:, 0], lo[:, 1]))
    if us.size < 3 or ls.size < 3:
        return None
    geom = EyeGeometry(origin, ex, ey, -0.5 * length, 0.5 * length, us, ut, ls, lt)
    shift_up = shift_lo = 0.0
    refine_s = 0.0
    if upper_lid_px is not None and np.isfinite(upper_lid_px).all():
        s_m, t_m = geom.to_eye(np.float64(upper_lid_px[0]), np.float64(upper_lid_px[1]))
        refine_s = float(np.clip(s_m, geom.s0 + 1, geom.s1 - 1))
        shift_up = max(0.0, float(t_m - geom.t_upper(np.asarray(s_m))))
    if lower_lid_px is not None and np.isfinite(lower_lid_px).all():
        s_m, t_m = geom.to_eye(np.float64(lower_lid_px[0]), np.float64(lower_lid_px[1]))
        shift_lo = max(0.0, float(geom.t_lower(np.asarray(s_m)) - t_m))
    if shift_up or shift_lo:
        geom = EyeGeometry(origin, ex, ey, geom.s0, geom.s1, us, ut, ls, lt, shift_up, shift_lo, refine_s)
    return geom


# --------------------------------------------------------------------------------------------
# Region of interest and sampling helpers
# --------------------------------------------------------------------------------------------
@dataclass
class _Roi:
    x0: int
    y0: int
    x1: int
    y1: int
    x: np.ndarray  # (h, w) image x of each ROI pixel
    y: np.ndarray
    s: np.ndarray
    t: np.ndarray


def _roi(geom: EyeGeometry, shape: tuple[int, ...], *, above: float, pad: float) -> _Roi | None:
    s_lo, s_hi = geom.s0 - pad, geom.s1 + pad
    t_top = float(np.min(geom.upper_t)) - above - pad
    t_bot = float(np.max(geom.lower_t)) + pad
    cs = np.array([s_lo, s_hi, s_lo, s_hi])
    ct = np.array([t_top, t_top, t_bot, t_bot])
    xs, ys = geom.to_image(cs, ct)
    h, w = shape[:2]
    x0, x1 = max(0, int(np.floor(xs.min()))), min(w, int(np.ceil(xs.max())) + 1)
    y0, y1 = max(0, int(np.floor(ys.min()))), min(h, int(np.ceil(ys.max())) + 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    s, t = geom.to_eye(xx, yy)
    return _Roi(x0, y0, x1, y1, xx, yy, s, t)


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of a float32 (H, W, 3) image at image coordinates (edges replicated)."""
    return cv2.remap(img, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


# --------------------------------------------------------------------------------------------
# Iris radius, sclera colour model, iris completion
# --------------------------------------------------------------------------------------------
def refine_iris(rgb: np.ndarray, geom: EyeGeometry, center: np.ndarray, radius_px: float) -> tuple[np.ndarray, float]:
    """Iris (limbus) circle from the image: edge points where the luma steps up most steeply
    going outward (iris -> sclera) along rays from ``center`` (+-40 deg around the eye axis on
    both sides, and downward), searched at 0.6-1.5 x ``radius_px`` and at least 1 px inside the
    lid opening; then a least-squares circle through them (outliers beyond 1.5 px dropped).

    Returns:
        (centre (2,), radius px); the inputs when fewer than 6 edges (2 a side) are found or the
        circle is implausible (radius off by > 35 %, centre moved by > 0.6 radius).
    """
    img = rgb.astype(np.float32)
    step = 0.25
    radii = np.arange(0.6 * radius_px, 1.5 * radius_px, step)
    dirs = []
    for side in (-1.0, 1.0):
        for ang in np.radians(np.linspace(-40, 40, 9)):
            dirs.append((side, side * (np.cos(ang) * geom.ex + np.sin(ang) * geom.ey)))
    for ang in np.radians(np.linspace(60, 120, 5)):
        dirs.append((0.0, np.cos(ang) * geom.ex + np.sin(ang) * geom.ey))
    d = np.array([v for _, v in dirs])
    x = center[0] + radii[None, :] * d[:, :1]
    y = center[1] + radii[None, :] * d[:, 1:]
    s, t = geom.to_eye(x, y)
    vis = _inside(geom, s, t) >= 1.0
    prof = _luma(_sample(img, x, y))
    grad = np.gradient(prof, step, axis=1)
    grad = np.where(vis, grad, -np.inf)
    k = np.argmax(grad, axis=1)
    rows = np.arange(len(dirs))
    good = (grad[rows, k] > 4.0) & vis[rows, k] & (k > 0) & (k < len(radii) - 1)
    sides = np.array([sd for sd, _ in dirs])
    if good.sum() < 6 or (good & (sides < 0)).sum() < 2 or (good & (sides > 0)).sum() < 2:
        return np.asarray(center, np.float64), float(radius_px)
    px, py = x[rows, k][good], y[rows, k][good]
    keep = np.ones(px.size, bool)
    cx, cy, r = float(center[0]), float(center[1]), float(radius_px)
    for _ in range(2):
        if keep.sum() < 5:
            break
        a = np.stack([2 * px[keep], 2 * py[keep], np.ones(keep.sum())], 1)
        sol, *_ = np.linalg.lstsq(a, px[keep] ** 2 + py[keep] ** 2, rcond=None)
        cx, cy = sol[0], sol[1]
        r = float(np.sqrt(max(sol[2] + cx * cx + cy * cy, 1e-6)))
        keep = np.abs(np.hypot(px - cx, py - cy) - r) < 1.5
    c = np.array([cx, cy])
    if abs(r - radius_px) > 0.35 * radius_px or np.hypot(*(c - center)) > 0.6 * radius_px:
        return np.asarray(center, np.float64), float(radius_px)
    return c, r


def sclera_model(roi_rgb: np.ndarray, roi: _Roi, geom: EyeGeometry, center: np.ndarray,
                 radius_px: float) -> tuple[np.ndarray, float] | None:
    """Fit the eye's visible sclera colour as a smooth function of (s, t): per channel
    ``a + b s + c s^2 + d t + e t^2`` (the shading under the lids included) on opening pixels
    (eroded 1.5 px) outside the iris; very dark pixels (lashes) excluded, then outliers beyond
    2.5 sd dropped twice. Returns (coefficients (5, 3), residual luma sd, (s_min, s_max) and
    (t_min, t_max) of the pixels it was fitted on), or None when fewer than 12 sclera pixels are
    visible."""
    inside = _inside(geom, roi.s, roi.t)
    inside = np.minimum(inside, np.minimum(roi.s - geom.s0, geom.s1 - roi.s) - 0.08 * geom.half_width)
    r = np.hypot(roi.x - center[0], roi.y - center[1])
    sel = (inside >= 1.5) & (r > radius_px + 2.0)
    if sel.sum() < MIN_SCLERA_SAMPLES:
        return None
    col = roi_rgb[sel].astype(np.float64)
    design = _design(geom, roi.s[sel], roi.t[sel])
    luma = _luma(col.astype(np.float32)).astype(np.float64)
    keep = luma >= 0.6 * np.percentile(luma, 90)  # lashes and the iris's dark rim are not sclera
    coef = np.zeros((design.shape[1], 3))
    sd = 0.0
    for _ in range(3):
        if keep.sum() < MIN_SCLERA_SAMPLES:
            return None
        coef, *_ = np.linalg.lstsq(design[keep], col[keep], rcond=None)
        res = _luma((col - design @ coef).astype(np.float32)).astype(np.float64)
        sd = float(np.std(res[keep])) + 1e-6
        keep &= np.abs(res) < 2.5 * sd
    fitted_s, fitted_t = roi.s[sel][keep], roi.t[sel][keep]
    if not fitted_s.size:
        return None
    return coef, sd, (float(fitted_s.min()), float(fitted_s.max())), (float(fitted_t.min()), float(fitted_t.max()))


def _inside(geom: EyeGeometry, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Signed distance-like depth (px) inside the opening (negative outside)."""
    inside = np.minimum(t - geom.t_upper(s), geom.t_lower(s) - t)
    return np.minimum(inside, np.minimum(s - geom.s0, geom.s1 - s))


def _design(geom: EyeGeometry, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    hw = max(geom.half_width, 1.0)
    sn, tn = s / hw, t / hw
    return np.stack([np.ones_like(sn), sn, sn**2, tn, tn**2], -1)


def _visible_sclera(roi_img: np.ndarray, roi: _Roi, geom: EyeGeometry, center: np.ndarray,
                    radius_px: float) -> tuple[np.ndarray, float] | None:
    """The sclera colour model fitted in the ROI, evaluated over the whole ROI but clamped to the
    (s, t) ranges of the sclera pixels it was fitted on (no extrapolation: where the visible
    sclera lies on one side of the iris only, a quadratic carried across the iris's place runs
    to black), and its residual noise; None without enough sclera."""
    model = sclera_model(roi_img, roi, geom, center, radius_px)
    if model is None:
        return None
    coef, sd, s_rng, t_rng = model
    return (_design(geom, np.clip(roi.s, *s_rng), np.clip(roi.t, *t_rng)) @ coef).astype(np.float32), sd


def _sclera_fill(roi_img: np.ndarray, roi: _Roi, geom: EyeGeometry, center: np.ndarray, radius_px: float,
                 model_rgb: np.ndarray, model_sd: float) -> np.ndarray:
    """Sclera for the inside of a disc (``radius_px`` around ``center``): the disc is inpainted
    (OpenCV Navier-Stokes) from its surroundings, where everything that is not visible sclera
    (lids, lashes, canthi, iris remnants: outside the opening or darker than the sclera model by
    more than 2.5 sd) has first been replaced by the sclera model ``model_rgb``, so only the eye's
    own sclera flows in."""
    inside = _inside(geom, roi.s, roi.t)
    dark = _luma(model_rgb) - _luma(roi_img) - 2.5 * model_sd
    w = (np.clip(inside - 0.5, 0.0, 1.0) * np.clip(1.0 - dark / 8.0, 0.0, 1.0))[..., None]
    base = roi_img * w + model_rgb * (1 - w)
    disc = (np.hypot(roi.x - center[0], roi.y - center[1]) <= radius_px + 0.5).astype(np.uint8)
    src = np.clip(np.round(base), 0, 255).astype(np.uint8)
    filled = cv2.inpaint(src, disc, 3.0, cv2.INPAINT_NS).astype(np.float32)
    return cv2.GaussianBlur(filled, (0, 0), 0.7)


def _completed_iris(img: np.ndarray, roi: _Roi, geom: EyeGeometry, alpha_open: np.ndarray, center: np.ndarray,
                    radius_px: float) -> np.ndarray:
    """The ROI with the iris disc completed where the lids hide it: mirror across the iris's
    horizontal axis (eye frame) where that is visible, else the mean visible iris colour at the
    same radius. Pixels outside the disc are the original ones."""
    roi_img = img[roi.y0:roi.y1, roi.x0:roi.x1]
    dx, dy = roi.x - center[0], roi.y - center[1]
    r = np.hypot(dx, dy)
    disc = r <= radius_px + 1.5
    hidden = disc & (alpha_open < 0.999)
    if not hidden.any():
        return roi_img.copy()
    # mirror p -> p - 2 ((p - c) . ey) ey
    k = dx * geom.ey[0] + dy * geom.ey[1]
    mx, my = roi.x - 2 * k * geom.ey[0], roi.y - 2 * k * geom.ey[1]
    ms, mt = geom.to_eye(mx, my)
    mirror_vis = geom.opening_alpha(ms, mt)
    mirror = _sample(img, mx, my)
    # radial mean of the visible iris
    vis = disc & (alpha_open >= 0.999)
    fill = np.empty_like(roi_img)
    if vis.any():
        bins = np.minimum((r / max(radius_px + 1.5, 1e-6) * 8).astype(int), 7)
        mean_all = roi_img[vis].mean(0)
        table = np.tile(mean_all, (8, 1))
        for bi in range(8):
            m = vis & (bins == bi)
            if m.sum() >= 3:
                table[bi] = roi_img[m].mean(0)
        fill[:] = table[bins]
    else:  # nothing of the iris visible: a dark generic iris
        fill[:] = np.float32(60.0)
    fill = mirror_vis[..., None] * mirror + (1 - mirror_vis[..., None]) * fill
    out = roi_img.copy()
    a = alpha_open[..., None]
    out[hidden] = (a * roi_img + (1 - a) * fill)[hidden]
    return out


# --------------------------------------------------------------------------------------------
# The two edits
# --------------------------------------------------------------------------------------------
def move_iris(rgb: np.ndarray, geom: EyeGeometry, center: np.ndarray, radius_px: float,
              shift_px: np.ndarray, outline: np.ndarray | None = None) -> np.ndarray | None:
    """Move one iris by ``shift_px`` (image px) within the eye opening; lids stay on top.

    Args:
        rgb: (H, W, 3) uint8 frame (not modified).
        geom: the eye's geometry (``eye_geometry``).
        center: (2,) iris centre px; radius_px: visible iris radius px (``limbus_radius``).
        shift_px: (2,) image displacement of the iris.
        outline: (2, 2) linear map of the iris about its centre, applied as it moves (a turned
            iris is seen narrower: ``simulate.gaze_outline``); None keeps its shape.

    Returns:
        The edited frame (a copy), or None when the iris is (or would be) too far in a corner
        (its centre closer than 0.6 radii to a canthus along the eye axis) or the eye shows too
        little sclera to fill from.
    """
    shift = np.asarray(shift_px, np.float64)
    margin = CORNER_MARGIN_RADII * radius_px
    for c in (center, center + shift):
        s_c, _ = geom.to_eye(np.float64(c[0]), np.float64(c[1]))
        if not geom.s0 + margin < s_c < geom.s1 - margin:
            return None
    pad = radius_px + float(np.hypot(*shift)) + 3.0
    roi = _roi(geom, rgb.shape, above=0.0, pad=pad)
    if roi is None:
        return None
    img = rgb.astype(np.float32)
    roi_img = img[roi.y0:roi.y1, roi.x0:roi.x1]
    a_open = geom.opening_alpha(roi.s, roi.t)
    visible = _visible_sclera(roi_img, roi, geom, center, radius_px)
    if visible is None:
        return None
    model_rgb, sd = visible
    # 1. remove the iris: sclera where it was (a little wider: the limbus shades into the sclera)
    r_rm = radius_px + 2.0
    sclera = _sclera_fill(roi_img, roi, geom, center, r_rm, model_rgb, sd)
    r_old = np.hypot(roi.x - center[0], roi.y - center[1])
    a_rm = np.clip(r_rm + 0.5 - r_old, 0.0, 1.0)[..., None]
    layer = roi_img * (1 - a_rm) + sclera * a_rm
    # 2. the completed iris, pasted at its new place
    completed = np.array(img)
    completed[roi.y0:roi.y1, roi.x0:roi.x1] = _completed_iris(img, roi, geom, a_open, center, radius_px)
    src_x, src_y = roi.x - center[0] - shift[0], roi.y - center[1] - shift[1]
    if outline is not None:
        inv = np.linalg.inv(np.asarray(outline, np.float64))
        src_x, src_y = inv[0, 0] * src_x + inv[0, 1] * src_y, inv[1, 0] * src_x + inv[1, 1] * src_y
    src_x, src_y = src_x + center[0], src_y + center[1]
    iris = _sample(completed, src_x, src_y)
    a_iris = np.clip(radius_px + 0.5 - np.hypot(src_x - center[0], src_y - center[1]), 0.0, 1.0)[..., None]
    layer = layer * (1 - a_iris) + iris * a_iris
    # 3. clipped by the lid opening
    a = a_open[..., None]
    out = rgb.copy()
    out[roi.y0:roi.y1, roi.x0:roi.x1] = np.clip(np.round(roi_img * (1 - a) + layer * a), 0, 255).astype(np.uint8)
    return out


def lid_profile(u: np.ndarray) -> np.ndarray:
    """Weight of the lid displacement along the eye: 1 for |u| <= 0.3, cosine to 0 at the corners."""
    v = np.clip((np.abs(u) - PLATEAU_U) / (1.0 - PLATEAU_U), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * v))


def shift_upper_lid(rgb: np.ndarray, geom: EyeGeometry, center: np.ndarray, radius_px: float,
                    amount_px: float) -> tuple[np.ndarray, float] | None:
    """Lower (``amount_px`` > 0) or raise (< 0) the upper lid margin along the eye's vertical.

    The margin and a lash zone of one iris radius above it move rigidly by ``amount_px * w(u)``
    (``lid_profile``); the skin from there up to 2 iris radii higher follows with a smoothstep, so
    the displacement fades to zero; the corners do not move. A lowered lid may not come closer
    than 1 px to the lower lid. Raising uncovers eyeball, synthesised as the eye's own sclera
    colour plus the iris completed from its visible part.

    Returns:
        (edited frame copy, margin displacement px at the iris column), or None when the
        eye cannot be edited (no sclera to model for a raise, degenerate region).
    """
    a = float(amount_px)
    lash = LASH_ZONE_RADII * radius_px
    ramp = max(2.0 * radius_px, 3.0 * abs(a))
    roi = _roi(geom, rgb.shape, above=lash + ramp + abs(a), pad=2.0)
    if roi is None:
        return None
    img = rgb.astype(np.float32)
    roi_img = img[roi.y0:roi.y1, roi.x0:roi.x1]
    t_m = geom.t_upper(roi.s)
    t_lo = geom.t_lower(roi.s)
    amp = a * lid_profile(geom.u(roi.s))
    inside = (roi.s > geom.s0) & (roi.s < geom.s1)
    amp = np.where(inside, amp, 0.0)
    if a > 0:  # never past the lower lid
        amp = np.minimum(amp, np.maximum(t_lo - t_m - 1.0, 0.0))
    s_c, _ = geom.to_eye(np.float64(center[0]), np.float64(center[1]))
    tm_c, tl_c = float(geom.t_upper(np.asarray(s_c))), float(geom.t_lower(np.asarray(s_c)))
    amp_c = a * float(lid_profile(geom.u(np.asarray(s_c))))
    if a > 0:
        amp_c = min(amp_c, max(tl_c - tm_c - 1.0, 0.0))

    def disp(t_src: np.ndarray) -> np.ndarray:
        z = np.clip((t_src - (t_m - lash - ramp)) / ramp, 0.0, 1.0)
        return amp * z * z * (3 - 2 * z)

    # lid pixels: solve t_out = t_src + disp(t_src) by fixed-point iteration (|disp'| <= 0.5)
    t_src = roi.t - amp
    for _ in range(25):
        t_src = roi.t - disp(t_src)
    lid_x, lid_y = geom.to_image(roi.s, t_src)
    lid = _sample(img, lid_x, lid_y)
    new_margin = t_m + amp
    a_lid = np.clip(new_margin - roi.t + 0.5, 0.0, 1.0)[..., None]
    eyeball = roi_img
    if a < 0:  # raised: synthesise the uncovered band (sclera + completed iris)
        a_open = geom.opening_alpha(roi.s, roi.t)
        # the sclera under the lid: evaluated no higher than the visible sclera (no extrapolation)
        visible = _visible_sclera(roi_img, roi, geom, center, radius_px)
        if visible is None:
            return None
        sclera, sd = visible
        # darker just under the new margin (lid and lash shadow), as in real eyes
        shade = 1.0 - 0.18 * np.exp(-np.maximum(roi.t - new_margin, 0.0) / max(0.25 * radius_px, 1.0))
        sclera = sclera * shade[..., None].astype(np.float32)
        full = _completed_iris(img, roi, geom, a_open, center, radius_px)
        r = np.hypot(roi.x - center[0], roi.y - center[1])
        a_iris = np.clip(radius_px + 0.5 - r, 0.0, 1.0)[..., None]
        synth = sclera * (1 - a_iris) + full * a_iris
        # uncovered band: from the new margin down to the old one, feathered over 3 px; below the
        # old margin, down to 0.4 iris radii, also its lash line (pixels darker than sclera), and
        # only where the lid really moved (no sclera seam beyond the corners)
        moved = np.clip(-amp / 0.5, 0.0, 1.0)
        a_band = np.clip((t_m + 1.5 - roi.t) / 3.0, 0.0, 1.0)
        dark = np.clip((_luma(sclera) - _luma(roi_img) - 2.5 * sd) / 8.0, 0.0, 1.0) * (1 - a_iris[..., 0])
        below = np.clip((t_m + 0.4 * radius_px - roi.t) / 2.0, 0.0, 1.0) * (roi.t > t_m - 1.5)
        a_syn = (np.maximum(a_band, below * dark) * moved)[..., None]
        eyeball = roi_img * (1 - a_syn) + synth * a_syn
    layer = eyeball * (1 - a_lid) + lid * a_lid
    out = rgb.copy()
    out[roi.y0:roi.y1, roi.x0:roi.x1] = np.clip(np.round(layer), 0, 255).astype(np.uint8)
    return out, amp_c
