"""Command line: the only module that prints or sets exit codes.

A ``MaskError`` (bad input, no face, output exists, model problem) becomes one line
``error: ...`` on stderr and exit code 1; anything else keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import math
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .errors import InputError, MaskError

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
              side_by_side: Optional[Path], crf: int, preset: str, quiet: bool, measure_dir: Optional[Path] = None,
              audit: bool = False):
    from .pipeline import RunConfig, mask_video

    config = RunConfig(overwrite=overwrite, side_by_side=side_by_side, crf=crf, preset=preset, measure_dir=measure_dir,
                       audit=audit)
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
    preset: Annotated[str, typer.Option(help="x264 speed preset (ultrafast: ~57 % less encoding CPU than veryfast, ~5x larger files, same visual quality; docs/benchmarks.md).")] = "ultrafast",
    measure_dir: Annotated[Optional[Path], typer.Option("--measure", help="Also write the original's eye measurements (table, summary, plots, report.html) to this folder, from the same pass.")] = None,
    audit: Annotated[bool, typer.Option("--audit", help="Check the output with two face recognisers (dlib, FaceNet); if one matches it to the input, remove it and exit 1.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Mask one video or photo: write a de-identified avatar rendering of it."""
    from .io import default_output_path, probe_video

    try:
        info = probe_video(input_path)
        dst = output or default_output_path(input_path, image=info.is_image)
        result = _run_mask(input_path, dst, overwrite=overwrite, report=report, side_by_side=side_by_side,
                           crf=crf, preset=preset, quiet=quiet, measure_dir=measure_dir, audit=audit)
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
                           preset="ultrafast", quiet=False)
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


