"""Files of a measurement: per-frame table (CSV + Parquet), summary.json, plots and an HTML report.

Everything here renders what ``metrics`` computed; nothing is measured here. Reports name the video
file only (never a path) and contain no frame of it: the plots are signal traces.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from .metrics import (
    CLOSED_APERTURE_MM,
    MEASURES,
    NYSTAGMUS_BAND_HZ,
    PTOSIS_MRD1_MM,
    RETRACTION_MRD1_MM,
    Measurements,
)
from .types import EYE_NAMES

EYE_COLORS = {"right": "#c0392b", "left": "#2471a3"}  # patient's right red, left blue (OD/OS habit)

TABLE_NAME = "frames"
SUMMARY_NAME = "summary.json"
REPORT_NAME = "report.html"
PLOTS = ("gaze.png", "lids.png", "spectrum.png")
COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    tmp.replace(path)


def _jsonable(obj: object) -> object:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def to_json(obj: object) -> str:
    """JSON text (NaN/inf become null, numpy scalars plain numbers)."""
    return json.dumps(_jsonable(obj), indent=2) + "\n"


# ----------------------------------------------------------------------------------------------
# table


def write_table(m: Measurements, out_dir: Path) -> tuple[Path, Path]:
    """Write the per-frame table as ``frames.csv`` and ``frames.parquet`` (NaN -> empty / null)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    arrays = {}
    for name, col in m.table.items():
        col = np.asarray(col)
        if col.dtype.kind == "f":
            arrays[name] = pa.array(np.round(col, 4), from_pandas=True)  # NaN -> null
        else:
            arrays[name] = pa.array(col)
    table = pa.table(arrays)
    csv_path, pq_path = out_dir / f"{TABLE_NAME}.csv", out_dir / f"{TABLE_NAME}.parquet"
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    _atomic_write(csv_path, buf.getvalue())
    buf = io.BytesIO()
    pq.write_table(table, buf)
    _atomic_write(pq_path, buf.getvalue())
    return csv_path, pq_path


# ----------------------------------------------------------------------------------------------
# plots


