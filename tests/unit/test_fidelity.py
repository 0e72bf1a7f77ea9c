"""Fidelity evaluation (issue 5): Cohen's kappa, the diagnosis rules, the grid, the piece choice,
the per-condition aggregation. No video is read here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from digital_mask.fidelity import (
    CONDITIONS,
    LID_CHANGE_MM,
    Case,
    absolute_diagnosis,
    aggregate,
    bootstrap_ci95,
    build_grid,
    case_errors,
    changes,
    choose_piece,
    clip_grid,
    cohen_kappa,
    diagnose,
    piece_name,
    truth_labels,
)
from digital_mask.metrics import DEVIATION_H_PD, DEVIATION_V_PD
from digital_mask.simulate import parse_condition


def _labels(table: list[list[int]]) -> tuple[list[int], list[int]]:
    """Rater labels from a contingency table (rows rater A's category, columns rater B's)."""
    a, b = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i] * count
            b += [j] * count
    return a, b


# ---------------------------------------------------------------------------------------- kappa
def test_kappa_textbook_table():
    # Wikipedia's Cohen's kappa example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o 0.7, p_e 0.5, kappa 0.4
    a, b = _labels([[20, 5], [10, 15]])
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_second_known_table():
    # 45/15/25/15: p_o 0.6, p_e 0.6*0.7 + 0.4*0.3 = 0.54, kappa 0.06/0.46 = 0.1304
    a, b = _labels([[45, 15], [25, 15]])
    assert cohen_kappa(a, b) == pytest.approx(0.06 / 0.46)


def test_kappa_three_categories():
    # 3x3 table: p_o = 46/60, p_e = (30*30 + 20*15 + 10*15)/60^2 = 0.375, kappa = 0.6267
    a, b = _labels([[25, 2, 3], [5, 12, 3], [0, 1, 9]])
    n = 60
    p_o = (25 + 12 + 9) / n
    pa = np.array([30, 20, 10]) / n
    pb = np.array([30, 15, 15]) / n
    expected = (p_o - pa @ pb) / (1 - pa @ pb)
    assert cohen_kappa(a, b) == pytest.approx(expected)
    assert cohen_kappa(a, b) == pytest.approx((46 / 60 - 0.375) / 0.625)


def test_kappa_perfect_chance_and_undefined():
    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == pytest.approx(1.0)
    assert cohen_kappa([True, True, False, False], [True, False, True, False]) == pytest.approx(0.0)
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa([True, True, True], [True, True, True]))  # p_e = 1
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError):
        cohen_kappa([True], [True, False])


# ---------------------------------------------------------------------------------------- diagnosis
def _ch(h=0.0, v=0.0, mrd1=(0.0, 0.0), nys=(False, False)) -> dict:
    return {"deviation_h_pd": h, "deviation_v_pd": v, "mrd1_change_mm": {"right": mrd1[0], "left": mrd1[1]},
            "nystagmus": {"right": nys[0], "left": nys[1]}}


def test_diagnose_strabismus_thresholds():
    assert not diagnose(_ch())["strabismus"]
    assert diagnose(_ch(h=DEVIATION_H_PD))["strabismus"]
    assert diagnose(_ch(h=-DEVIATION_H_PD - 0.1))["strabismus"]  # exo
    assert not diagnose(_ch(h=DEVIATION_H_PD - 0.1))["strabismus"]
    assert diagnose(_ch(v=-DEVIATION_V_PD))["strabismus"]
    assert not diagnose(_ch(v=DEVIATION_V_PD - 0.1, h=5.0))["strabismus"]
    assert not diagnose(_ch(h=None, v=None))["strabismus"]  # not measurable counts as no


def test_diagnose_lids_per_eye():
    d = diagnose(_ch(mrd1=(-LID_CHANGE_MM, 0.2)))
    assert d["ptosis"] == {"right": True, "left": False}
    assert d["retraction"] == {"right": False, "left": False}
    d = diagnose(_ch(mrd1=(0.0, LID_CHANGE_MM + 0.5)))
    assert d["retraction"] == {"right": False, "left": True}
    assert d["ptosis"] == {"right": False, "left": False}
    d = diagnose(_ch(mrd1=(-0.9, 0.9)))
    assert not any(d["ptosis"].values()) and not any(d["retraction"].values())
    d = diagnose(_ch(mrd1=(None, -3.0)))
    assert d["ptosis"] == {"right": False, "left": True}


def test_diagnose_nystagmus_per_eye():
    assert diagnose(_ch(nys=(True, False)))["nystagmus"] == {"right": True, "left": False}


def _summary(detected: bool, hz: float = 4.0) -> dict:
    ny = {"detected": detected, "frequency_hz": hz, "amplitude_p2p_deg": 5.0} if detected else {
        "detected": False, "strongest_peak": {"frequency_hz": hz, "amplitude_p2p_deg": 0.5}}
    return {"nystagmus": {"right": ny, "left": ny}}


def _table(n: int = 40, yaw=(0.0, 0.0), pitch=(0.0, 0.0), mrd1=(4.0, 4.0), closed_right: int = 0) -> dict:
    t = {"time_s": np.arange(n) / 30.0, "tracked": np.ones(n, bool)}
    for e, name in enumerate(("right", "left")):
        t[f"{name}_gaze_yaw_deg"] = np.full(n, float(yaw[e]))
        t[f"{name}_gaze_pitch_deg"] = np.full(n, float(pitch[e]))
        t[f"{name}_mrd1_mm"] = np.full(n, float(mrd1[e]))
        t[f"{name}_open"] = np.ones(n, bool)
    t["right_open"][:closed_right] = False
    return t


def test_changes_against_the_baseline():
    base = _table(yaw=(10.0, -10.0), mrd1=(4.0, 4.5))  # a converged resting reading is no squint
    case = _table(yaw=(10.0, -25.0), pitch=(0.0, 0.0), mrd1=(4.0, 2.0))
    ch = changes(case, base, _summary(False))
    assert ch["deviation_h_pd"] == pytest.approx(100 * math.tan(math.radians(15.0)))
    assert ch["deviation_v_pd"] == pytest.approx(0.0)
    assert ch["mrd1_change_mm"] == {"right": pytest.approx(0.0), "left": pytest.approx(-2.5)}
    d = diagnose(ch)
    assert d["strabismus"] and d["ptosis"] == {"right": False, "left": True}
    assert d["nystagmus"] == {"right": False, "left": False}  # constant gaze change: no rhythm
    # too few frames with the eye open in both videos: not measurable
    ch = changes(_table(closed_right=35), base, _summary(True))
    assert ch["mrd1_change_mm"]["right"] is None and ch["deviation_h_pd"] is None
    assert ch["nystagmus_hz"]["right"] is None and not ch["nystagmus"]["right"]
    assert ch["nystagmus_absolute"] == {"right": True, "left": True}  # the case's own detection, kept aside


def test_changes_detects_an_oscillation_of_the_gaze_change_only():
    n = 90
    t = np.arange(n) / 30.0
    base = _table(n)
    case = _table(n)
    drift = 10.0 * np.sin(2 * np.pi * 0.4 * t)  # natural slow gaze shifts, in both videos
    for name in ("right", "left"):
        base[f"{name}_gaze_yaw_deg"] = drift.copy()
        case[f"{name}_gaze_yaw_deg"] = drift + 2.5 * np.sin(2 * np.pi * 4.0 * t)
    case["left_gaze_yaw_deg"] = drift + 0.2 * np.sin(2 * np.pi * 4.0 * t)  # below 2 deg peak to peak
    ch = changes(case, base, _summary(False))
    assert ch["nystagmus"] == {"right": True, "left": False}
    assert ch["nystagmus_hz"]["right"] == pytest.approx(4.0, abs=0.1)
    assert diagnose(ch)["nystagmus"] == {"right": True, "left": False}


def test_truth_labels():
    assert truth_labels(None) == {"strabismus": False, "nystagmus": {"right": False, "left": False},
                                  "ptosis": {"right": False, "left": False},
                                  "retraction": {"right": False, "left": False}}
    t = truth_labels({"name": "ptosis", "eye": "left"})
    assert t["ptosis"] == {"right": False, "left": True} and not t["strabismus"]
    assert truth_labels({"name": "nystagmus"})["nystagmus"] == {"right": True, "left": True}
    assert truth_labels({"name": "strabismus", "eye": "right"})["strabismus"]


def _truth(name: str, n: int = 40, **cond) -> dict:
    z = np.zeros((n, 2))
    yaw, pitch, lid = z.copy(), z.copy(), z.copy()
    if name == "strabismus":
        yaw[:, 1] = -15.0
    elif name == "ptosis":
        lid[:, 0] = -2.0
    elif name == "nystagmus":
        w = 3.0 * np.sin(2 * np.pi * 4.0 * np.arange(n) / 30.0)
        yaw[:] = w[:, None]
    return {"condition": {"name": name, **cond}, "frames_shown": n,
            "per_frame": {"shown": [True] * n, "gaze_yaw_offset_deg": yaw.tolist(), "gaze_pitch_offset_deg": pitch.tolist(),
                          "upper_lid_offset_mm": lid.tolist()}}


def test_case_errors_strabismus_and_ptosis():
    base = _table(yaw=(2.0, -2.0))
    truth = _truth("strabismus", eye="left", axis="horizontal")
    case_o = _table(yaw=(2.0, -15.0))  # reads 13 deg of the 15
    case_m = _table(yaw=(2.0, -12.0))  # reads 10 deg
    e = case_errors(truth, case_o, base, _summary(False), case_m, base, _summary(False))
    pd15 = 100 * math.tan(math.radians(15.0))
    assert e["truth"] == pytest.approx(pd15, abs=0.01)
    assert e["abs_error_original"] == pytest.approx(pd15 - 100 * math.tan(math.radians(13.0)), abs=0.02)
    assert e["abs_error_mask"] == pytest.approx(pd15 - 100 * math.tan(math.radians(10.0)), abs=0.02)
    truth = _truth("ptosis", eye="right")
    e = case_errors(truth, _table(mrd1=(2.5, 4.0)), _table(), _summary(False),
                    _table(mrd1=(3.0, 4.0)), _table(), _summary(False))
    assert e["truth"] == pytest.approx(-2.0)
    assert e["abs_error_original"] == pytest.approx(0.5)
    assert e["abs_error_mask"] == pytest.approx(1.0)


def test_case_errors_nystagmus_gain():
    n = 60
    truth = _truth("nystagmus", n=n, frequency_hz=4.0, amplitude_pp_deg=6.0, axis="horizontal")
    w = np.asarray(truth["per_frame"]["gaze_yaw_offset_deg"])[:, 0]
    base = _table(n)
    case_o = _table(n)
    case_m = _table(n)
    for name in ("right", "left"):
        case_o[f"{name}_gaze_yaw_deg"] = 0.9 * w
        case_m[f"{name}_gaze_yaw_deg"] = 0.5 * w
    e = case_errors(truth, case_o, base, _summary(False), case_m, base, _summary(False))
    assert e["abs_error_original"] < 0.1 and e["abs_error_mask"] < 0.1  # Hz
    assert e["amplitude_original_pp_deg"] == pytest.approx(5.4)
    assert e["amplitude_abs_error_mask_deg"] == pytest.approx(3.0)


def test_case_errors_nystagmus_missed_has_no_frequency():
    # the mask shows only a 1.4 deg peak-to-peak rhythm (under the detector's 2 deg): a miss, not a
    # frequency; its strongest peak is kept apart
    n = 60
    truth = _truth("nystagmus", n=n, frequency_hz=4.0, amplitude_pp_deg=6.0, axis="horizontal")
    w = np.asarray(truth["per_frame"]["gaze_yaw_offset_deg"])[:, 0]
    base = _table(n)
    case_o, case_m = _table(n), _table(n)
    for name in ("right", "left"):
        case_o[f"{name}_gaze_yaw_deg"] = w.copy()
        case_m[f"{name}_gaze_yaw_deg"] = 0.23 * w
    e = case_errors(truth, case_o, base, _summary(False), case_m, base, _summary(False))
    assert e["measured_original"] == pytest.approx(4.0, abs=0.1)
    assert e["abs_error_original"] == pytest.approx(e["peak_abs_error_original"])
    assert e["measured_mask"] is None and e["abs_error_mask"] is None
    assert e["peak_abs_error_mask"] < 0.1  # the sub-threshold peak is still at 4 Hz


def test_aggregate_error_bounds():
    truth = truth_labels({"name": "nystagmus"})
    rows = [{"condition": "nystagmus", "truth_diagnosis": truth, "diagnosis_original": truth, "diagnosis_mask": truth,
             "errors": {"condition": "nystagmus", "abs_error_original": o, "abs_error_mask": m,
                        "peak_abs_error_original": o, "peak_abs_error_mask": 5.0 if m is None else m}}
            for o, m in ((0.1, 0.2), (0.5, None), (0.0, 0.3))]
    nys = aggregate(rows)["nystagmus"]
    assert nys["error_bound"] == pytest.approx(0.3)
    assert (nys["cases_read_original"], nys["within_bound_original"]) == (3, 2)
    assert (nys["cases_read_mask"], nys["within_bound_mask"]) == (2, 2)  # 0.3 is within
    assert nys["abs_error_mask"] == pytest.approx(0.25)
    assert nys["abs_error_incl_missed_mask"] == pytest.approx(5.5 / 3, abs=1e-3)
    assert "error_bound" not in aggregate(rows)["ptosis"]


def test_bootstrap_ci95_known_answers():
    # raters agree on every item: kappa is 1 in every resample where it is defined
    agree = [([x, not x], [x, not x], [x, not x]) for x in [True] * 5 + [False] * 15]
    assert bootstrap_ci95(agree, lambda o, m, t: cohen_kappa(o, m)) == [1.0, 1.0]
    # one label for everything: kappa undefined everywhere -> no interval
    same = [([False], [False], [False])] * 20
    assert bootstrap_ci95(same, lambda o, m, t: cohen_kappa(o, m)) is None
    # the mask wrong on 5 of 20 cases: gap -0.25; the interval brackets it, and the binomial SE
    # (sqrt(0.25 * 0.75 / 20) = 0.097) sets its width (~ +-1.96 SE)
    cases = [([True], [i >= 5], [True]) for i in range(20)]
    lo, hi = bootstrap_ci95(cases, lambda o, m, t: sum(a == b for a, b in zip(m, t)) / len(t)
                            - sum(a == b for a, b in zip(o, t)) / len(t))
    assert lo < -0.25 < hi
    assert 0.3 < hi - lo < 0.5
    assert bootstrap_ci95([], lambda o, m, t: 0.0) is None


def test_aggregate_layout_and_values():
    neg = truth_labels(None)
    pos = truth_labels({"name": "ptosis", "eye": "right"})
    yes = {**neg, "ptosis": {"right": True, "left": True}}
    rows = [
        # a control is 'no' under relative rules by construction: not rated (this one would count as wrong)
        {"condition": "control", "truth_diagnosis": neg, "diagnosis_original": yes, "diagnosis_mask": yes, "errors": None},
        {"condition": "ptosis", "truth_diagnosis": pos, "diagnosis_original": pos, "diagnosis_mask": neg,
         "errors": {"condition": "ptosis", "abs_error_original": 0.2, "abs_error_mask": 1.0}},
        {"condition": "ptosis", "truth_diagnosis": pos, "diagnosis_original": pos, "diagnosis_mask": pos,
         "errors": {"condition": "ptosis", "abs_error_original": 0.4, "abs_error_mask": None}},
    ]
    agg = aggregate(rows)
    assert set(agg) == set(CONDITIONS)
    for c in agg.values():
        assert {"kappa", "accuracy_original", "accuracy_mask", "abs_error_original", "abs_error_mask", "unit"} <= set(c)
    p = agg["ptosis"]
    assert p["items"] == 4 and p["positives_truth"] == 2
    # items (case x eye): original yes, no, yes, no vs mask no, no, yes, no
    assert p["kappa"] == pytest.approx(cohen_kappa([1, 0, 1, 0], [0, 0, 1, 0]), abs=1e-3)
    assert p["kappa"] == pytest.approx(0.5)
    assert p["accuracy_original"] == pytest.approx(1.0)
    assert p["accuracy_mask"] == pytest.approx(3 / 4)
    assert p["abs_error_original"] == pytest.approx(0.3)
    assert p["abs_error_mask"] == pytest.approx(1.0)
    lo, hi = p["accuracy_gap_ci95"]
    assert lo <= -0.25 <= hi <= 0.0
    assert agg["strabismus"]["kappa"] is None  # nobody says yes: undefined, not 1
    assert agg["strabismus"]["items"] == 2
    with_controls = aggregate([{**r, "absolute_diagnosis_original": r["diagnosis_original"],
                                "absolute_diagnosis_mask": r["diagnosis_mask"]} for r in rows],
                              prefix="absolute_", controls=True)
    assert with_controls["ptosis"]["items"] == 6
    assert with_controls["ptosis"]["accuracy_original"] == pytest.approx(4 / 6, abs=1e-3)


def test_absolute_diagnosis_from_metrics_flags():
    flags = {"horizontal_deviation": "none", "vertical_deviation": "not measurable", "nystagmus_right": False,
             "nystagmus_left": True, "ptosis_right": None, "ptosis_left": True, "lid_retraction_right": True,
             "lid_retraction_left": False}
    d = absolute_diagnosis(flags)
    assert d == {"strabismus": False, "nystagmus": {"right": False, "left": True},
                 "ptosis": {"right": False, "left": True}, "retraction": {"right": True, "left": False}}
    assert absolute_diagnosis({**flags, "horizontal_deviation": "eso"})["strabismus"]


# ---------------------------------------------------------------------------------------- grid
def test_clip_grid_specs_parse_and_cover_every_condition():
    seen: dict[str, set] = {c: set() for c in CONDITIONS}
    for k in range(6):
        specs = clip_grid(k)
        assert specs[0] is None  # the control comes first
        for spec in specs[1:]:
            cond = parse_condition(spec)  # every spec is valid
            key = {"strabismus": lambda c: (c.direction, c.deg), "nystagmus": lambda c: (c.hz, c.wave),
                   "ptosis": lambda c: c.mm, "retraction": lambda c: c.mm}[cond.name]
            seen[cond.name].add(key(cond))
        names = [s.split(":")[0] for s in specs[1:]]
        assert all(names.count(c) >= 2 for c in CONDITIONS)  # two sizes of each condition per clip
    assert {d for d, _ in seen["strabismus"]} >= {"eso", "exo", "hyper"}
    assert {deg for _, deg in seen["strabismus"]} == {8.0, 15.0}
    assert seen["nystagmus"] >= {(3.0, "pendular"), (5.0, "jerk"), (5.0, "pendular"), (3.0, "jerk")}
    assert seen["ptosis"] == {1.5, 3.0} and seen["retraction"] == {1.5, 2.5}


def test_build_grid_counts_and_max_cases():
    clips = ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"]
    full = build_grid(clips)
    assert len(full) == 5 * len(clip_grid(0)) >= 40
    assert len({c.case_id for c in full}) == len(full)
    cut = build_grid(clips, max_cases=7)
    assert len(cut) == 7
    assert {c.clip for c in cut if c.spec is None} == set(clips)  # every clip keeps its control first
    assert Case("x.mp4", None).condition == "control"
    assert Case("x.mp4", "ptosis:eye=left,mm=3").case_id == "x__ptosis_eye_left_mm_3"


# ---------------------------------------------------------------------------------------- pieces
def _clip_table(n: int, tracked=None, open_both=None, gaze_sd=None) -> dict:
    rng = np.random.default_rng(0)
    t = {"time_s": np.arange(n) / 30.0, "tracked": np.ones(n, bool) if tracked is None else tracked}
    ok = np.ones(n, bool) if open_both is None else open_both
    sd = np.ones(n) if gaze_sd is None else gaze_sd
    for name in ("right", "left"):
        t[f"{name}_open"] = ok.copy()
        t[f"{name}_gaze_yaw_deg"] = rng.normal(0, 1, n) * sd
        t[f"{name}_gaze_pitch_deg"] = rng.normal(0, 1, n) * sd
    return t


def test_choose_piece_prefers_open_steady_tracked_windows():
    n = 300  # 10 s
    open_both = np.ones(n, bool)
    open_both[:120] = False  # eyes closed for 4 s
    sd = np.full(n, 5.0)
    sd[210:300] = 0.5  # steady gaze in the last 3 s
    c = choose_piece(_clip_table(n, open_both=open_both, gaze_sd=sd), seconds=3.0)
    assert c["frames"] == 90 and c["start_frame"] == 210 and c["open_fraction"] == 1.0
    assert c["start_s"] == pytest.approx(7.0)


def test_choose_piece_second_piece_does_not_overlap_the_first():
    n = 300
    sd = np.full(n, 5.0)
    sd[210:300] = 0.5  # steadiest: the last 3 s
    sd[30:120] = 1.0  # next: 1-4 s
    table = _clip_table(n, gaze_sd=sd)
    first = choose_piece(table, seconds=3.0)
    second = choose_piece(table, seconds=3.0, taken=[first])
    assert first["start_frame"] == 210
    assert second["start_frame"] + second["frames"] <= 210 and second["start_frame"] == 30
    # a 4 s clip holds one 3 s piece and no second one
    short = _clip_table(120)
    one = choose_piece(short, seconds=3.0)
    assert "skip" in choose_piece(short, seconds=3.0, taken=[one])


def test_piece_names():
    from pathlib import Path

    assert piece_name(Path("/v/d10.mp4"), 0) == "d10.mp4"
    assert piece_name(Path("/v/d10.mp4"), 1) == "d10-piece2.mp4"
    assert Case(piece_name(Path("d10.mp4"), 1), None).case_id == "d10-piece2__control"


def test_choose_piece_short_runs_and_skips():
    n = 150
    tracked = np.zeros(n, bool)
    tracked[10:80] = True  # a 2.33 s tracked run: the piece shrinks to it
    c = choose_piece(_clip_table(n, tracked=tracked), seconds=3.0)
    assert c["start_frame"] == 10 and c["frames"] == 70
    tracked[10:50] = False  # only 1 s left
    assert "skip" in choose_piece(_clip_table(n, tracked=tracked), seconds=3.0)
    closed = np.zeros(n, bool)
    assert "skip" in choose_piece(_clip_table(n, open_both=closed), seconds=3.0)
