"""Metrics (docs/design.md#metrics) as small pure functions over arrays.

Every function returns plain Python values (float, int, list, dict, None) so results go straight
into JSON. Where a metric is undefined (empty input, one class for AUROC) it returns None, never
NaN. Mismatched lengths raise ValueError. Callers drop turns without a parsed p before calling;
a missing p is not a value here. Randomness comes only from an explicit seed or Generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from harness.core.streams import stream

ArrayLike = Sequence[float] | Sequence[bool] | np.ndarray


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _pair(a: ArrayLike, b: ArrayLike, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _vector(a, names[0]), _vector(b, names[1])
    if len(x) != len(y):
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {len(x)} != {len(y)}")
    return x, y


def _probabilities(p: np.ndarray) -> np.ndarray:
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("p must lie in [0, 1]")
    return p


def mean_or_none(values: ArrayLike) -> float | None:
    """Return the mean of `values`, or None when there are none: sum(v) / n."""
    arr = _vector(values, "values")
    return float(arr.mean()) if len(arr) else None


RESAMPLES = 10_000
"""Bootstrap resamples B by default: at B = 10,000 a 95% percentile bound moves by well under 0.01."""


def hierarchical_weights(
    seeds: Sequence[int], n_resamples: int, rng: np.random.Generator, strata: Sequence[bool] | None = None
) -> np.ndarray:
    """Returns a (B, n) array of counts: how often each of n episodes enters each of B bootstrap resamples.

    Two stages, as in a hierarchical (cluster) bootstrap: draw S seeds with replacement from the S
    distinct labels in `seeds` (c_s = times seed s is drawn, (c_1..c_S) ~ Multinomial(S, 1/S)); then
    each drawn copy of seed s draws its E_s episodes with replacement, so episode e of seed s gets
    count w_e ~ Multinomial(c_s * E_s, 1/E_s) over that seed's episodes (a sum of c_s independent
    draws). With `strata` (one flag per episode) each seed's episodes are drawn apart within each
    stratum, keeping its size. Applying one array of counts to two methods pairs them by episode.
    With one seed this is the plain within-seed bootstrap: no seed variance can enter.
    """
    labels = np.asarray(seeds)
    flags = np.zeros(len(labels), dtype=bool) if strata is None else np.asarray(strata, dtype=bool)
    if len(flags) != len(labels):
        raise ValueError(f"{len(labels)} seeds but {len(flags)} strata flags")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    weights = np.zeros((n_resamples, len(labels)))
    distinct = np.unique(labels)
    if not len(distinct):
        return weights
    drawn = rng.multinomial(len(distinct), np.full(len(distinct), 1 / len(distinct)), size=n_resamples)
    for s, label in enumerate(distinct):
        for flag in (False, True):
            (members,) = np.nonzero((labels == label) & (flags == flag))
            if len(members):
                size = len(members)
                weights[:, members] = rng.multinomial(drawn[:, s] * size, np.full(size, 1 / size))
    return weights


def percentile_ci(draws: ArrayLike, level: float = 0.95) -> tuple[float, float] | None:
    """Returns the percentile interval (Q((1 - level)/2), Q((1 + level)/2)) of bootstrap draws; None if none.

    Q(q) = the smallest draw x with F(x) >= q, F the draws' empirical CDF (numpy's "inverted_cdf"):
    the same definition as the exact quantile of a discrete distribution, so it converges to it as
    B grows. NaN draws (a resample where the statistic is undefined) are dropped first.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    arr = _vector(draws, "draws")
    arr = arr[~np.isnan(arr)]
    if not len(arr):
        return None
    # (1 - 0.95) / 2 is 0.025000000000000022 in floats: rounded, F(x) = 0.025 exactly still counts as reached.
    qs = [round((1 - level) / 2, 12), round((1 + level) / 2, 12)]
    low, high = np.quantile(arr, qs, method="inverted_cdf")
    return float(low), float(high)


def bootstrap_p_value(draws: ArrayLike) -> float | None:
    """Returns the two-sided bootstrap p of a difference from its B draws d*; None without draws.

    p = min(1, 2 * min((1 + #{d* <= 0}) / (B + 1), (1 + #{d* >= 0}) / (B + 1))). NaN draws are dropped.
    """
    arr = _vector(draws, "draws")
    arr = arr[~np.isnan(arr)]
    if not len(arr):
        return None
    b = len(arr)
    return float(min(1.0, 2 * min((1 + np.sum(arr <= 0)) / (b + 1), (1 + np.sum(arr >= 0)) / (b + 1))))