@evaluate_app.command("speed")
def evaluate_speed_cmd(
    video: Annotated[Path, typer.Argument(help="Clip to time (a face video).")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON.")] = None,
    seconds: Annotated[float, typer.Option(help="Seconds of the clip to time per run (looped if shorter).")] = 10.0,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per contender (after one warm-up).")] = 5,
    memory: Annotated[bool, typer.Option(help="Also measure peak memory on 10 s and 60 s clips.")] = True,
    resolution: Annotated[Optional[list[str]], typer.Option("--resolution", "-r", help="Only this size: native, 480p, 720p or 1080p (repeatable; default all).")] = None,
) -> None:
    """Frames/s end to end and per stage at several resolutions, against the codec floor and deface."""
    from .benchmark import RESOLUTIONS, evaluate_speed
    from .io import probe_video

    sizes = tuple(resolution or ("native", *RESOLUTIONS))
    for res in sizes:
        if res != "native" and res not in RESOLUTIONS:
            _fail(InputError(f"unknown resolution {res!r}; choose native, {', '.join(RESOLUTIONS)}"))
    try:
        probe_video(video)
        result = evaluate_speed(video, seconds=seconds, repeats=repeats, memory=memory, resolutions=sizes,
                                progress=lambda msg: err.print(msg, highlight=False))
    except MaskError as exc:
        _fail(exc)
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    for res, r in result["results"].items():
        deface = f"{r['deface_fps']:.1f}" if r["deface_fps"] else "n/a"
        out.print(f"{res:>6} {r['width']}x{r['height']}: ours {r['fps']:.1f} frames/s "
                  f"({r['fps_after_startup']:.1f} after {r['startup_s']:.1f} s start-up), floor {r['floor_fps']:.1f}, "
                  f"deface {deface}; stages ms/frame {r['stages_ms']}")
    for k, v in result["memory"].items():
        out.print(f"{k}: {v} MiB")


def _privacy_progress(unit: str) -> tuple[Progress, object]:
    """A progress bar per stage for the privacy tools, counting ``unit`` (images or frames)."""
    progress = Progress(TextColumn("[bold]{task.description:<15}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn(unit), TimeRemainingColumn(), console=err)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total or None)
        progress.update(tasks[stage], completed=done, total=total or None)

    return progress, update


def _privacy_write_json(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


@evaluate_app.command("privacy")
def evaluate_privacy_cmd(
    faces: Annotated[Path, typer.Option("--faces", help="Folder with one sub-folder of photos per identity (e.g. ../shared/data/faces/lfw).")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Embedding and masked-photo cache (default ~/.cache/digital-mask/privacy).")] = None,
    anonymiser: Annotated[Optional[list[str]], typer.Option("--anonymiser", "-a", help="Only this anonymiser (repeatable; default: all).")] = None,
    max_identities: Annotated[Optional[int], typer.Option(min=2, help="Use only the first N identities (quick runs).")] = None,
    max_photos: Annotated[Optional[int], typer.Option(min=2, help="Use only the first N photos per identity (quick runs).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Re-identification benchmark: rank-1/rank-5/TAR and pair AUC of two face recognisers on anonymised photos."""
    from .privacy import ANONYMISERS, PAIR_AUC_KEY, SCENARIOS, TAR_KEY, evaluate_privacy

    try:
        kwargs = dict(anonymisers=tuple(anonymiser) if anonymiser else ANONYMISERS, cache_dir=cache_dir,
                      max_identities=max_identities, max_photos=max_photos)
        if quiet:
            report = evaluate_privacy(faces, **kwargs)
        else:
            progress, update = _privacy_progress("images")
            with progress:
                report = evaluate_privacy(faces, progress=update, **kwargs)
    except MaskError as exc:
        _fail(exc)
    data = report.to_json_dict()
    if json_out is not None:
        _privacy_write_json(json_out, data)
    out.print(f"{report.dataset}: {report.n_identities} identities, {report.n_probes} probes, chance rank-1 "
              f"{report.chance_rank1:.3f}; each cell rank-1 rank-5 TAR@FAR1e-3; mask2mask pair AUC (chance 0.5) "
              "with its 95 % interval", highlight=False, soft_wrap=True)
    out.print(f"{'anonymiser':<16}{'recogniser':<11}{'face2face':<11}{'mask2face':<16}{'mask2mask':<16}"
              f"{'pair AUC':<21}found", highlight=False, soft_wrap=True)
    for name, per_rec in report.results.items():
        for rec, sc in per_rec.items():
            cells = [" ".join(f"{sc[s][k]:.2f}" for k in ("rank1", "rank5", TAR_KEY)) for s in SCENARIOS[1:]]
            m2m = sc["mask2mask"]
            auc = f"{m2m[PAIR_AUC_KEY]:.3f} [{m2m[PAIR_AUC_KEY + '_ci95'][0]:.3f}, {m2m[PAIR_AUC_KEY + '_ci95'][1]:.3f}]"
            out.print(f"{name:<16}{rec:<11}{sc['face2face']['rank1']:<11.2f}{cells[0]:<16}{cells[1]:<16}{auc:<21}"
                      f"{report.face_detection_rate[name][rec]:.2f}", highlight=False, soft_wrap=True)


@app.command()
def audit(
    original: Annotated[Path, typer.Argument(help="The original video or photo.")],
    masked: Annotated[Path, typer.Argument(help="Its masked output.")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the verdict as JSON.")] = None,
    frames: Annotated[int, typer.Option(min=1, help="Frames to sample, evenly spread.")] = 16,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Check that no face recogniser (dlib, FaceNet) matches MASKED to ORIGINAL; exit 1 if one does."""
    from .privacy import audit_video

    try:
        if quiet:
            result = audit_video(original, masked, frames)
        else:
            progress, update = _privacy_progress("frames")
            with progress:
                result = audit_video(original, masked, frames, progress=update)
    except MaskError as exc:
        _fail(exc)
    if json_out is not None:
        _privacy_write_json(json_out, result.to_json_dict())
    for r in result.recognisers:
        closest = f"{r.min_distance:.3f}" if r.frames_compared else "n/a (no face in the sampled original frames)"
        default = "above" if r.passes_default_threshold else "NOT above"
        template = f"{r.template_distance:.3f}" if math.isfinite(r.template_distance) else "n/a"
        why = ("above the threshold" if r.above_threshold else
               "no closer than the bare template" if r.passed else "closer than the threshold and the bare template")
        out.print(f"{r.recogniser:<8} closest original-mask distance {closest} (same person below {r.threshold:.2f}, "
                  f"FAR 1e-3; bare template {template}; {r.frames_compared} frames) {'pass' if r.passed else 'FAIL'}"
                  f" ({why}); {default} the recogniser's default {r.default_threshold:.2f}", highlight=False,
                  soft_wrap=True)
    out.print(f"audit {'passed' if result.passed else 'FAILED'}: {result.masked_name} vs {result.original_name}",
              highlight=False)
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def measure(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="Video to measure (an original or a masked one).")],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Folder for frames.csv/.parquet, summary.json, plots and report.html.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Measure the eye signs: per-frame gaze, lids and head pose, blinks, deviation, nystagmus; HTML report."""
    from .pipeline import measure_video

    try:
        if quiet:
            m = measure_video(video, out_dir)
        else:
            progress, update = _progress_bar()
            with progress:
                m = measure_video(video, out_dir, update)
    except MaskError as exc:
        _fail(exc)
    from .report import REPORT_NAME, findings

    for line in findings(m.summary):
        out.print(line, highlight=False, soft_wrap=True)
    out.print(f"wrote {out_dir / REPORT_NAME} (and frames.csv, frames.parquet, summary.json, plots)")


@app.command()
def compare(
    original: Annotated[Path, typer.Argument(metavar="ORIGINAL", help="The original video.")],
    masked: Annotated[Path, typer.Argument(metavar="MASKED", help="Its masked video.")],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Folder for comparison.json, comparison.md and both measurements.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Measure an original and its mask with the same code; write their agreement (ICC, Bland-Altman, flags)."""
    from .pipeline import compare_videos

    try:
        if quiet:
            cmp = compare_videos(original, masked, out_dir)
        else:
            progress, update = _progress_bar()
            with progress:
                cmp = compare_videos(original, masked, out_dir, update)
    except MaskError as exc:
        _fail(exc)
    from .report import COMPARISON_JSON, comparison_markdown

    out.print(comparison_markdown(cmp), highlight=False, soft_wrap=True)
    out.print(f"wrote {out_dir / COMPARISON_JSON}")


def _simulate_help() -> str:
    from .simulate import SPEC_HELP

    return ("Edit a REAL face video so it shows an eye condition of known size; write the ground truth "
            "(OUTPUT with suffix .truth.json). The output shows the real person: treat it like the input.\n\n"
            + SPEC_HELP)


@app.command(help=_simulate_help())
def simulate(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A real face video.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Simulated video (H.264 MP4); truth goes to OUTPUT.truth.json.")],
    condition: Annotated[str, typer.Option("--condition", "-c", metavar="SPEC", help="e.g. strabismus:eye=left,dir=eso,deg=15 (see above).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (never the input).")] = False,
    crf: Annotated[int, typer.Option(min=0, max=51, help="x264 quality of the re-encode (lower = better).")] = 16,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    from .simulate import simulate_video

    try:
        if quiet:
            res = simulate_video(input_path, output, condition, overwrite=overwrite, crf=crf)
        else:
            progress, update = _progress_bar()
            with progress:
                res = simulate_video(input_path, output, condition, overwrite=overwrite, crf=crf, progress=update)
    except MaskError as exc:
        _fail(exc)
    out.print(f"wrote {res.output} and {res.truth_path} ({res.truth['condition']['spec']}; shown in "
              f"{res.frames_shown} of {res.frames} frames, {res.fps:.1f} frames/s)", highlight=False, soft_wrap=True)


@evaluate_app.command("fidelity")
def evaluate_fidelity_cmd(
    videos: Annotated[Path, typer.Option("--videos", help="Folder of face clips (faceless ones are skipped with a note).")] = Path("../shared/data/videos"),
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON.")] = None,
    clip: Annotated[Optional[list[str]], typer.Option("--clip", help="Only this clip file name (repeatable).")] = None,
    seconds: Annotated[float, typer.Option(min=1.0, help="Length of the piece of each clip that is simulated on.")] = 3.0,
    pieces: Annotated[int, typer.Option("--pieces", min=1, help="Non-overlapping pieces per clip, each with the whole grid (more cases, tighter intervals).")] = 1,
    max_cases: Annotated[Optional[int], typer.Option(min=1, help="At most N cases, spread over the clips (quick runs).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Pieces, simulated clips, masks, measurements (default ~/.cache/digital-mask/fidelity; contains the real people).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Write one PNG per condition here: masked control | masked case (MASKED OUTPUT ONLY).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Clinical consistency: simulate conditions on real clips, mask, diagnose both; kappa and accuracy."""
    from .fidelity import evaluate_fidelity, markdown_table, write_case_images, write_report_json

    kwargs = dict(clips=clip, seconds=seconds, pieces_per_clip=pieces, max_cases=max_cases, cache_dir=cache_dir,
                  note=lambda msg: err.print(f"note: {msg}", highlight=False, soft_wrap=True))
    try:
        if quiet:
            report = evaluate_fidelity(videos, **kwargs)
        else:
            progress, update = _progress_bar()
            with progress:
                report = evaluate_fidelity(videos, progress=update, **kwargs)
        pngs = write_case_images(report, images) if images is not None else []
    except MaskError as exc:
        _fail(exc)
    if json_out is not None:
        write_report_json(report, json_out)
    out.print(markdown_table(report), highlight=False, soft_wrap=True)
    acc = report["accuracy_pct"]
    out.print(f"{report['n_cases']} cases; paper's accuracy metric: eyeball {acc.get('eyeball_pct', 'n/a')} %, eyelid "
              f"{acc.get('eyelid_pct', 'n/a')} % of the eye distance; {report['runtime_s']:.0f} s", highlight=False)
    for p in pngs:
        out.print(f"wrote {p}", highlight=False)


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
