"""`harness compare`'s hierarchical paired bootstrap on hand-built runs, against exact enumeration."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.core.runs import Run
from harness.evaluation.compare import Pair, compare_table, level_table, render
from tests.harness.evaluation.test_metrics import exact_hierarchical, exact_quantile


def record(success: bool, p: float = 0.5) -> dict:
    """Returns an episode record with one parsed foresight turn writing `p`."""
    turn = {
        "parsed": {"plan": ["a"], "rollout": ["o"], "p": p, "thought": ""},
        "actual": ["o"],
        "q_ref": 0.5,
        "q_star": 1.0,
        "output": "",
        "error": None,
    }
    return {"success": success, "heldout": False, "turns": [turn], "candidates": [], "p_first": None}


def pairs(method: list[list[bool]], baseline: list[list[bool]]) -> list[Pair]:
    """Returns one Pair per seed (seed = list index) from per-seed success lists."""
    return [
        Pair("t", seed, Run(Path("a"), {}, [record(s) for s in a], {}), Run(Path("b"), {}, [record(s) for s in b], {}))
        for seed, (a, b) in enumerate(zip(method, baseline))
    ]


def row_of(table, metric: str = "success") -> dict:
    return table[table["metric"] == metric].iloc[0].to_dict()


def test_seed_variance_enters_the_ci() -> None:
    # Within each seed both methods' episodes are alike, so an episode-only bootstrap gives the point
    # 1/3 as its CI. Per seed the difference is 1, 0, 0: the mean of 3 seeds drawn with replacement
    # is k/3 with k ~ Binomial(3, 1/3): P = 8/27, 12/27, 6/27, 1/27. Q(0.025) = 0 (F(0) = 0.30);
    # F(2/3) = 26/27 = 0.963 < 0.975, so Q(0.975) = 1.
    table = compare_table(pairs([[True] * 4] * 3, [[False] * 4, [True] * 4, [True] * 4]), (True, True), 1)
    row = row_of(table)
    assert row["diff"] == pytest.approx(1 / 3)
    assert (row["ci_low"], row["ci_high"]) == (0.0, 1.0)
    # d* <= 0 in the 8/27 of resamples that miss seed 0: p = 2 * (1 + B * 8/27) / (B + 1), about 0.59.
    assert row["p_value"] == pytest.approx(2 * 8 / 27, abs=0.03)
    assert (row["seeds"], row["episodes"], row["n"], row["resampled"]) == (3, 12, "3 x 4", "seeds, then episodes")


def test_compare_ci_against_exact_enumeration() -> None:
    # 2 seeds x 2 episodes, success differences 1, 0 | 0, -1: 64 equally likely resamples.
    method, baseline = [[True, True], [True, False]], [[False, True], [True, True]]
    dist = exact_hierarchical([[Fraction(int(a) - int(b)) for a, b in zip(m, s)] for m, s in zip(method, baseline)])
    b = 200_000
    cdf = np.cumsum([float(dist[x]) for x in sorted(dist)])
    # The CI levels are far from every jump of the exact CDF, so the Monte Carlo quantile is the exact atom.
    for q in (0.025, 0.975):
        assert np.min(np.abs(cdf - q)) > 10 * math.sqrt(q * (1 - q) / b)
    row = row_of(compare_table(pairs(method, baseline), (True, True), 1, n_resamples=b))
    exact = (float(exact_quantile(dist, 0.025)), float(exact_quantile(dist, 0.975)))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(exact, abs=1e-12)
    # Exact two-sided p: both tails (F(0) and 1 - F(0-)) against the Monte Carlo p within 0.01.
    below = float(sum(p for x, p in dist.items() if x <= 0))
    above = float(sum(p for x, p in dist.items() if x >= 0))
    assert row["p_value"] == pytest.approx(min(1.0, 2 * min(below, above)), abs=0.01)


def test_one_seed_says_it_carries_no_seed_variance() -> None:
    table = compare_table(pairs([[True, True, False]], [[False, False, False]]), (True, True), 1, n_resamples=500)
    row = row_of(table)
    assert row["n"] == "1 x 3" and row["resampled"] == "episodes of 1 seed (no seed variance)"
    # Every resample has d* >= 0 and some have d* <= 0 (both successes missed): p stays a bootstrap p.
    assert 0 < row["p_value"] <= 1
    text = render(table, "table", "m", "b")
    assert "n = S x E" in text and "1 x 3" in text and "p_value" in text


def test_level_table_rows_carry_p_and_n() -> None:
    table = level_table(pairs([[True, True], [True, True]], [[True, True], [True, True]]), True, 1, bar=0.5)
    row = row_of(table)
    # Every resample's success is 1.0: the CI is the point 0.5 and every d* > 0, so p = 2 / (B + 1).
    assert (row["diff"], row["ci_low"], row["ci_high"]) == (0.5, 0.5, 0.5)
    assert row["p_value"] == pytest.approx(2 / 10_001) and row["n"] == "2 x 2"


def test_resamples_drawn_in_chunks_give_the_same_answer(monkeypatch) -> None:
    """Drawn one resample at a time (12 episodes, 12 counts per chunk), the seed-variance case keeps its exact CI."""
    monkeypatch.setattr("harness.evaluation.compare.CHUNK_CELLS", 12)
    runs = pairs([[True] * 4] * 3, [[False] * 4, [True] * 4, [True] * 4])
    row = row_of(compare_table(runs, (True, True), 1, n_resamples=3000))
    assert (row["ci_low"], row["ci_high"]) == (0.0, 1.0)
    assert row["p_value"] == pytest.approx(2 * 8 / 27, abs=0.05)
