"""The fidelity evaluation end to end on a 2 s piece of d10: control, ptosis, nystagmus.

Simulate -> mask -> measure both -> diagnose -> kappa and errors, then the same call again from
the cache. The piece (frames 120-179, eyes open, steady gaze) is given, so the full clip is not
measured to choose it.
"""

from __future__ import annotations

import json

import pytest

from digital_mask.fidelity import CONDITIONS, Case, evaluate_fidelity, write_case_images, write_report_json

SPECS = [None, "ptosis:eye=left,mm=3", "nystagmus:hz=5,amp=8,wave=pendular,axis=horizontal"]


def _grid(clips: list[str], max_cases: int | None) -> list[Case]:
    return [Case(c, s) for c in clips for s in SPECS]


def test_fidelity_on_three_cases(clip, tmp_path):
    videos = clip("d10.mp4").parent
    kwargs = dict(clips=["d10.mp4"], cache_dir=tmp_path / "cache", pieces={"d10.mp4": {"start_frame": 120, "frames": 60}},
                  grid=_grid)
    report = evaluate_fidelity(videos, **kwargs)
    assert report["n_cases"] == 3
    assert set(report["conditions"]) == set(CONDITIONS)
    for c in report["conditions"].values():
        assert {"kappa", "accuracy_original", "accuracy_mask", "abs_error_original", "abs_error_mask", "unit"} <= set(c)
    rows = {r["condition"]: r for r in report["cases"]}
    assert not any(rows["control"]["diagnosis_original"]["ptosis"].values())  # the control against itself
    ptosis = rows["ptosis"]
    assert ptosis["truth_diagnosis"]["ptosis"] == {"right": False, "left": True}
    assert ptosis["diagnosis_original"]["ptosis"]["left"]  # 3 mm reads >= 1 mm on the original
    # one 2 s piece whose per-frame MRD1 swings between 0 and 8 mm: its error moved 1.31 -> 1.81 mm
    # when the iris centre (which the simulator starts from) moved by tenths of a pixel; on the
    # fidelity grid's 16 simulated ptosis eyes the mean error is 0.88 mm, unchanged
    assert ptosis["errors"]["abs_error_original"] < 2.0
    nys = rows["nystagmus"]
    assert nys["errors"]["abs_error_original"] < 0.3  # Hz
    # the paper's metric: the eyeball angles are solved from the same iris, so ~0 by construction
    # (non-zero only for an iris beyond its eyeball's reach); the lids are modelled, not solved
    assert 0 <= report["accuracy_pct"]["eyeball_pct"] < 0.5 and report["accuracy_pct"]["eyelid_pct"] > 0
    # JSON as written by the CLI; the cache paths stay out of it
    path = write_report_json(report, tmp_path / "fidelity.json")
    data = json.loads(path.read_text())
    assert data["n_cases"] == 3 and "_mask_paths" not in data
    # masked frames only, one per condition present
    pngs = write_case_images(report, tmp_path / "img")
    assert {p.stem for p in pngs} == {"fidelity_ptosis", "fidelity_nystagmus"}
    # a rerun comes from the cache
    again = evaluate_fidelity(videos, **kwargs)
    assert all(r["cached"] for r in again["cases"])
    assert again["conditions"] == report["conditions"]
    assert again["runtime_s"] < 10


@pytest.mark.parametrize("bad", ["nope.mp4"])
def test_fidelity_unknown_clip(clip, tmp_path, bad):
    from digital_mask.errors import InputError

    with pytest.raises(InputError):
        evaluate_fidelity(clip("d10.mp4").parent, clips=[bad], cache_dir=tmp_path)


def test_fidelity_cli_faceless_clip_fails_closed(clip, tmp_path):
    from typer.testing import CliRunner

    from digital_mask.cli import app

    res = CliRunner().invoke(app, ["evaluate", "fidelity", "--videos", str(clip("no_face.mp4").parent), "--clip",
                                   "no_face.mp4", "--cache-dir", str(tmp_path), "--quiet", "--json",
                                   str(tmp_path / "f.json")])
    assert res.exit_code == 1
    assert "no_face.mp4: skipped (no face found)" in res.output
    assert "error:" in res.output and not (tmp_path / "f.json").exists()


def test_select_pieces_on_a_short_clip(clip, tmp_path):
    # single_face.mp4 is 2.4 s: one piece of all 72 frames, and no room for a second (>= 2 s)
    from digital_mask.fidelity import code_fingerprints, select_pieces

    fp = code_fingerprints()
    first, second = select_pieces(clip("single_face.mp4"), tmp_path, fp, 3.0, 2, None)
    assert (first["start_frame"], first["frames"]) == (0, 72)
    assert second == {"skip": "no other run of 2 s with a tracked face"}
    assert len(list((tmp_path / "selection").glob("*.json"))) == 2
    assert select_pieces(clip("single_face.mp4"), tmp_path, fp, 3.0, 2, None) == [first, second]  # cached
    # the one-piece choice is the same file as the first of two
    assert select_pieces(clip("single_face.mp4"), tmp_path, fp, 3.0, 1, None) == [first]
