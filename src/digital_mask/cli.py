"""Command line: the only module that prints or sets exit codes.

A ``MaskError`` (bad input, no face, output exists, model problem) becomes one line
``error: ...`` on stderr and exit code 1; anything else keeps its traceback.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .errors import MaskError

app = typer.Typer(
    name="digital-mask",
    help="De-identify eye-care videos: re-render the patient's eye, lid and head motion on a template 3D face.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
evaluate_app = typer.Typer(help="Benchmarks on real data: privacy, fidelity, speed.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")
err = Console(stderr=True)
out = Console()

DEMO_CLIP = "demo_d14.mp4"


def _progress_bar() -> tuple[Progress, object]:
    progress = Progress(
        TextColumn("[bold]{task.description:<7}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]}"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total or None, fps="")
        task_id = tasks[stage]
        progress.update(task_id, completed=done, total=total or None)
        speed = progress.tasks[task_id].speed
        if speed:
            progress.update(task_id, fps=f"{speed:5.1f} frames/s")

    return progress, update


def _run_mask(input_path: Path, output: Path, *, overwrite: bool, report: Optional[Path],
              side_by_side: Optional[Path], crf: int, preset: str, quiet: bool):
    from .pipeline import RunConfig, mask_video

    config = RunConfig(overwrite=overwrite, side_by_side=side_by_side, crf=crf, preset=preset)
    if quiet:
        result = mask_video(input_path, output, config)
    else:
        progress, update = _progress_bar()
        with progress:
            result = mask_video(input_path, output, config, update)
    if report is not None:
        tmp = report.with_name(f".{report.name}.partial")
        tmp.write_text(json.dumps(result.summary.to_json_dict(), indent=2) + "\n")
        tmp.replace(report)
    return result


def _fail(exc: MaskError) -> None:
    err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def mask(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Patient video (any FFmpeg format) or photo (.jpg/.png).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Masked output (default: INPUT_masked.mp4, or .png for a photo).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output (never the input).")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a JSON run report (frames, tracking, speed, accuracy, versions).")] = None,
    side_by_side: Annotated[Optional[Path], typer.Option("--side-by-side", help="Also write an operator preview original|mask (contains the patient: do not share).")] = None,
    crf: Annotated[int, typer.Option(min=0, max=51, help="x264 quality (lower = better).")] = 18,
    preset: Annotated[str, typer.Option(help="x264 speed preset.")] = "veryfast",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Mask one video or photo: write a de-identified avatar rendering of it."""
    from .io import default_output_path, probe_video

    try:
        info = probe_video(input_path)
        dst = output or default_output_path(input_path, image=info.is_image)
        result = _run_mask(input_path, dst, overwrite=overwrite, report=report, side_by_side=side_by_side,
                           crf=crf, preset=preset, quiet=quiet)
    except MaskError as exc:
        _fail(exc)
    s = result.summary
    out.print(f"wrote {result.output} ({s.frames} frames, {s.frames_tracking_lost} tracking lost, {s.fps:.1f} frames/s)")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out-dir", "-d", help="Where to write the demo outputs.")] = Path("digital-mask-demo"),
) -> None:
    """Mask the bundled sample clip and write the masked video, a preview image and a report."""
    import numpy as np

    from .io import iter_frames, write_png

    clip = Path(str(resources.files("digital_mask") / "data" / DEMO_CLIP))
    out_dir.mkdir(parents=True, exist_ok=True)
    masked = out_dir / "demo_masked.mp4"
    report = out_dir / "demo_report.json"
    try:
        result = _run_mask(clip, masked, overwrite=True, report=report, side_by_side=None, crf=18,
                           preset="veryfast", quiet=False)
        # preview: six masked frames spread over the clip (masked output only)
        n = result.summary.frames
        pick = set(np.linspace(0, n - 1, 6).round().astype(int).tolist())
        tiles = [f.rgb for f in iter_frames(masked) if f.index in pick]
        preview = np.concatenate([np.concatenate(tiles[:3], 1), np.concatenate(tiles[3:6], 1)], 0)
        write_png(out_dir / "demo_preview.png", preview)
    except MaskError as exc:
        _fail(exc)
    s = result.summary
    out.print(f"masked video : {masked}")
    out.print(f"preview image: {out_dir / 'demo_preview.png'}")
    out.print(f"run report   : {report}")
    out.print(f"{s.frames} frames, {s.frames_tracked} tracked, {s.fps:.1f} frames/s; "
              f"eyeball error {s.accuracy_pct['eyeball_pct']:.2f} %, eyelid error {s.accuracy_pct['eyelid_pct']:.2f} % of eye distance")


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"digital-mask {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log backends and stages (file names only).")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point."""
    app()
