"""Metrics (docs/design.md#metrics) as small pure functions over arrays.

Every function returns plain Python values (float, int, list, dict, None) so results go straight
into JSON. Where a metric is undefined (empty input, one class for AUROC) it returns None, never
NaN. Mismatched lengths raise ValueError. Callers drop turns without a parsed p before calling;
a missing p is not a value here. Randomness comes only from an explicit seed or Generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

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


def bootstrap_ci(
    values: ArrayLike,
    rng_or_seed: np.random.Generator | int,
    n_resamples: int = 2000,
    level: float = 0.95,
    stat: Callable[[np.ndarray], float] = np.mean,
) -> tuple[float, float] | None:
    """Return the percentile bootstrap CI (low, high) of `stat` over a 1-D sample; None if empty.

    Draw n_resamples samples of size n with replacement, compute stat on each, and take the
    (1 - level)/2 and (1 + level)/2 quantiles of those statistics. Same seed, same interval;
    a Generator passed in is advanced.
    """
    arr = _vector(values, "values")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if len(arr) == 0:
        return None
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    idx = rng.integers(0, len(arr), size=(n_resamples, len(arr)))
    stats = np.array([stat(arr[row]) for row in idx], dtype=float)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def success_summary(successes: ArrayLike, seed: int) -> dict:
    """Return {"mean", "ci_low", "ci_high", "n"}: success rate sum(s)/n with its 95% bootstrap CI.

    Values are None (and n is 0) when there are no episodes.
    """
    arr = _vector(successes, "successes")
    ci = bootstrap_ci(arr, seed)
    return {
        "mean": mean_or_none(arr),
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "n": len(arr),
    }


def across_seeds(per_seed: dict[int, float]) -> dict:
    """Return {"mean", "std", "n_seeds", "per_seed"} of one metric over training seeds.

    mean = sum(v) / S; std = sqrt(sum((v - mean)^2) / (S - 1)) (ddof=1), 0.0 for one seed.
    mean and std are None for no seeds; per_seed is sorted by seed.
    """
    values = np.array([per_seed[s] for s in sorted(per_seed)], dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else None)
    return {
        "mean": mean_or_none(values),
        "std": std,
        "n_seeds": len(values),
        "per_seed": {s: float(per_seed[s]) for s in sorted(per_seed)},
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


def paired_bootstrap_diff(a: ArrayLike, b: ArrayLike, seed: int, n_resamples: int = 2000, level: float = 0.95) -> dict:
    """Return {"diff", "ci_low", "ci_high", "n"}: mean(a) - mean(b) with a paired bootstrap CI.

    a[i] and b[i] come from the same task, seed and episode. Resampling pair indices i, the mean
    difference is mean(a[I]) - mean(b[I]) = mean(d[I]) with d = a - b; the CI is the percentile
    interval of that over n_resamples resamples. Values are None (n = 0) for empty input.
    """
    x, y = _pair(a, b, ("a", "b"))
    d = x - y
    ci = bootstrap_ci(d, seed, n_resamples=n_resamples, level=level)
    return {
        "diff": mean_or_none(d),
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "n": len(d),
    }
