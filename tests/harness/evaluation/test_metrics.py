"""Metrics against hand-computed numbers, known calibration values and scikit-learn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from harness.evaluation import metrics as metrics_module
from harness.evaluation.metrics import (
    across_seeds,
    auroc,
    bootstrap_ci,
    brier,
    ece,
    fidelity_by_step,
    format_rate,
    mean_or_none,
    paired_bootstrap_diff,
    q_error,
    reliability_bins,
    selection_gain,
    success_summary,
)


def test_ece_by_hand() -> None:
    p = [0.1, 0.15, 0.5, 0.55, 0.9, 0.95]
    y = [0, 1, 1, 1, 1, 0]
    # bin 1: mean p 0.125, accuracy 0.5 -> 0.375; bin 5: 0.525 vs 1.0 -> 0.475; bin 9: 0.925 vs 0.5 -> 0.425
    # each bin weighs 2/6: ECE = (0.375 + 0.475 + 0.425) / 3 = 0.425
    assert ece(p, y) == pytest.approx(0.425)


def test_bin_edges_hold_one_decimal_p_in_their_own_bin() -> None:
    # Each p written as a word 0.0 ... 1.0 starts its bin; 1.0 joins the last bin.
    p = [i / 10 for i in range(11)]
    counts = [b["count"] for b in reliability_bins(p, [0] * 11)]
    assert counts == [1] * 9 + [2]
    assert reliability_bins([1.0], [1])[-1]["mean_p"] == 1.0
    assert reliability_bins([0.0], [1])[0]["accuracy"] == 1.0


def test_reliability_bins_empty_bins_are_none() -> None:
    bins = reliability_bins([0.05, 0.95], [0, 1])
    assert [b["lo"] for b in bins] == pytest.approx([i / 10 for i in range(10)])
    assert bins[3] == {"lo": 0.3, "hi": 0.4, "count": 0, "mean_p": None, "accuracy": None}
    assert bins[0]["mean_p"] == pytest.approx(0.05) and bins[0]["accuracy"] == 0.0


def test_ece_known_values() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    assert ece(p, rng.uniform(size=p.size) < p) < 0.01
    assert ece([0.9] * 50, [0] * 50) == 0.9


def test_brier_by_hand() -> None:
    # (0.9-1)^2 + (0.2-0)^2 + (0.5-1)^2 = 0.01 + 0.04 + 0.25 = 0.30; / 3 = 0.10
    assert brier([0.9, 0.2, 0.5], [1, 0, 1]) == pytest.approx(0.1)


def test_auroc_with_tie_by_hand() -> None:
    # positives 0.8, 0.5; negatives 0.5, 0.2. Pairs: 0.8>0.5, 0.8>0.2, 0.5=0.5 (half), 0.5>0.2
    # = (1 + 1 + 0.5 + 1) / 4 = 0.875
    assert auroc([0.8, 0.5, 0.5, 0.2], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert auroc([0.3, 0.3], [1, 0]) == pytest.approx(0.5)


def test_auroc_undefined_with_one_class() -> None:
    assert auroc([0.2, 0.9], [1, 1]) is None
    assert auroc([], []) is None
    with pytest.raises(ValueError):
        auroc([0.2, 0.9], [1, 0.5])


def test_q_error_by_hand() -> None:
    # |0.7-0.5| + |0.2-0.4| + |1.0-0.9| = 0.2 + 0.2 + 0.1 = 0.5; / 3
    assert q_error([0.7, 0.2, 1.0], [0.5, 0.4, 0.9]) == pytest.approx(0.5 / 3)


def test_fidelity_by_step_blocks_of_different_lengths() -> None:
    blocks = [[True, False, True], [True, True], [False], []]
    # k=1: T, T, F -> 2/3; k=2: F, T -> 1/2; k=3: T -> 1/1; k=4: no block predicted that far
    assert fidelity_by_step(blocks, max_k=4) == pytest.approx([2 / 3, 0.5, 1.0, None])
    # predictions beyond max_k are ignored
    assert fidelity_by_step(blocks, max_k=1) == pytest.approx([2 / 3])
    assert fidelity_by_step([], max_k=2) == [None, None]
    with pytest.raises(ValueError):
        fidelity_by_step(blocks, max_k=0)


def test_selection_gain_by_hand() -> None:
    success = [[1, 0, 0], [0, 1, 1]]
    p = [[0.9, 0.5, 0.2], [0.8, 0.8, 0.1]]
    # point 1: highest p picks outcome 1; random gives 1/3 -> gain 2/3
    # point 2: candidates 0 and 1 tie on 0.8 -> (0 + 1) / 2 = 0.5; random gives 2/3 -> gain -1/6
    # mean: (2/3 - 1/6) / 2 = 0.25
    assert selection_gain(success, p) == pytest.approx(0.25)
    # candidate outcomes may be success probabilities; N may differ between points
    # point 1: 0.6 - 0.4 = 0.2; point 2: 0.1 - (0.1 + 0.5 + 0.3) / 3 = -0.2; mean 0.0
    assert selection_gain([[0.2, 0.6], [0.1, 0.5, 0.3]], [[0.1, 0.7], [1.0, 0.0, 0.5]]) == pytest.approx(0.0)
    assert selection_gain([], []) is None
    with pytest.raises(ValueError):
        selection_gain([[1, 0]], [[0.5]])
    with pytest.raises(ValueError):
        selection_gain([[1, 0]], [])


def test_format_rate_by_hand() -> None:
    # 3 of 4 turns parsed
    assert format_rate([True, True, False, True]) == 0.75
    assert format_rate([]) is None


def test_across_seeds_sample_std() -> None:
    # mean 0.5; deviations -0.3, -0.1, 0.4; squares 0.09 + 0.01 + 0.16 = 0.26; / (3 - 1) = 0.13
    out = across_seeds({2: 0.9, 0: 0.2, 1: 0.4})
    assert out["mean"] == pytest.approx(0.5)
    assert out["std"] == pytest.approx(math.sqrt(0.13))
    assert out["n_seeds"] == 3
    assert list(out["per_seed"].items()) == [(0, 0.2), (1, 0.4), (2, 0.9)]
    assert across_seeds({7: 0.3}) == {"mean": 0.3, "std": 0.0, "n_seeds": 1, "per_seed": {7: 0.3}}
    assert across_seeds({})["mean"] is None


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_against_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 3, size=500)
    y = (rng.uniform(size=500) < p**1.5).astype(int)
    assert brier(p, y) == pytest.approx(brier_score_loss(y, p))
    assert auroc(p, y) == pytest.approx(roc_auc_score(y, p))
    p_tied = np.round(p, 1)  # ties are frequent here
    assert auroc(p_tied, y) == pytest.approx(roc_auc_score(y, p_tied))
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    full = [b for b in reliability_bins(p, y) if b["count"]]
    assert [b["accuracy"] for b in full] == pytest.approx(prob_true)
    assert [b["mean_p"] for b in full] == pytest.approx(prob_pred)
    weights = np.array([b["count"] for b in full]) / len(p)
    assert ece(p, y) == pytest.approx(float(np.sum(weights * np.abs(prob_true - prob_pred))))


def test_mismatched_lengths_raise() -> None:
    for metric in (ece, reliability_bins, brier, auroc, q_error):
        with pytest.raises(ValueError):
            metric([0.1, 0.2], [1])
    with pytest.raises(ValueError):
        paired_bootstrap_diff([1.0, 2.0], [1.0], seed=0)
    with pytest.raises(ValueError):
        ece([1.2], [1])


def test_empty_inputs_give_none() -> None:
    assert ece([], []) is None
    assert brier([], []) is None
    assert q_error([], []) is None
    assert mean_or_none([]) is None
    assert bootstrap_ci([], 0) is None
    assert success_summary([], seed=0) == {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    assert paired_bootstrap_diff([], [], seed=0)["diff"] is None
    assert all(b["count"] == 0 for b in reliability_bins([], []))


def test_bootstrap_ci_deterministic_for_seed() -> None:
    values = np.random.default_rng(5).uniform(size=100)
    assert bootstrap_ci(values, 42) == bootstrap_ci(values, 42)
    assert bootstrap_ci(values, 42) != bootstrap_ci(values, 43)
    assert bootstrap_ci(values, np.random.default_rng(42)) == bootstrap_ci(values, 42)
    low, high = bootstrap_ci(values, 0, stat=np.median)
    assert low < float(np.median(values)) < high


def test_success_summary_is_json_ready() -> None:
    out = success_summary([True, False, True, True], seed=0)
    assert out["mean"] == 0.75 and out["n"] == 4
    assert 0.0 <= out["ci_low"] <= 0.75 <= out["ci_high"] <= 1.0
    json.dumps(out)


def test_paired_bootstrap_diff_known_difference() -> None:
    rng = np.random.default_rng(11)
    b = rng.uniform(size=500)
    a = b + 0.1 + rng.normal(0, 0.05, size=500)
    out = paired_bootstrap_diff(a, b, seed=0)
    assert out["diff"] == pytest.approx(0.1, abs=0.01)
    assert 0 < out["ci_low"] < 0.1 < out["ci_high"]
    assert out["n"] == 500


def test_paired_bootstrap_diff_coverage() -> None:
    rng = np.random.default_rng(2024)
    covered = 0
    for i in range(200):
        b = rng.uniform(size=100)
        a = b + 0.05 + rng.normal(0, 0.3, size=100)
        out = paired_bootstrap_diff(a, b, seed=i, n_resamples=500)
        covered += out["ci_low"] <= 0.05 <= out["ci_high"]
    assert covered / 200 >= 0.9


def test_fidelity_counts_add_over_disjoint_blocks_as_a_bootstrap_needs() -> None:
    a = [[True, False], [False], [True, True, True]]  # the third block's step 3 is past max_k = 2
    b = [[True], [False, True]]
    hits_a, seen_a = metrics_module.fidelity_counts(a, 2)
    hits_b, seen_b = metrics_module.fidelity_counts(b, 2)
    assert hits_a.tolist() == [2.0, 1.0] and seen_a.tolist() == [3.0, 2.0]
    # By hand over a + b: step 1 hits 3 of 5 blocks, step 2 hits 2 of 3 blocks that reached it.
    assert metrics_module.fidelity_from_counts(hits_a + hits_b, seen_a + seen_b) == [3 / 5, 2 / 3]
    assert metrics_module.fidelity_by_step(a + b, 2) == [3 / 5, 2 / 3]
    assert metrics_module.fidelity_from_counts(*metrics_module.fidelity_counts([], 2)) == [None, None]