def success_summary(
    successes: ArrayLike, seed: int, n_resamples: int = RESAMPLES, seeds: Sequence[int] | None = None
) -> dict:
    """Returns {"mean", "ci_low", "ci_high", "n"}: success rate sum(s)/n with its 95% bootstrap CI.

    The CI is `hierarchical_weights` with `percentile_ci`: over the training seed of each episode
    (`seeds`), or over one seed (the episodes of one run) by default. `seed` seeds the generator.
    Values are None (and n is 0) when there are no episodes.
    """
    arr = _vector(successes, "successes")
    rng = stream(seed, "bootstrap-success")
    labels = np.zeros(len(arr), dtype=int) if seeds is None else seeds
    weights = hierarchical_weights(labels, n_resamples, rng)
    ci = percentile_ci(weights @ arr / weights.sum(axis=1)) if len(arr) else None
    return {
        "mean": mean_or_none(arr),
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "n": len(arr),
    }


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    # p is written with one decimal; 0.3 * 10 must land in bin 3, so round away float noise first
    # (np.linspace edges would put 0.3, 0.6 and 0.7 one bin too low).
    return np.minimum(np.floor(np.round(p * n_bins, 9)).astype(int), n_bins - 1)


def reliability_bins(p: ArrayLike, outcome: ArrayLike, n_bins: int = 10) -> list[dict]:
    """Return per bin {"lo", "hi", "count", "mean_p", "accuracy"} for a reliability diagram.

    Bin i holds i/B <= p < (i+1)/B; the last bin also holds p = 1.0. mean_p = mean p in the bin,
    accuracy = mean outcome in the bin; both None for an empty bin (so all bins are empty, not
    None, for empty input). Unlike sklearn's calibration_curve, a p exactly on an edge goes up.
    """
    p_arr, y = _pair(p, outcome, ("p", "outcome"))
    _probabilities(p_arr)
    idx = _bin_index(p_arr, n_bins)
    bins = []
    for i in range(n_bins):
        mask = idx == i
        count = int(mask.sum())
        bins.append(
            {
                "lo": i / n_bins,
                "hi": (i + 1) / n_bins,
                "count": count,
                "mean_p": float(p_arr[mask].mean()) if count else None,
                "accuracy": float(y[mask].mean()) if count else None,
            }
        )
    return bins


def ece(p: ArrayLike, outcome: ArrayLike, n_bins: int = 10) -> float | None:
    """Return the expected calibration error; None for empty input.

    ECE = sum over non-empty bins b of (n_b / n) * |mean outcome in b - mean p in b|, with the
    equal-width bins of `reliability_bins` (bin i: i/B <= p < (i+1)/B, last bin also holds 1.0).
    """
    bins = reliability_bins(p, outcome, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return None
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["mean_p"]) for b in bins if b["count"]))


def brier(p: ArrayLike, outcome: ArrayLike) -> float | None:
    """Return the Brier score mean((p - outcome)^2); None for empty input."""
    p_arr, y = _pair(p, outcome, ("p", "outcome"))
    return mean_or_none((p_arr - y) ** 2)


