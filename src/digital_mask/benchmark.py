"""Speed and memory benchmark: ours vs the codec floor vs deface, on the same clip, in one run.

Every contender runs as its own command (a fresh process: interpreter start, model loading and
all), timed by wall clock, so the three are compared on the same footing:

* ours:  ``python -m digital_mask mask CLIP --report ...`` (its report gives per-stage ms/frame);
* floor: decode and re-encode the same frames with the same encoder settings, nothing else;
* deface: ``deface CLIP`` with its default blur (an anonymiser people use today), if installed.

Clips: the first ``seconds`` of the input (default 10 s, looped if shorter) at its own size, and
scaled to fit (with borders) into 854x480, 1280x720 and 1920x1080. A whole command includes its
start-up (interpreter, imports, model loading, OpenGL context: ~1.1-1.3 s here), which a 3 s clip
would count against ~90 frames; so start-up is also timed on its own (our command on a 2-frame
clip of the same size) and reported as ``startup_s``, with ``fps_after_startup`` = frames /
(wall - startup). ``fps`` stays the whole command's frames / wall.

Memory: peak RSS of our command on a 10 s and a 60 s clip made by looping the input; it must not
grow with length (frames are streamed).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import __version__
from .io import VideoWriter, iter_frames, probe_video

RESOLUTIONS = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
CLIP_TIME_BASE = Fraction(1, 15360)


def make_clip(src: Path, dst: Path, *, seconds: float, size: tuple[int, int] | None = None,
              loop: bool = False) -> int:
    """Write the first ``seconds`` of ``src`` (looped if ``loop`` and shorter), optionally scaled to
    fit into ``size`` with borders; 30 fps timestamps. Returns the frame count."""
    import av  # local: only the benchmark rescales

    info = probe_video(src)
    width, height = size or (info.width + info.width % 2, info.height + info.height % 2)
    n_target = int(round(seconds * 30))
    step = int(CLIP_TIME_BASE.denominator / 30)
    written = 0
    with VideoWriter(dst, width, height, CLIP_TIME_BASE, Fraction(30), crf=14, preset="veryfast") as writer:
        while written < n_target:
            for frame in iter_frames(src):
                rgb = frame.rgb
                if size is not None:
                    s = min(width / rgb.shape[1], height / rgb.shape[0])
                    w, h = int(rgb.shape[1] * s) // 2 * 2, int(rgb.shape[0] * s) // 2 * 2
                    scaled = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=w, height=h)
                    canvas = np.zeros((height, width, 3), np.uint8)
                    y0, x0 = (height - h) // 2, (width - w) // 2
                    canvas[y0 : y0 + h, x0 : x0 + w] = scaled.to_ndarray(format="rgb24")
                    rgb = canvas
                elif rgb.shape[:2] != (height, width):
                    rgb = np.pad(rgb, ((0, height - rgb.shape[0]), (0, width - rgb.shape[1]), (0, 0)), mode="edge")
                writer.write(rgb, written * step)
                written += 1
                if written >= n_target:
                    break
            if not loop:
                break
    return written


def codec_floor(src: Path, dst: Path, crf: int | None = None, preset: str | None = None) -> None:
    """Decode and re-encode the same frames with the mask's encoder settings: the speed floor."""
    from .pipeline import RunConfig

    crf, preset = RunConfig().crf if crf is None else crf, preset or RunConfig().preset
    info = probe_video(src)
    with VideoWriter(dst, info.width, info.height, info.time_base, info.average_rate, crf=crf, preset=preset) as w:
        for frame in iter_frames(src):
            w.write(frame.rgb, frame.pts)


def _run(cmd: list[str]) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS in MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {stderr.strip().splitlines()[-1:]}")
    return wall, int(usage.ru_maxrss / 1024)


def _ours_cmd(clip: Path, out: Path, report: Path) -> list[str]:
    return [sys.executable, "-m", "digital_mask", "mask", str(clip), "-o", str(out), "--overwrite", "-q",
            "--report", str(report)]


def _floor_cmd(clip: Path, out: Path) -> list[str]:
    code = "import sys; from pathlib import Path; from digital_mask.benchmark import codec_floor; codec_floor(Path(sys.argv[1]), Path(sys.argv[2]))"
    return [sys.executable, "-c", code, str(clip), str(out)]


