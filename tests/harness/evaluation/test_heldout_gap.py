"""C1's within-method comparisons: held-out minus familiar (harness.evaluation.compare), by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.runs import Run
from harness.evaluation.compare import Pair, compare_table, heldout_gap_table, level_table
from harness.evaluation.metrics import bootstrap_p_value as bootstrap_p
from harness.evaluation.scoring import belief_metrics


def record(success: bool, heldout: bool, hits: list[bool], p: float = 0.5) -> dict:
    """Returns an episode record with one foresight turn whose rollout predicts `hits` right or wrong."""
    actual = [f"o{i}" for i in range(len(hits))]
    rollout = [a if h else "wrong" for a, h in zip(actual, hits)]
    turn = {
        "parsed": {"plan": ["a"] * len(hits), "rollout": rollout, "p": p, "thought": ""},
        "actual": actual,
        "q_ref": 0.5,
        "q_star": 1.0,
        "output": "",
        "error": None,
    }
    return {"success": success, "heldout": heldout, "turns": [turn], "candidates": [], "p_first": None}


def pair(records_a: list[dict], records_b: list[dict]) -> Pair:
    return Pair("t", 0, Run(Path("a"), {}, records_a, {}), Run(Path("b"), {}, records_b, {}))


def test_gap_and_difference_in_differences_by_hand() -> None:
    # Method: familiar fidelity@1 = 1.0 (2 of 2), held-out 0.0 (0 of 2): gap -1.0.
    # Baseline on the same episodes: familiar 1.0, held-out 0.5: gap -0.5. Difference in differences: -0.5.
    a = [
        record(True, False, [True]),
        record(True, False, [True]),
        record(False, True, [False]),
        record(False, True, [False]),
    ]
    b = [
        record(True, False, [True]),
        record(True, False, [True]),
        record(False, True, [True]),
        record(False, True, [False]),
    ]
    alone = heldout_gap_table([pair(a, a)], (True, True), 1, against_baseline=False, n_resamples=200)
    row = alone[alone["metric"] == "fidelity@1"].iloc[0]
    assert row["method"] == pytest.approx(-1.0) and row["diff"] == pytest.approx(-1.0) and row["baseline"] is None
    # Every resample keeps both held-out episodes wrong and both familiar ones right: the CI is a point.
    assert row["ci_low"] == pytest.approx(-1.0) and row["ci_high"] == pytest.approx(-1.0)
    assert row["episodes"] == "2 held-out, 2 familiar"
    both = heldout_gap_table([pair(a, b)], (True, True), 1, against_baseline=True, n_resamples=200)
    row = both[both["metric"] == "fidelity@1"].iloc[0]
    assert (row["method"], row["baseline"], row["diff"]) == pytest.approx((-1.0, -0.5, -0.5))
    assert row["ci_low"] <= -0.5 <= row["ci_high"]
    # Success: familiar 1.0, held-out 0.0 for both.
    assert both[both["metric"] == "success"].iloc[0]["diff"] == pytest.approx(0.0)


def test_gap_is_undefined_without_held_out_episodes() -> None:
    a = [record(True, False, [True]), record(False, False, [False])]
    table = heldout_gap_table([pair(a, a)], (True, True), 1, against_baseline=False)
    row = table[table["metric"] == "fidelity@1"].iloc[0]
    assert row["diff"] is None and row["ci_low"] is None


def test_level_against_a_bar_by_hand() -> None:
    a = [record(True, False, [True]), record(False, False, [False])]
    table = level_table([pair(a, a)], True, 1, bar=0.9, n_resamples=100)
    row = table[table["metric"] == "format_rate"].iloc[0]
    assert (row["method"], row["baseline"], row["diff"]) == pytest.approx((1.0, 0.9, 0.1))
    assert row["ci_low"] == pytest.approx(0.1) and row["ci_high"] == pytest.approx(0.1)


def test_a_prediction_past_the_episode_end_is_a_miss() -> None:
    """One definition for the rollout metric and the FC-RL fidelity reward: no actual observation = wrong."""
    r = record(True, False, [True])
    r["turns"][0]["parsed"]["rollout"] = ["o0", "o1"]  # the world ended after one step
    table = level_table([pair([r], [r])], True, 2, bar=0.0, n_resamples=10)
    assert table[table["metric"] == "fidelity@2"].iloc[0]["method"] == 0.0


def test_beliefs_at_p_by_hand() -> None:
    records = [record(True, False, [True], p=1.0), record(False, True, [True], p=0.6)]
    records[0]["p_first"] = {"entropy_bits": 0.0, "expected_p": 1.0}
    records[1]["p_first"] = {"entropy_bits": 2.0, "expected_p": None}  # a model whose values span tokens
    beliefs = belief_metrics(records, verbal_p=True)
    # mean p (1.0 + 0.6) / 2 = 0.8 against success 0.5: overconfident by 0.3.
    assert beliefs == pytest.approx({"mean_p": 0.8, "overconfidence": 0.3, "p_entropy": 1.0, "expected_p": 1.0})
    assert belief_metrics(records, verbal_p=False) == dict.fromkeys(beliefs)


@pytest.mark.parametrize(
    ("draws", "p"),
    [
        ([0.1] * 19, 0.1),  # no draw <= 0: 2 * (1 + 0) / 20
        ([0.1] * 99 + [-0.2], 0.0396),  # one draw <= 0: 2 * (1 + 1) / 101
        ([0.1, 0.2, -0.1, 0.0], 1.0),  # 2 * min(3/5, 4/5) = 1.2, capped at 1
        ([-0.3] * 9, 0.2),  # the other side: 2 * (1 + 0) / 10
    ],
)
def test_bootstrap_p_by_hand(draws: list[float], p: float) -> None:
    assert bootstrap_p(draws) == pytest.approx(p, abs=1e-4)


def test_tables_carry_the_bootstrap_p() -> None:
    # The format rate is 1.0 in every resample: all 100 draws of (1.0 - 0.9) lie above 0, p = 2 / 101.
    a = [record(True, False, [True]), record(False, False, [False])]
    row = level_table([pair(a, a)], True, 1, bar=0.9, n_resamples=100).set_index("metric").loc["format_rate"]
    assert row["p_value"] == pytest.approx(2 / 101)
    # A method against itself: every draw is 0, on both sides at once, p = 1.
    paired = compare_table([pair(a, a)], (True, True), 1, n_resamples=50).set_index("metric")
    assert paired.loc["success", "p_value"] == 1.0
    gap = heldout_gap_table([pair(a, a)], (True, True), 1, against_baseline=False)
    assert gap.set_index("metric").loc["fidelity@1", "p_value"] is None  # no held-out episode: no draws
