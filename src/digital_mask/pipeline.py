"""The one place the stages are chained: read -> track + eyes -> fit -> render -> write.

Two passes, both streaming (no frame is kept):

1. decode each frame, track its landmarks and measure its eyes (the only code that sees pixels);
2. reconstruct the whole video (per-video neutral shape and eyeball centres), then render each
   frame from the reconstruction alone and encode it with the input's timestamps.

The renderer never receives an original frame, so nothing of the original image can reach the
output; a frame without a trustworthy fit becomes a "tracking lost" frame.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from . import __version__, _spool
from .errors import InputError, NoFaceError, OutputError
from .eyes import EYE_CORNERS, EyeTrackBuilder
from .fitting import POSE_SIGMA_FRAMES, fit_face, reconstruction_error_pct
from .io import VideoWriter, check_output_path, iter_frames, probe_video, write_png
from .models import ALL_MODELS, model_path
from .rendering import AvatarRenderer
from .rendering import prepare as prepare_renderer
from .tracking import FaceTracker
from .types import EyeTrack, FaceFit, LandmarkTrack, VideoInfo

log = logging.getLogger(__name__)

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
ProgressFn = Callable[[str, int, int], None]  # (stage, done, total) -- total 0 when unknown


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Options of one masking run (each maps to one CLI option)."""

    overwrite: bool = False
    side_by_side: Path | None = None  # operator preview: original | mask (contains the patient!)
    crf: int = 18
    preset: str = "ultrafast"  # x264; encoding CPU vs size measured in docs/benchmarks.md
    pose_sigma_frames: float = POSE_SIGMA_FRAMES
    keep_patient_shape: bool = False  # ABLATION for the privacy benchmark only: leaks face shape
    measure_dir: Path | None = None  # also write the original's eye measurements here (same pass)
    audit: bool = False  # re-identification audit of the output (needs the `audit` extra)

    def __post_init__(self) -> None:
        if self.preset not in X264_PRESETS:
            raise InputError(f"unknown x264 preset {self.preset!r}; choose one of {', '.join(X264_PRESETS)}")
        if not 0 <= self.crf <= 51:
            raise InputError(f"crf {self.crf} out of range; choose 0 (lossless) to 51")
        if self.pose_sigma_frames < 0:
            raise InputError("pose_sigma_frames must be >= 0")


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What ``--report`` writes. Names files only; no frames, landmarks or patient metadata."""

    input_name: str
    output_name: str
    frames: int
    frames_tracked: int
    frames_tracking_lost: int
    wall_s: float
    fps: float
    accuracy_pct: dict[str, float]
    stages_ms_per_frame: dict[str, float]
    eye_refinement: dict[str, float]
    models_sha256: dict[str, str]
    versions: dict[str, str] = field(default_factory=dict)
    audit: dict | None = None

    def to_json_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MaskResult:
    """The output path, the summary, and the stage values (for measurement and tests)."""

    output: Path
    summary: RunSummary
    track: LandmarkTrack
    eyes: EyeTrack
    fit: FaceFit


class StageTimer:
    """Seconds spent in each stage, measured in the thread that runs it (stages overlap, so the
    sum can exceed the wall time)."""

    STAGES = ("decode", "track", "eyes", "reconstruct", "render", "encode")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.STAGES, 0.0)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def iterate(self, stage: str, items: Iterable) -> Iterator:
        it = iter(items)
        while True:
            t0 = time.perf_counter()
            item = next(it, _END)
            self.add(stage, time.perf_counter() - t0)
            if item is _END:
                return
            yield item

    def call(self, stage: str, fn: Callable) -> Callable:
        def timed(*args: object) -> object:
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.add(stage, time.perf_counter() - t0)

        return timed

    def ms_per_frame(self, frames: int) -> dict[str, float]:
        return {k: round(1000.0 * v / max(frames, 1), 2) for k, v in self.seconds.items()}


_END = object()
PIPELINE_DEPTH = 4  # frames in flight between overlapped stages (bounds memory)


def _prefetch(items: Iterable, depth: int = PIPELINE_DEPTH) -> Iterator:
    """Produce ``items`` in a background thread, at most ``depth`` ahead (decoding overlaps tracking).

    Order and exceptions are preserved; decoders, MediaPipe and x264 release the GIL.
    """
    it = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="decode") as pool:
        pending = deque(pool.submit(next, it, _END) for _ in range(depth))
        while True:
            item = pending.popleft().result()
            if item is _END:
                return
            pending.append(pool.submit(next, it, _END))
            yield item


class _InBackground:
    """Calls ``fn`` in a background thread, in submission order, at most ``depth`` calls queued
    (eye measurement overlaps tracking, encoding overlaps rendering)."""

    def __init__(self, fn: Callable[..., None], depth: int = PIPELINE_DEPTH, name: str = "stage") -> None:
        self._fn = fn
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: deque[Future] = deque()
        self._depth = depth

    def submit(self, *args: object) -> None:
        """Queue ``fn(*args)``; waits while ``depth`` calls are queued; re-raises an earlier error."""
        if len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._fn, *args))

    def finish(self) -> None:
        """Wait for every queued call; re-raises the first error."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> _InBackground:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        else:  # already failing: drop what is queued, keep the original error
            self._pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _single_threaded_opencv() -> Iterator[None]:
    """OpenCV's own thread pool off while the stages run in their own threads: on the eye crops
    (96x80 px) its parallel loops cost more than they save (eyes: 6.0 vs 7.4 ms a frame)."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _return_freed_memory() -> None:
    """Hand memory freed by pass 1 and the fit (many small per-frame arrays) back to the system
    before rendering (glibc keeps it otherwise; ~30 MiB less peak on a 60 s clip). No-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