def find_deface() -> str | None:
    """The deface command: on PATH, or in the benchmark's own venv (.venv-deface, see Makefile)."""
    for candidate in (shutil.which("deface"), str(Path.cwd() / ".venv-deface" / "bin" / "deface")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _stats(values: list[float]) -> dict[str, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"median": round(float(med), 3), "iqr": round(float(q3 - q1), 3)}


STARTUP_FRAMES = 2


def evaluate_speed(video: Path, *, seconds: float = 10.0, repeats: int = 5,
                   resolutions: tuple[str, ...] = ("native", "480p", "720p", "1080p"),
                   memory: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; returns ``{"metadata": ..., "results": {RES: {...}}, "memory": ...}``."""
    say = progress or (lambda _msg: None)
    deface = find_deface()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="dm-speed-") as tmp_name:
        tmp = Path(tmp_name)
        for res in resolutions:
            clip = tmp / f"clip_{res}.mp4"
            size = None if res == "native" else RESOLUTIONS[res]
            n = make_clip(video, clip, seconds=seconds, size=size, loop=True)
            tiny = tmp / f"startup_{res}.mp4"
            make_clip(video, tiny, seconds=STARTUP_FRAMES / 30, size=size)
            probed = probe_video(clip)
            width, height = probed.width, probed.height
            say(f"{res}: {width}x{height}, {n} frames, warm-up")
            contenders = {"ours": lambda: _ours_cmd(clip, tmp / "ours.mp4", tmp / "ours.json"),
                          "startup": lambda: _ours_cmd(tiny, tmp / "tiny.mp4", tmp / "tiny.json"),
                          "floor": lambda: _floor_cmd(clip, tmp / "floor.mp4")}
            if deface:
                contenders["deface"] = lambda: [deface, str(clip), "-o", str(tmp / "deface.mp4")]
            walls: dict[str, list[float]] = {k: [] for k in contenders}
            stages: list[dict[str, float]] = []
            for k, cmd in contenders.items():
                _run(cmd())  # warm-up (disk cache, lazy imports)
            for r in range(repeats):
                say(f"{res}: run {r + 1}/{repeats}")
                for k, cmd in contenders.items():  # interleaved, so drifts hit all alike
                    walls[k].append(_run(cmd())[0])
                    if k == "ours":
                        stages.append(json.loads((tmp / "ours.json").read_text())["stages_ms_per_frame"])
            fps = {k: n / float(np.median(v)) for k, v in walls.items() if k != "startup"}
            startup = float(np.median(walls["startup"]))
            entry = {
                "width": width, "height": height, "frames": n,
                "fps": round(fps["ours"], 2),
                "startup_s": round(startup, 2),
                "fps_after_startup": round(n / max(float(np.median(walls["ours"])) - startup, 1e-3), 2),
                "floor_fps": round(fps["floor"], 2),
                "deface_fps": round(fps["deface"], 2) if deface else None,
                "ours_over_floor": round(fps["ours"] / fps["floor"], 3),
                "ours_over_deface": round(fps["ours"] / fps["deface"], 3) if deface else None,
                "wall_s": {k: _stats(v) for k, v in walls.items()},
                "stages_ms": {s: round(float(np.median([st[s] for st in stages])), 2) for s in stages[0]},
            }
            results[res] = entry
        mem: dict[str, float] = {}
        if memory:
            for secs in (10, 60):
                clip = tmp / f"loop_{secs}s.mp4"
                make_clip(video, clip, seconds=secs, loop=True)
                say(f"memory: {secs} s clip")
                mem[f"peak_rss_mib_{secs}s"] = _run(_ours_cmd(clip, tmp / "mem.mp4", tmp / "mem.json"))[1]
    return {"metadata": metadata(video, seconds, repeats, deface), "results": results, "memory": mem}


def metadata(video: Path, seconds: float, repeats: int, deface: str | None) -> dict:
    from importlib import metadata as md

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    deface_version = None
    if deface:
        out = subprocess.run([deface, "--version"], capture_output=True, text=True)
        deface_version = (out.stdout or out.stderr).strip() or None
    return {
        "digital_mask": __version__, "clip": video.name, "seconds": seconds, "repeats": repeats,
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "mediapipe": version("mediapipe"), "av": version("av"), "moderngl": version("moderngl"),
        "deface": deface_version,
    }