def _figure(rows: int, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, axes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_gaze(m: Measurements) -> bytes:
    """Both eyes' horizontal and vertical gaze over time (PNG bytes)."""
    t = m.table["time_s"]
    fig, (ax_h, ax_v) = _figure(2, 5.5)
    for name in EYE_NAMES:
        ok = m.table[f"{name}_open"]
        for ax, key in ((ax_h, "gaze_yaw_deg"), (ax_v, "gaze_pitch_deg")):
            y = np.where(ok, m.table[f"{name}_{key}"], np.nan)
            ax.plot(t, y, color=EYE_COLORS[name], lw=1.0, label=f"{name} eye")
    ax_h.set_ylabel("horizontal gaze (deg)\n+ toward patient's left")
    ax_v.set_ylabel("vertical gaze (deg)\n+ up")
    ax_v.set_xlabel("time (s)")
    ax_h.set_title(f"{m.source_name}: gaze of each eye relative to the head (gaps: eye closed)")
    ax_h.legend(loc="upper right")
    for ax in (ax_h, ax_v):
        ax.grid(alpha=0.3)
    return _png(fig)


def plot_lids(m: Measurements) -> bytes:
    """Palpebral fissure height and MRD1 per eye over time (PNG bytes)."""
    t = m.table["time_s"]
    fig, (ax_a, ax_m) = _figure(2, 5.5)
    for name in EYE_NAMES:
        ax_a.plot(t, m.table[f"{name}_fissure_height_mm"], color=EYE_COLORS[name], lw=1.0, label=f"{name} eye")
        mrd1 = np.where(m.table[f"{name}_open"], m.table[f"{name}_mrd1_mm"], np.nan)
        ax_m.plot(t, mrd1, color=EYE_COLORS[name], lw=1.0, label=f"{name} eye")
    ax_a.axhline(CLOSED_APERTURE_MM, color="k", ls=":", lw=0.8, label=f"closed below {CLOSED_APERTURE_MM} mm")
    ax_m.axhline(PTOSIS_MRD1_MM, color="k", ls=":", lw=0.8, label=f"ptosis below {PTOSIS_MRD1_MM} mm")
    ax_m.axhline(RETRACTION_MRD1_MM, color="k", ls="--", lw=0.8, label=f"retraction above {RETRACTION_MRD1_MM:.2f} mm")
    ax_a.set_ylabel("fissure height at the iris (mm)")
    ax_m.set_ylabel("MRD1 (mm)")
    ax_m.set_xlabel("time (s)")
    ax_a.set_title(f"{m.source_name}: lid aperture (blinks dip to 0) and MRD1")
    for ax in (ax_a, ax_m):
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    return _png(fig)


def plot_spectrum(m: Measurements) -> bytes:
    """Eye-movement power spectrum per eye (yaw + pitch), the nystagmus band shaded (PNG bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    f = m.spectrum.get("freq_hz", np.zeros(0))
    for name in EYE_NAMES:
        p = m.spectrum.get(name, np.zeros(0))
        if f.size and p.size == f.size:
            ax.semilogy(f[1:], np.maximum(p[1:], 1e-6), color=EYE_COLORS[name], lw=1.2, label=f"{name} eye")
            ny = m.summary["nystagmus"][name]
            if ny.get("detected"):
                ax.axvline(ny["frequency_hz"], color=EYE_COLORS[name], ls="--", lw=0.8)
    ax.axvspan(*NYSTAGMUS_BAND_HZ, color="0.9", zorder=0, label="nystagmus search band")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("gaze power (deg²)")
    ax.set_title(f"{m.source_name}: eye-movement spectrum (least-squares periodogram)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


# ----------------------------------------------------------------------------------------------
# HTML


def _fmt(v: object, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.1f}{unit}"
    return f"{v}{unit}"


def findings(summary: dict) -> list[str]:
    """Plain-language findings of a summary, one sentence each (for the report's first screen)."""
    out = []
    dev = summary["deviation"]
    if dev.get("horizontal_pd") is None:
        out.append("Eye alignment in primary gaze: not measurable (no frame with both eyes open looking ahead).")
    else:
        out.append(
            f"Eye alignment in primary gaze ({dev['frames_used']} frames): horizontal {dev['horizontal_pd']:.1f} PD "
            f"{dev['horizontal_direction']}, vertical {dev['vertical_pd']:.1f} PD {dev['vertical_direction']}"
            f" (flagged at ≥ {dev['flag_threshold_pd']['horizontal']:.0f} / {dev['flag_threshold_pd']['vertical']:.0f} PD: "
            f"{dev['horizontal_flag']} / {dev['vertical_flag']})."
        )
    for ep in dev.get("episodes", []):
        out.append(
            f"One eye turned relative to the other, frames {ep['start_frame']}–{ep['end_frame']} (t = {ep['start_s']:.1f} s): "
            f"{ep['eye']} eye, {ep['direction']} (right eye {ep['right_frames']} frames, left eye {ep['left_frames']} frames)."
        )
    for name in EYE_NAMES:
        ny = summary["nystagmus"][name]
        if ny["detected"]:
            out.append(f"Nystagmus, {name} eye: {ny['frequency_hz']:.1f} Hz, {ny['amplitude_p2p_deg']:.1f}° peak to peak, "
                       f"{ny['direction']}.")
        else:
            th = ny["threshold"]
            out.append(f"Nystagmus, {name} eye: {ny['result']} (threshold {th['min_p2p_deg']}° peak to peak, "
                       f"{th['band_hz'][0]:g}–{th['band_hz'][1]:g} Hz).")
    lids = summary["lids"]
    for name in EYE_NAMES:
        lid = lids[name]
        flags = [w for w, f in (("ptosis", lid["ptosis"]), ("lid retraction", lid["lid_retraction"])) if f]
        out.append(f"Lids, {name} eye: MRD1 {_fmt(lid['mrd1_mm'], ' mm')}, MRD2 {_fmt(lid['mrd2_mm'], ' mm')}, "
                   f"fissure {_fmt(lid['fissure_height_mm'], ' mm')} high; " + (", ".join(flags) if flags else "no ptosis, no retraction") + ".")
    b = summary["blinks"]
    one = b["one_eye_closures"]
    out.append(f"Blinks: {_fmt(b['blinks_per_minute'])} per minute ({b['blink_count']} blinks, "
               f"{b['sustained_closures']} sustained closures; one-eye closures: right {one['right']}, left {one['left']}).")
    h = summary["head"]
    out.append(f"Head posture: mean turn {_fmt(h['mean_turn_deg'], '°')} ({h['turn_direction']}), "
               f"mean tilt {_fmt(h['mean_tilt_deg'], '°')} ({h['tilt_direction']}), "
               f"chin {_fmt(h['mean_pitch_deg'], '°')}.")
    return out


def _events_table(summary: dict) -> str:
    rows = []
    for ep in summary["blinks"]["episodes"]:
        rows.append(f"<tr><td>{ep['start_frame']}–{ep['end_frame']}</td><td>{ep['start_s']:.2f}</td>"
                    f"<td>{ep['duration_s']:.2f}</td><td>{html.escape(ep['kind'])}</td><td>{html.escape(ep['eyes'])}</td></tr>")
    if not rows:
        return "<p>No closures.</p>"
    return ("<table><tr><th>frames</th><th>start (s)</th><th>duration (s)</th><th>kind</th><th>eyes</th></tr>"
            + "".join(rows) + "</table>")


_CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}img{max-width:100%}li{margin:0.3em 0}.note{color:#555;font-size:0.9em}"""


def render_html(m: Measurements, plots: dict[str, bytes]) -> str:
    """One self-contained HTML page: findings, thresholds, closure events, plots (base64)."""
    s = m.summary
    items = "".join(f"<li>{html.escape(line)}</li>" for line in findings(s))
    imgs = "".join(
        f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for title, png in plots.items()
    )
    lid_rows = "".join(
        f"<tr><th>{name}</th>" + "".join(f"<td>{_fmt(s['lids'][name][k])}</td>" for k in
                                          ("mrd1_mm", "mrd2_mm", "fissure_height_mm", "fissure_width_mm", "ptosis", "lid_retraction"))
        + "</tr>" for name in EYE_NAMES
    )
    th = s["lids"]["threshold"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Eye measurements: {html.escape(m.source_name)}</title>
<style>{_CSS}</style></head><body>
<h1>Eye measurements: {html.escape(m.source_name)}</h1>
<p class="note">{s['frames']} frames, {s['frames_tracked']} with a trustworthy face fit, {s['duration_s']:.1f} s.
"Right" and "left" are the patient's own eyes. Measured from the video by digital-mask (image-based iris and lid
detection, 3D eyeball fit); ruler: horizontal iris diameter = 11.7 mm. Screening aid, not a diagnosis.</p>
<h2>Findings</h2><ul>{items}</ul>
<h2>Lids (median over open-eye frames, mm)</h2>
<table><tr><th></th><th>MRD1</th><th>MRD2</th><th>fissure height</th><th>fissure width</th><th>ptosis</th><th>retraction</th></tr>{lid_rows}</table>
<p class="note">Ptosis: {html.escape(th['ptosis'])}. Lid retraction: {html.escape(th['lid_retraction'])}.
An eye counts as closed when its fissure at the iris is below {CLOSED_APERTURE_MM} mm or no iris is visible.</p>
<h2>Closures (blinks and sustained closures)</h2>{_events_table(s)}
{imgs}
<p class="note">Per-frame values: frames.csv / frames.parquet; all numbers: summary.json.</p>
</body></html>
"""


def write_measurements(m: Measurements, out_dir: Path | str) -> dict[str, Path]:
    """Write the table (CSV, Parquet), summary.json, the three plots and report.html into ``out_dir``.

    Returns:
        {kind: path} of the files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, pq_path = write_table(m, out)
    summary_path = out / SUMMARY_NAME
    _atomic_write(summary_path, to_json(m.summary).encode())
    pngs = {"Gaze of both eyes": plot_gaze(m), "Lid aperture and MRD1": plot_lids(m), "Eye-movement spectrum": plot_spectrum(m)}
    paths = {"csv": csv_path, "parquet": pq_path, "summary": summary_path}
    for fname, png in zip(PLOTS, pngs.values()):
        _atomic_write(out / fname, png)
        paths[fname.removesuffix(".png")] = out / fname
    report = out / REPORT_NAME
    _atomic_write(report, render_html(m, pngs).encode())
    paths["report"] = report
    return paths


# ----------------------------------------------------------------------------------------------
# comparison


def comparison_markdown(cmp: dict) -> str:
    """A short Markdown table of an original-vs-mask comparison (per eye, per measure; flags)."""
    lines = [f"Original `{cmp.get('original', '')}` vs mask `{cmp.get('mask', '')}`, {cmp.get('frames_paired', 0)} frames paired.", "",
             "| eye | measure | n | ICC(2,1) | MAE | bias | LoA low | LoA high |", "|---|---|---:|---:|---:|---:|---:|---:|"]

    def num(v: object) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    for eye in EYE_NAMES:
        for meas in MEASURES:
            st = cmp["per_eye"][eye].get(meas)
            if st is None:
                continue
            lines.append(f"| {eye} | {meas} | {st.get('n', '')} | {num(st['icc'])} | {num(st['mae'])} | {num(st['bias'])} | "
                         f"{num(st['loa_low'])} | {num(st['loa_high'])} |")
    lines += ["", "| flag | original | mask | agree |", "|---|---|---|---|"]
    for flag, v in cmp["flags"].items():
        lines.append(f"| {flag} | {v['original']} | {v['mask']} | {'yes' if v['agree'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def write_comparison(cmp: dict, out_dir: Path | str, original: Measurements | None = None,
                     mask: Measurements | None = None) -> dict[str, Path]:
    """Write comparison.json and comparison.md (and each side's measurement in original/ and mask/)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / COMPARISON_JSON, "markdown": out / COMPARISON_MD}
    _atomic_write(paths["json"], to_json(cmp).encode())
    _atomic_write(paths["markdown"], comparison_markdown(cmp).encode())
    for side, m in (("original", original), ("mask", mask)):
        if m is not None:
            paths[side] = write_measurements(m, out / side)["report"]
    return paths