CORE_PACKAGES = ("mediapipe", "av", "moderngl", "numpy", "scipy")


def versions(packages: Iterable[str] = CORE_PACKAGES) -> dict[str, str]:
    """Versions of digital-mask, Python and the given packages, for reports and benchmarks."""
    out = {"digital-mask": __version__, "python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _refinement_change(track: LandmarkTrack, eyes: EyeTrack) -> dict[str, float]:
    """How much the image-based eye measurement moved MediaPipe's values (% of eye width)."""
    p = track.points_px[:, np.ravel(EYE_CORNERS), :2].astype(np.float64)  # (T, 4, 2): a and b per eye
    width = np.linalg.norm(p[:, 0::2] - p[:, 1::2], axis=2)
    ok = eyes.valid & track.found[:, None]
    if not ok.any():
        return {}
    d_iris = np.linalg.norm(eyes.iris_center_px - eyes.mp_iris_center_px, axis=2) / width
    ap = (eyes.lower_lid_px[..., 1] - eyes.upper_lid_px[..., 1]) / width
    ap_mp = (eyes.mp_lower_lid_px[..., 1] - eyes.mp_upper_lid_px[..., 1]) / width
    found = track.found[:, None] & np.ones((1, 2), bool)
    return {
        "iris_shift_mean_pct_eye_width": 100.0 * float(np.mean(d_iris[ok])),
        "iris_shift_p95_pct_eye_width": 100.0 * float(np.percentile(d_iris[ok], 95)),
        "aperture_change_mean_pct_eye_width": 100.0 * float(np.mean(np.abs(ap - ap_mp)[found])),
        "eyes_measured_pct": 100.0 * float(ok.mean()),
    }


def measure(
    path: Path, progress: ProgressFn | None = None, timer: StageTimer | None = None, info: VideoInfo | None = None
) -> tuple[LandmarkTrack, EyeTrack]:
    """Pass 1: decode, track landmarks and measure both eyes in every frame (streaming).

    Raises:
        InputError: unreadable input (from ``probe_video``).
    """
    info = info or probe_video(path)
    timer = timer or StageTimer()
    eyes = EyeTrackBuilder()
    with FaceTracker((info.width, info.height), still=info.is_image) as tracker, _single_threaded_opencv():
        track_frame = timer.call("track", tracker.track)
        with _InBackground(timer.call("eyes", eyes.add), name="eyes") as measure_eyes:
            for frame in _prefetch(timer.iterate("decode", iter_frames(path))):
                measure_eyes.submit(frame.rgb, track_frame(frame))
                if progress:
                    progress("track", frame.index + 1, info.frame_count)
        return tracker.build(), eyes.build()


def reconstruct(
    src: Path, info: VideoInfo, *, config: RunConfig = RunConfig(), progress: ProgressFn | None = None,
    timer: StageTimer | None = None,
) -> tuple[LandmarkTrack, EyeTrack, FaceFit]:
    """Pass 1 plus the 3D fit: what both masking and measuring start from.

    Raises:
        NoFaceError: no usable face in any frame, naming the file.
    """
    timer = timer or StageTimer()
    track, eyes = measure(src, progress, timer, info)
    if not track.found.any():
        raise NoFaceError(f"{src.name}: no face found in any of its {len(track.found)} frames; nothing written")
    t_fit = time.perf_counter()
    try:
        fit = fit_face(track, eyes, pose_sigma_frames=config.pose_sigma_frames,
                       keep_patient_shape=config.keep_patient_shape)
    except NoFaceError as exc:
        raise NoFaceError(f"{src.name}: {exc}; nothing written") from exc
    timer.add("reconstruct", time.perf_counter() - t_fit)
    return track, eyes, fit


def mask_video(
    input_path: Path | str,
    output_path: Path | str,
    config: RunConfig = RunConfig(),
    progress: ProgressFn | None = None,
) -> MaskResult:
    """Mask a video (H.264 MP4 out) or a photo (PNG out).

    Args:
        input_path: the patient video or photo; never modified.
        output_path: where the masked file goes; must not exist unless ``config.overwrite``.
        config: run options.
        progress: optional callback ``(stage, done, total)``.

    Raises:
        InputError: unreadable input, no video stream, too small.
        NoFaceError: no usable face anywhere (no output is written).
        OutputError: output exists (without overwrite) or is the input.
        ModelError: bundled model corrupt, or no OpenGL context.
    """
    t0 = time.perf_counter()
    src, dst = Path(input_path), Path(output_path)
    info = probe_video(src)
    check_output_path(src, dst, overwrite=config.overwrite)
    if config.side_by_side is not None:
        check_output_path(src, config.side_by_side, overwrite=config.overwrite)
        if config.side_by_side.resolve() == dst.resolve():
            raise InputError(f"{dst.name}: the side-by-side preview cannot be the masked output")
    timer = StageTimer()
    with ThreadPoolExecutor(1, thread_name_prefix="prepare") as pool:
        renderer_ready = pool.submit(prepare_renderer)  # overlaps pass 1 (start-up, ~0.3 s)
        track, eyes, fit = reconstruct(src, info, config=config, progress=progress, timer=timer)
        renderer_ready.result()
    # What needs the whole-video landmarks is computed before rendering, so that its temporaries are
    # freed (and handed back) before the renderer's memory peak.
    accuracy = {k: round(v, 3) for k, v in reconstruction_error_pct(fit, eyes, track).items()}
    refinement = {k: round(v, 2) for k, v in _refinement_change(track, eyes).items()}
    measurements = None
    if config.measure_dir is not None:
        from .metrics import measurements_from

        measurements = measurements_from(track, eyes, fit, source_name=src.name)
    _spool.release(track.points_px)  # read again by the statistics above (the fit released its own)
    _return_freed_memory()
    width, height = track.image_size
    n = len(fit)
    with AvatarRenderer(width, height) as renderer:
        render = timer.call("render", renderer.render)
        if info.is_image:
            write_png(dst, render(fit.frame(0)))
        else:
            with VideoWriter(dst, width, height, info.time_base, info.average_rate, crf=config.crf,
                             preset=config.preset) as writer:
                with _InBackground(timer.call("encode", writer.write), name="encode") as encode:
                    for i in range(n):
                        encode.submit(render(fit.frame(i)), int(fit.pts[i]))
                        if i % _spool.RELEASE_EVERY == 0:
                            _spool.release(fit.expression_cm)
                        if progress:
                            progress("render", i + 1, n)
            if config.side_by_side is not None:
                _write_side_by_side(src, config.side_by_side, renderer, fit, info, config)
    audit = None
    if config.audit:
        from .privacy import audit_video

        verdict = audit_video(src, dst, fit=fit)
        audit = verdict.to_json_dict()
        if not verdict.passed:  # fail closed: a recogniser matched the mask to the patient
            dst.unlink(missing_ok=True)
            raise OutputError(f"{dst.name}: re-identification audit failed (a face recogniser matched it to "
                              f"{src.name}); output removed")
    if measurements is not None:
        from .report import write_measurements

        write_measurements(measurements, config.measure_dir)
    wall = time.perf_counter() - t0
    tracked = int(fit.tracked.sum())
    summary = RunSummary(
        input_name=src.name,
        output_name=dst.name,
        frames=n,
        frames_tracked=tracked,
        frames_tracking_lost=n - tracked,
        wall_s=round(wall, 3),
        fps=round(n / wall, 2),
        accuracy_pct=accuracy,
        stages_ms_per_frame=timer.ms_per_frame(n),
        eye_refinement=refinement,
        models_sha256={m.name: m.sha256 for m in ALL_MODELS if model_path(m)},
        versions=versions(),
        audit=audit,
    )
    log.info("%s: %d frames, %d tracked, %.1f frames/s", src.name, n, tracked, summary.fps)
    return MaskResult(output=dst, summary=summary, track=track, eyes=eyes, fit=fit)


def _write_side_by_side(
    src: Path, dst: Path, renderer: AvatarRenderer, fit: FaceFit, info: VideoInfo, config: RunConfig
) -> None:
    """Operator preview: original | mask, side by side. Never the default output."""
    width, height = fit.image_size
    with VideoWriter(dst, 2 * width, height, info.time_base, info.average_rate, crf=23,
                     preset=config.preset) as writer:
        for frame in iter_frames(src):
            i = frame.index
            if i >= len(fit):
                break
            both = np.concatenate([frame.rgb, renderer.render(fit.frame(i))], axis=1)
            writer.write(both, int(fit.pts[i]))


def measure_video(path: Path | str, out_dir: Path | str | None = None, progress: ProgressFn | None = None):
    """Measure the eye signs of a video (original or masked, same code): returns ``metrics.Measurements``.

    Pass 1 (decode, track, image-based eye measurement) and the 3D fit, then the clinical table
    and summary; with ``out_dir``, also writes the table, summary.json, plots and report.html.
    To measure the original during ``mask_video`` without decoding again, call
    ``metrics.measurements_from(result.track, result.eyes, result.fit)`` on its ``MaskResult``.

    Raises:
        InputError: unreadable input.
        NoFaceError: no usable face in any frame (nothing written).
    """
    from .metrics import measurements_from

    src = Path(path)
    track, eyes, fit = reconstruct(src, probe_video(src), progress=progress)
    result = measurements_from(track, eyes, fit, source_name=src.name)
    if out_dir is not None:
        from .report import write_measurements

        write_measurements(result, out_dir)
    return result


def compare_videos(original: Path | str, masked: Path | str, out_dir: Path | str | None = None,
                   progress: ProgressFn | None = None) -> dict:
    """Measure an original and its mask with the same code and return their agreement.

    Returns ``metrics.compare_measurements``'s dict; with ``out_dir`` also writes comparison.json,
    comparison.md and each side's measurement (``original/``, ``mask/``).

    Raises:
        InputError, NoFaceError: as ``measure_video``, naming the file.
    """
    from .metrics import compare_measurements

    a = measure_video(original, None, progress)
    b = measure_video(masked, None, progress)
    cmp = compare_measurements(a, b)
    if out_dir is not None:
        from .report import write_comparison

        write_comparison(cmp, out_dir, a, b)
    return cmp
