"""The command line on real inputs: exit codes, one-line errors, no partial outputs, reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digital_mask.cli import app

runner = CliRunner()
LFW = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces" / "lfw"


def _error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_help_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "digital_mask", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "mask" in proc.stdout and "demo" in proc.stdout


def test_missing_input_is_one_error_line(tmp_path):
    result = runner.invoke(app, ["mask", str(tmp_path / "visit03.mov"), "-q"])
    assert result.exit_code == 1
    assert len(_error_lines(result)) == 1 and "visit03.mov" in result.output
    assert list(tmp_path.iterdir()) == []


def test_not_a_video_is_one_error_line(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    result = runner.invoke(app, ["mask", str(bad), "-q"])
    assert result.exit_code == 1 and len(_error_lines(result)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def test_output_is_never_the_input_and_never_silently_replaced(tmp_path):
    photo = tmp_path / "face.jpg"
    photo.write_bytes((LFW / "Colin_Powell" / "Colin_Powell_0001.jpg").read_bytes())
    same = runner.invoke(app, ["mask", str(photo), "-o", str(photo), "--overwrite", "-q"])
    assert same.exit_code == 1 and len(_error_lines(same)) == 1
    assert photo.read_bytes() == (LFW / "Colin_Powell" / "Colin_Powell_0001.jpg").read_bytes()
    existing = tmp_path / "face_masked.png"
    existing.write_bytes(b"keep me")
    again = runner.invoke(app, ["mask", str(photo), "-q"])
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert existing.read_bytes() == b"keep me"


def test_photo_is_masked_to_png_with_a_report(tmp_path):
    photo = LFW / "Colin_Powell" / "Colin_Powell_0001.jpg"
    out, report = tmp_path / "masked.png", tmp_path / "run.json"
    result = runner.invoke(app, ["mask", str(photo), "-o", str(out), "--report", str(report), "-q"])
    assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(photo) as src, Image.open(out) as im:
        assert im.size == src.size
        assert not im.info  # no metadata chunks
    data = json.loads(report.read_text())
    assert data["frames"] == 1 and data["frames_tracked"] == 1
    assert data["input_name"] == photo.name  # names only, never paths or patient data
    assert str(photo.parent) not in report.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("option", ["--crf", "--preset"])
def test_bad_encoder_options_are_rejected(tmp_path, option):
    value = "99" if option == "--crf" else "warp-speed"
    photo = LFW / "Colin_Powell" / "Colin_Powell_0001.jpg"
    result = runner.invoke(app, ["mask", str(photo), "-o", str(tmp_path / "m.png"), option, value, "-q"])
    assert result.exit_code != 0
