"""Metrics against hand-computed numbers, known calibration values and scikit-learn."""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from harness.evaluation import metrics as metrics_module
from harness.evaluation.metrics import (
    auroc,
    auroc_from_levels,
    bootstrap_p_value,
    brier,
    brier_from_levels,
    brier_skill_from_levels,
    ece,
    ece_from_levels,
    fidelity_by_step,
    format_rate,
    hierarchical_weights,
    level_counts,
    mean_or_none,
    murphy_from_levels,
    percentile_ci,
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
        level_counts([0.1, 0.2], [1], [0.1, 0.2])
    with pytest.raises(ValueError):
        ece([1.2], [1])


def test_empty_inputs_give_none() -> None:
    assert ece([], []) is None
    assert brier([], []) is None
    assert q_error([], []) is None
    assert mean_or_none([]) is None
    assert percentile_ci([]) is None and bootstrap_p_value([]) is None
    assert success_summary([], seed=0) == {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    assert all(b["count"] == 0 for b in reliability_bins([], []))


def exact_hierarchical(values_by_seed: list[list[Fraction]]) -> dict[Fraction, Fraction]:
    """Returns the exact distribution {statistic: probability} of the mean under the two-stage bootstrap.

    Every draw of S seeds with replacement (each of S^S sequences has probability S^-S), then for each
    drawn copy every draw of its E episodes with replacement (E^-E each): the statistic is the mean of
    all drawn episodes' values.
    """
    out: dict[Fraction, Fraction] = {}
    s = len(values_by_seed)
    for seeds in itertools.product(range(s), repeat=s):
        per_copy = [list(itertools.product(values_by_seed[k], repeat=len(values_by_seed[k]))) for k in seeds]
        weight = Fraction(1, s**s) * np.prod([Fraction(1, len(c)) for c in per_copy])
        for episodes in itertools.product(*per_copy):
            drawn = [v for copy in episodes for v in copy]
            stat = sum(drawn, Fraction(0)) / len(drawn)
            out[stat] = out.get(stat, Fraction(0)) + weight
    return out


def exact_quantile(dist: dict[Fraction, Fraction], q: float) -> Fraction:
    """Returns Q(q) = the smallest x with F(x) >= q: the definition `percentile_ci` uses."""
    cumulative = Fraction(0)
    for x in sorted(dist):
        cumulative += dist[x]
        if cumulative >= Fraction(q).limit_denominator(10**6):
            return x
    raise AssertionError("q above 1")


def test_hierarchical_bootstrap_against_exact_enumeration() -> None:
    # 2 seeds x 2 episodes: 4 seed draws x 16 episode draws = 64 equally likely resamples.
    by_seed = [[Fraction(3, 10), Fraction(-1, 10)], [Fraction(5, 10), Fraction(9, 10)]]
    dist = exact_hierarchical(by_seed)
    assert sum(dist.values()) == 1
    mean = sum(x * p for x, p in dist.items())
    var = sum((x - mean) ** 2 * p for x, p in dist.items())
    # By hand: mean = mean of all values = 0.4. Var = (Var0(seed means) + mean within-seed Var0 / E) / S
    # = (0.09 + 0.04 / 2) / 2 = 0.055 (seed means 0.1 and 0.7; each seed's values are 0.2 from its mean).
    assert mean == Fraction(2, 5) and var == Fraction(11, 200)
    low, high = exact_quantile(dist, 0.025), exact_quantile(dist, 0.975)
    # The levels sit far from every jump of the exact CDF (atoms are multiples of 1/64), so at this B the
    # Monte Carlo quantile lands on the same atom: tolerance 1e-12 (float printing of the atom).
    cdf = np.cumsum([float(dist[x]) for x in sorted(dist)])
    b = 400_000
    assert np.min(np.abs(cdf - 0.025)) > 10 * math.sqrt(0.025 * 0.975 / b)
    assert np.min(np.abs(cdf - 0.975)) > 10 * math.sqrt(0.025 * 0.975 / b)
    values = np.array([float(v) for seed in by_seed for v in seed])
    weights = hierarchical_weights([0, 0, 1, 1], b, np.random.default_rng(3))
    draws = weights @ values / weights.sum(axis=1)
    assert percentile_ci(draws) == pytest.approx((float(low), float(high)), abs=1e-12)
    # Monte Carlo mean and variance within 5 standard errors of the exact ones.
    assert abs(draws.mean() - 0.4) < 5 * math.sqrt(0.055 / b)
    assert abs(draws.var() - 0.055) < 0.055 * 5 * math.sqrt(2 / b) * 2


def test_hierarchical_weights_draw_whole_seeds_then_episodes() -> None:
    seeds = [7, 7, 7, 9, 9]
    weights = hierarchical_weights(seeds, 2000, np.random.default_rng(0))
    per_seed = np.stack([weights[:, :3].sum(axis=1) / 3, weights[:, 3:].sum(axis=1) / 2], axis=1)
    # Each seed is drawn 0, 1 or 2 times and each drawn copy brings as many episodes as the seed has.
    assert set(per_seed.ravel()) == {0.0, 1.0, 2.0} and np.all(per_seed.sum(axis=1) == 2)
    # One seed: the plain within-seed bootstrap, every resample keeps n episodes.
    one = hierarchical_weights([0] * 4, 500, np.random.default_rng(0))
    assert np.all(one.sum(axis=1) == 4) and one.std() > 0
    # Strata are drawn apart: held-out episodes keep their count within each drawn copy of the seed.
    held = hierarchical_weights([0, 0, 0], 500, np.random.default_rng(0), strata=[True, False, False])
    assert np.all(held[:, 0] == 1) and np.all(held[:, 1:].sum(axis=1) == 2)
    assert np.array_equal(weights, hierarchical_weights(seeds, 2000, np.random.default_rng(0)))
    with pytest.raises(ValueError):
        hierarchical_weights(seeds, 10, np.random.default_rng(0), strata=[True])


def test_percentile_ci_is_the_inverted_cdf_quantile() -> None:
    # 40 draws 0..39: Q(0.025) = smallest x with F(x) >= 0.025 = 1/40 -> 0; Q(0.975) = 39/40 -> 38.
    assert percentile_ci(np.arange(40.0)) == (0.0, 38.0)
    assert percentile_ci([np.nan, 2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError):
        percentile_ci([1.0], level=1.0)


def test_bootstrap_p_value_by_hand() -> None:
    # B = 9 draws, 2 at or below 0, 8 at or above 0 (one is 0): 2 * min(3 / 10, 9 / 10) = 0.6
    draws = [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert bootstrap_p_value(draws) == pytest.approx(0.6)
    # All draws above 0: 2 * (1 + 0) / (B + 1), the smallest p a bootstrap of B draws can give.
    assert bootstrap_p_value([1.0] * 99) == pytest.approx(0.02)
    # Centered draws: capped at 1.
    assert bootstrap_p_value([-1.0, 1.0]) == 1.0


def test_success_summary_is_the_one_seed_bootstrap() -> None:
    successes = [True, False, True, True]
    out = success_summary(successes, seed=0)
    weights = hierarchical_weights([0] * 4, 10_000, np.random.default_rng(0))
    assert (out["ci_low"], out["ci_high"]) == percentile_ci(weights @ np.array([1.0, 0, 1, 1]) / 4)
    assert out["mean"] == 0.75 and out["n"] == 4 and out == success_summary(successes, seed=0)
    json.dumps(out)


def test_success_summary_over_seeds_resamples_them() -> None:
    # Seed 0 solves all 4 episodes, seed 1 none. Over seeds the mean is 0, 1/2 or 1 with probability
    # 1/4, 1/2, 1/4: CI [0, 1]. Pooled as one seed, 8 draws from half successes: far narrower.
    successes = [1.0] * 4 + [0.0] * 4
    assert success_summary(successes, 0, seeds=[0] * 4 + [1] * 4)["ci_low"] == 0.0
    assert success_summary(successes, 0, seeds=[0] * 4 + [1] * 4)["ci_high"] == 1.0
    pooled = success_summary(successes, 0)
    assert 0.0 < pooled["ci_low"] and pooled["ci_high"] < 1.0


def test_one_seed_paired_bootstrap_covers_a_known_difference() -> None:
    rng = np.random.default_rng(2024)
    covered = 0
    for i in range(200):
        b = rng.uniform(size=100)
        d = b + 0.05 + rng.normal(0, 0.3, size=100) - b
        weights = hierarchical_weights([0] * 100, 500, np.random.default_rng(i))
        low, high = percentile_ci(weights @ d / 100)
        covered += low <= 0.05 <= high
    assert covered / 200 >= 0.9


# First turns by hand: p = 0.8, 0.8, 0.2, 0.5 with outcomes 1, 0, 0, 1.
P, Y = [0.8, 0.8, 0.2, 0.5], [1, 0, 0, 1]


def levels_of(p: list[float], y: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    levels = np.unique(p)
    return (levels, *level_counts(p, y, levels))


def test_first_turn_calibration_by_hand() -> None:
    counts = levels_of(P, Y)
    # Brier: (0.04 + 0.64 + 0.04 + 0.25) / 4 = 0.2425; base rate 0.5, constant predictor's Brier 0.25.
    assert brier_from_levels(*counts) == pytest.approx(0.2425)
    assert brier_skill_from_levels(*counts) == pytest.approx(1 - 0.2425 / 0.25)  # 0.03
    # Levels 0.2 (1 turn, 0 hits), 0.5 (1, 1), 0.8 (2, 1).
    # reliability = (0.2^2 + 0.5^2 + 2 * 0.3^2) / 4 = 0.1175; resolution = (0.25 + 0.25 + 0) / 4 = 0.125.
    rel, res, unc = murphy_from_levels(*counts)
    assert (rel, res, unc) == pytest.approx((0.1175, 0.125, 0.25))
    # Pairs (pos, neg): (0.8, 0.8) half, (0.8, 0.2) 1, (0.5, 0.8) 0, (0.5, 0.2) 1 -> 2.5 / 4.
    assert auroc_from_levels(*counts) == pytest.approx(0.625)
    # Bins 2, 5, 8: |0 - 0.2| + |1 - 0.5| + |1 - 1.6| = 1.3; / 4.
    assert ece_from_levels(*counts) == pytest.approx(0.325)
    # Everyone succeeds: no base-rate variance, skill undefined.
    assert np.isnan(brier_skill_from_levels(*levels_of([0.9, 0.9], [1, 1])))
    assert np.isnan(auroc_from_levels(*levels_of([0.9, 0.9], [1, 1])))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_level_counts_give_the_turn_by_turn_metrics_and_the_murphy_identity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 11, size=300) / 10
    y = (rng.uniform(size=300) < p**1.3).astype(int)
    counts = levels_of(p, y)
    assert brier_from_levels(*counts) == pytest.approx(brier(p, y), abs=1e-12)
    assert auroc_from_levels(*counts) == pytest.approx(auroc(p, y), abs=1e-12)
    assert ece_from_levels(*counts) == pytest.approx(ece(p, y), abs=1e-12)
    rel, res, unc = murphy_from_levels(*counts)
    assert rel - res + unc == pytest.approx(brier(p, y), abs=1e-12)
    assert unc == pytest.approx(y.mean() * (1 - y.mean()))
    # Counts are sums: a batch of weightings (B, L) gives B values at once, each the weighted metric.
    weights = np.stack([counts[1], 2 * counts[1]])
    assert brier_from_levels(counts[0], weights, np.stack([counts[2], 2 * counts[2]])) == pytest.approx(
        [brier(p, y)] * 2
    )


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
