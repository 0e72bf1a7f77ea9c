"""Eye measurements on real clips: blinks per eye, one-eye turns, no false nystagmus, CLI errors.

The masked clips' ``MaskResult`` carries the pass-1 track, eyes and fit, so the original is
measured here without a second decode (as ``mask --measure`` does).
"""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from digital_mask.cli import app
from digital_mask.metrics import deviating_eye, measurements_from
from digital_mask.report import write_measurements

runner = CliRunner()


def _measure(masked, name: str):
    r = masked(name)
    return measurements_from(r.track, r.eyes, r.fit, source_name=name)


def _overlaps(ev: dict, lo: int, hi: int) -> bool:
    return ev["start_frame"] <= hi and ev["end_frame"] >= lo


def test_d14_one_sided_closure_counts_for_the_left_eye_only(masked):
    b = _measure(masked, "d14.mp4").summary["blinks"]
    left = [e for e in b["events"]["left"] if _overlaps(e, 384, 392)]
    right = [e for e in b["events"]["right"] if _overlaps(e, 384, 392)]
    assert left and not right, (left, right)
    assert not left[0]["both_eyes"]
    assert any(ep["eyes"] == "left only" and _overlaps(ep, 384, 392) for ep in b["episodes"])
    assert b["one_eye_closures"]["left"] >= 1


def test_d14_both_eye_closures_count_for_both_eyes(masked):
    b = _measure(masked, "d14.mp4").summary["blinks"]
    both = [ep for ep in b["episodes"] if ep["eyes"] == "both" and _overlaps(ep, 120, 200)]
    covered = sum(min(ep["end_frame"], 200) - max(ep["start_frame"], 120) + 1 for ep in both)
    assert covered >= 40, both  # most of frames 120-200 closed in both eyes
    for eye in ("right", "left"):
        assert any(e["both_eyes"] and _overlaps(e, 120, 200) for e in b["events"][eye])


def test_d6_monocular_inward_turns_are_deviations_of_the_eye_that_turned(masked):
    t = _measure(masked, "d6.mp4").table
    yaw = np.stack([t["right_gaze_yaw_deg"], t["left_gaze_yaw_deg"]], axis=1)
    usable = t["right_open"] & t["left_open"]
    eye, nasal = deviating_eye(yaw, usable)
    # the performer alternates the turning eye every few frames: count frames, don't average
    left_in = (eye == 1) & (nasal > 0)
    right_in = (eye == 0) & (nasal > 0)
    assert left_in[495:507].sum() >= 3 and right_in[715:727].sum() >= 3
    # the frames checked by hand (tests/integration/test_mask_clips.py): 500 left in, 720 right in
    assert left_in[499:502].any() and right_in[719:722].any()
    pd = t["horizontal_deviation_pd"]
    assert np.nanmax(pd[495:507]) > 20 and np.nanmax(pd[715:727]) > 20  # eso: + = converged


def test_single_face_has_no_nystagmus_and_writes_every_file(masked, tmp_path):
    m = _measure(masked, "single_face.mp4")
    for eye in ("right", "left"):
        ny = m.summary["nystagmus"][eye]
        assert ny["detected"] is False and ny["result"] == "none detected" and "min_p2p_deg" in ny["threshold"]
    paths = write_measurements(m, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["frames.csv", "frames.parquet", "summary.json", "gaze.png", "lids.png",
                            "spectrum.png", "report.html"])
    import pyarrow.parquet as pq

    table = pq.read_table(paths["parquet"])
    assert table.num_rows == len(m) == 72
    assert {"time_s", "head_yaw_deg", "right_mrd1_mm", "left_gaze_yaw_deg", "right_open"} <= set(table.column_names)
    summary = json.loads(paths["summary"].read_text())
    assert summary["source"] == "single_face.mp4" and "deviation" in summary and "head" in summary
    html = paths["report"].read_text()
    assert html.count("data:image/png;base64,") == 3 and "Findings" in html
    assert "/" not in summary["source"]  # names only, never paths


def test_measure_on_a_faceless_clip_is_one_error_line(clip, tmp_path):
    out = tmp_path / "m"
    result = runner.invoke(app, ["measure", str(clip("no_face.mp4")), "-o", str(out), "-q"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no face" in lines[0] and "no_face.mp4" in lines[0]
    assert not out.exists()


def test_compare_cli_on_a_clip_and_its_mask(masked, clip, tmp_path):
    result = masked("single_face.mp4")
    out = tmp_path / "cmp"
    cli = runner.invoke(app, ["compare", str(clip("single_face.mp4")), str(result.output), "-o", str(out), "-q"])
    assert cli.exit_code == 0, cli.output
    data = json.loads((out / "comparison.json").read_text())
    for eye in ("right", "left"):
        for meas in ("gaze_yaw_deg", "gaze_pitch_deg", "mrd1_mm", "mrd2_mm", "fissure_height_mm"):
            assert set(data["per_eye"][eye][meas]) >= {"icc", "mae", "bias", "loa_low", "loa_high"}
    assert all(set(v) == {"original", "mask", "agree"} for v in data["flags"].values())
    assert (out / "comparison.md").read_text().startswith("Original")
    assert (out / "original" / "report.html").is_file() and (out / "mask" / "report.html").is_file()


def test_d10_lids_repeat_on_a_half_pixel_shifted_copy(masked, clip, tmp_path):
    # The same video moved half a pixel and re-encoded: nothing about the eyes changes. d10's light
    # grey iris has a bright ring round the pupil that reads as skin; before the lid band bridged it
    # (eyes._bridge_iris_gaps) the left eye's lower margin was found inside the iris in some frames
    # and not others: MRD2 0.75 mm, fissure 1.97 mm mean absolute difference, blink count 10 vs 6
    # (now 0.30, 0.99, 3 vs 3).
    from digital_mask.fidelity import shifted_copy
    from digital_mask.metrics import compare_measurements
    from digital_mask.pipeline import measure_video

    copy = tmp_path / "d10_shifted.mp4"
    shifted_copy(clip("d10.mp4"), copy)
    cmp = compare_measurements(_measure(masked, "d10.mp4"), measure_video(copy))
    left = cmp["per_eye"]["left"]
    assert left["mrd2_mm"]["mae"] < 0.5, left["mrd2_mm"]
    assert left["fissure_height_mm"]["mae"] < 1.4, left["fissure_height_mm"]
    blinks = cmp["flags"]["blink_count"]
    assert abs(blinks["original"] - blinks["mask"]) <= 1, blinks