def auroc(p: ArrayLike, outcome: ArrayLike) -> float | None:
    """Return the area under the ROC curve of p as a score for outcome (0.5 = no discrimination).

    Mann-Whitney form: AUROC = P(p_pos > p_neg) + 0.5 * P(p_pos == p_neg)
    = (sum of average ranks of positives - n_pos (n_pos + 1) / 2) / (n_pos * n_neg).
    Outcome must be 0/1. None when empty or when only one class is present.
    """
    p_arr, y = _pair(p, outcome, ("p", "outcome"))
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("outcome must be 0 or 1 for AUROC")
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(p_arr)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def level_counts(p: ArrayLike, outcome: ArrayLike, levels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Returns (n_l, y_l) per value l of `levels`: how many p equal it and how many of those succeeded.

    Every p must be one of `levels` (p is written with one decimal, so 11 values cover it). Counts
    add up over disjoint sets of turns, so a bootstrap weights them per episode instead of recounting.
    """
    p_arr, y = _pair(p, outcome, ("p", "outcome"))
    grid = _vector(levels, "levels")
    index = np.searchsorted(grid, p_arr)
    if len(p_arr) and (np.any(index >= len(grid)) or np.any(grid[np.minimum(index, len(grid) - 1)] != p_arr)):
        raise ValueError("every p must be one of the levels")
    return np.bincount(index, minlength=len(grid)).astype(float), np.bincount(index, y, len(grid))


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Returns num / den, NaN where den is 0 (an undefined metric)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def ece_from_levels(levels: np.ndarray, n: np.ndarray, y: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Returns ECE from per-level counts (last axis = levels), NaN where there are no turns.

    With N = sum(n_l) and the bins of `ece`: ECE = sum_b |sum_{l in b} (y_l - p_l n_l)| / N, which is
    sum_b (n_b / N) |accuracy_b - mean p_b|.
    """
    onehot = (
        np.eye(n_bins)[_bin_index(np.asarray(levels, dtype=float), n_bins)] if len(levels) else np.zeros((0, n_bins))
    )
    return safe_ratio(np.abs((y - levels * n) @ onehot).sum(axis=-1), n.sum(axis=-1))


def brier_from_levels(levels: np.ndarray, n: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Returns the Brier score from per-level counts: sum_l (n_l p_l^2 - 2 p_l y_l + y_l) / N (outcomes 0/1)."""
    return safe_ratio((n * levels**2 - 2 * levels * y + y).sum(axis=-1), n.sum(axis=-1))


def auroc_from_levels(levels: np.ndarray, n: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Returns AUROC from per-level counts (levels ascending); NaN with one class.

    Positives y_l, negatives m_l = n_l - y_l: AUROC = sum_l y_l (sum_{k<l} m_k + m_l / 2) / (P * M),
    the Mann-Whitney form of `auroc` with ties at one level counted half.
    """
    m = n - y
    below = np.cumsum(m, axis=-1) - m
    return safe_ratio((y * (below + m / 2)).sum(axis=-1), y.sum(axis=-1) * m.sum(axis=-1))


def murphy_from_levels(levels: np.ndarray, n: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Returns (reliability, resolution, uncertainty) of the Murphy decomposition over the levels of p.

    With N = sum n_l, ybar_l = y_l / n_l and ybar = sum y_l / N: reliability = sum_l n_l (p_l - ybar_l)^2 / N,
    resolution = sum_l n_l (ybar_l - ybar)^2 / N, uncertainty = ybar (1 - ybar). Because the levels
    are the distinct values of p, Brier = reliability - resolution + uncertainty exactly.
    """
    total = n.sum(axis=-1)
    base = safe_ratio(y.sum(axis=-1), total)
    at = np.nan_to_num(safe_ratio(y, n))
    rel = safe_ratio((n * (levels - at) ** 2).sum(axis=-1), total)
    res = safe_ratio((n * (at - base[..., None]) ** 2).sum(axis=-1), total)
    return rel, res, base * (1 - base)


def brier_skill_from_levels(levels: np.ndarray, n: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Returns 1 - Brier / ybar (1 - ybar): the skill over always writing the base rate ybar of these turns.

    ybar (1 - ybar) is that constant predictor's Brier score; NaN when it is 0 (all or no turns succeeded).
    Above 0 only if p carries information about the outcome.
    """
    return 1 - safe_ratio(brier_from_levels(levels, n, y), murphy_from_levels(levels, n, y)[2])


def q_error(p: ArrayLike, q_star: ArrayLike) -> float | None:
    """Return the Q-error mean(|p - Q*(state, plan)|); None for empty input."""
    p_arr, q = _pair(p, q_star, ("p", "q_star"))
    return mean_or_none(np.abs(p_arr - q))


def fidelity_by_step(hits_per_block: Sequence[Sequence[bool]], max_k: int) -> list[float | None]:
    """Return rollout fidelity at horizon steps k = 1..max_k (list index k - 1).

    fidelity_k = (blocks whose k-th predicted observation equals the actual one) / (blocks with a
    k-th prediction); block j contributes to steps 1..len(hits_per_block[j]) only. None at a step
    no block reached. Predictions past max_k are ignored. A prediction past the episode's end (the
    world gives no k-th observation) is a miss, as in the FC-RL fidelity reward: one definition.
    """
    return fidelity_from_counts(*fidelity_counts(hits_per_block, max_k))


def fidelity_counts(hits_per_block: Sequence[Sequence[bool]], max_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (hits, seen) per horizon step: the numerator and denominator of `fidelity_by_step`.

    Counts add up over disjoint sets of blocks, which is what lets a bootstrap resample records
    without recounting their blocks.
    """
    if max_k < 1:
        raise ValueError(f"max_k must be >= 1, got {max_k}")
    hits, seen = np.zeros(max_k), np.zeros(max_k)
    for block in hits_per_block:
        row = np.asarray(block, dtype=float)[:max_k]
        hits[: len(row)] += row
        seen[: len(row)] += 1
    return hits, seen


def fidelity_from_counts(hits: np.ndarray, seen: np.ndarray) -> list[float | None]:
    """Return hits / seen per horizon step, None where no block reached the step."""
    return [float(h / s) if s else None for h, s in zip(hits, seen)]


def format_rate(parsed_flags: ArrayLike) -> float | None:
    """Return the format rate (turns whose foresight block parsed) / (turns); None for no turns."""
    return mean_or_none(parsed_flags)


def selection_gain(
    success_by_choice: Sequence[Sequence[float]], p_by_choice: Sequence[Sequence[float]]
) -> float | None:
    """Return the selection gain: success choosing among N plans by own p, minus choosing at random.

    For decision point d with candidates c (outcome y_dc, estimate p_dc) and T_d = argmax_c p_dc
    (all candidates tying on the highest p, compared exactly):
    gain = mean over d of [ mean_{c in T_d} y_dc - mean_c y_dc ]. Ties count as a uniform pick
    among the tied. N may vary between decision points. None for no decision points.
    """
    if len(success_by_choice) != len(p_by_choice):
        raise ValueError(f"{len(success_by_choice)} outcome rows but {len(p_by_choice)} p rows")
    gains = []
    for d, (ys, ps) in enumerate(zip(success_by_choice, p_by_choice)):
        y, p = _pair(ys, ps, (f"success_by_choice[{d}]", f"p_by_choice[{d}]"))
        if len(y) == 0:
            raise ValueError(f"decision point {d} has no candidates")
        gains.append(y[p == p.max()].mean() - y.mean())
    return mean_or_none(gains)
