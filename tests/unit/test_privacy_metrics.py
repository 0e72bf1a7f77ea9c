"""Re-identification metrics on hand-made embeddings and distances with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from digital_mask.privacy import (
    TAR_KEY,
    distance_matrix,
    pair_auc,
    pair_auc_difference,
    rank_k_rate,
    score_reidentification,
    tar_at_far,
)

GALLERY_LABELS = np.array(["ann", "bob", "cy"])
# Gallery: one unit vector per identity.
GALLERY = np.eye(3)
# Probes with known ranks of their own identity:
#   ann near ann (rank 1); bob nearest cy, then bob (rank 2); cy nearest ann, then bob, then cy (rank 3).
PROBES = np.array([
    [0.9, 0.1, 0.0],
    [0.0, 0.4, 0.6],
    [0.7, 0.5, 0.2],
])
PROBE_LABELS = np.array(["ann", "bob", "cy"])


def test_distance_matrix_is_euclidean():
    d = distance_matrix(PROBES, GALLERY)
    assert d.shape == (3, 3)
    expected = np.array([[np.linalg.norm(p - g) for g in GALLERY] for p in PROBES])
    np.testing.assert_allclose(d, expected, rtol=0, atol=1e-12)
    assert distance_matrix(GALLERY, GALLERY)[1, 1] == 0.0  # exact zero: ties stay ties


@pytest.mark.parametrize(("k", "expected"), [(1, 1 / 3), (2, 2 / 3), (3, 1.0), (5, 1.0)])
def test_rank_k_known_answer(k, expected):
    d = distance_matrix(PROBES, GALLERY)
    assert rank_k_rate(d, PROBE_LABELS, GALLERY_LABELS, k) == pytest.approx(expected)


def test_ties_count_at_random_in_expectation():
    # Every probe at the same distance from every gallery entry (e.g. identical blank outputs).
    d = np.ones((4, 4))
    labels = np.arange(4)
    assert rank_k_rate(d, labels, labels, 1) == pytest.approx(0.25)
    assert rank_k_rate(d, labels, labels, 2) == pytest.approx(0.5)
    # One closer impostor, true entry tied with one other: rank-1 0, rank-2 1/2, rank-3 1.
    row = np.array([[0.5, 1.0, 1.0, 2.0]])
    assert rank_k_rate(row, np.array([1]), labels, 1) == 0.0
    assert rank_k_rate(row, np.array([1]), labels, 2) == pytest.approx(0.5)
    assert rank_k_rate(row, np.array([1]), labels, 3) == 1.0


def test_tar_at_far_known_answer():
    # 4 probes x 2 gallery: genuine distances on the diagonal of ids, 4 impostor pairs.
    labels_g = np.array([0, 1])
    labels_p = np.array([0, 0, 1, 1])
    d = np.array([
        [0.1, 0.5],   # genuine 0.1, impostor 0.5
        [0.6, 0.3],   # genuine 0.6, impostor 0.3
        [0.7, 0.2],   # genuine 0.2, impostor 0.7
        [0.4, 0.9],   # genuine 0.9, impostor 0.4
    ])
    # impostors sorted: 0.3 0.4 0.5 0.7
    # FAR 1e-3 -> no impostor may be accepted -> tau = 0.3 -> genuine below: 0.1, 0.2 -> 0.5
    assert tar_at_far(d, labels_p, labels_g, 1e-3) == pytest.approx(0.5)
    # FAR 0.5 -> 2 impostors allowed -> tau = 0.5 (accept 0.3, 0.4) -> genuine below: 0.1, 0.2 -> 0.5
    assert tar_at_far(d, labels_p, labels_g, 0.5) == pytest.approx(0.5)
    # FAR 0.75 -> 3 allowed -> tau = 0.7 -> 0.1, 0.6, 0.2 -> 0.75
    assert tar_at_far(d, labels_p, labels_g, 0.75) == pytest.approx(0.75)
    # FAR 1 -> everything accepted
    assert tar_at_far(d, labels_p, labels_g, 1.0) == 1.0


def test_score_has_the_benchmark_keys():
    d = distance_matrix(PROBES, GALLERY)
    scores = score_reidentification(d, PROBE_LABELS, GALLERY_LABELS)
    assert set(scores) == {"rank1", "rank5", TAR_KEY} and TAR_KEY == "tar_at_far_1e-3"
    assert scores["rank1"] == pytest.approx(1 / 3) and scores["rank5"] == 1.0
    # perfect separation: every genuine pair closer than every impostor
    assert score_reidentification(distance_matrix(GALLERY, GALLERY), GALLERY_LABELS, GALLERY_LABELS) == {
        "rank1": 1.0, "rank5": 1.0, TAR_KEY: 1.0}


def test_pair_auc_known_answers():
    labels = np.array([0, 0, 1, 1])
    # Perfect separation: genuine pairs at 1, impostor pairs at 2.
    d = np.where(labels[:, None] == labels[None, :], 1.0, 2.0)
    assert pair_auc(d, labels)[0] == 1.0
    assert pair_auc(2.0 - d + 1.0, labels)[0] == 0.0  # every genuine pair the farthest
    assert pair_auc(np.ones((4, 4)), labels)[0] == 0.5  # all tied: chance
    # By hand: the genuine pair (0, 1) at 0.3, (2, 3) at 0.6; impostors at 0.2, 0.5, 0.6, 0.9.
    d = np.array([
        [0.0, 0.3, 0.2, 0.5],
        [0.3, 0.0, 0.6, 0.9],
        [0.2, 0.6, 0.0, 0.6],
        [0.5, 0.9, 0.6, 0.0],
    ])
    # 0.3 beats 0.5, 0.6, 0.9 (3 of 4); 0.6 beats 0.9 and ties 0.6 (1.5 of 4): (3 + 1.5) / 8
    assert pair_auc(d, labels)[0] == pytest.approx(4.5 / 8)


def test_pair_auc_interval_resamples_identities():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(30), 4)
    emb = rng.normal(size=(120, 8)) + 0.8 * rng.normal(size=(30, 8))[labels]  # some identity signal
    d = distance_matrix(emb, emb)
    auc, (lo, hi) = pair_auc(d, labels, n_boot=300, seed=3)
    assert 0.5 < lo < auc < hi < 1.0
    assert pair_auc(d, labels, n_boot=300, seed=3)[1] == (lo, hi)  # seeded: reproducible
    # No identity at all: the interval holds chance.
    noise = distance_matrix(rng.normal(size=(120, 8)), rng.normal(size=(120, 8)))
    noise = (noise + noise.T) / 2
    auc0, (lo0, hi0) = pair_auc(noise, labels, n_boot=300)
    assert lo0 < 0.5 < hi0 and abs(auc0 - 0.5) < 0.05
    with pytest.raises(ValueError, match="two or more"):
        pair_auc(np.ones((3, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(M, M\)"):
        pair_auc(np.ones((3, 4)), np.array([0, 0, 1]))


def test_pair_auc_difference_is_paired():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(30), 4)
    people = rng.normal(size=(30, 8))[labels]
    weak = distance_matrix(*(2 * [rng.normal(size=(120, 8)) + 0.5 * people]))
    strong = distance_matrix(*(2 * [rng.normal(size=(120, 8)) + 1.5 * people]))
    assert pair_auc_difference(weak, weak, labels, n_boot=200) == (0.0, (0.0, 0.0))  # same: exactly 0
    diff, (lo, hi) = pair_auc_difference(strong, weak, labels, n_boot=200)
    assert diff == pytest.approx(pair_auc(strong, labels)[0] - pair_auc(weak, labels)[0])
    assert 0.0 < lo < diff < hi
    with pytest.raises(ValueError, match="differ in shape"):
        pair_auc_difference(weak, weak[:-1, :-1], labels)


def test_bad_inputs():
    d = distance_matrix(PROBES, GALLERY)
    with pytest.raises(ValueError, match="unique"):
        rank_k_rate(d, PROBE_LABELS, np.array(["ann", "ann", "cy"]), 1)
    with pytest.raises(ValueError, match="missing from the gallery"):
        rank_k_rate(d, np.array(["ann", "bob", "dee"]), GALLERY_LABELS, 1)
    with pytest.raises(ValueError, match=r"\(P, G\)"):
        rank_k_rate(d[:2], PROBE_LABELS, GALLERY_LABELS, 1)
    with pytest.raises(ValueError, match="k must be"):
        rank_k_rate(d, PROBE_LABELS, GALLERY_LABELS, 0)
    with pytest.raises(ValueError, match="far must be"):
        tar_at_far(d, PROBE_LABELS, GALLERY_LABELS, 0.0)
    with pytest.raises(ValueError, match=r"\(P, D\)"):
        distance_matrix(PROBES, np.eye(4))
