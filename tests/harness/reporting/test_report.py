"""The cost lines of REPORT.md: wall time and peak memory of a reproduction, workers included."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from harness.core.config import load_profile
from harness.reporting.report import Cost, claim_summary, claim_tests, write_report
from harness.running.reproduce import measure_cost


def test_cost_lines_single_process() -> None:
    lines = Cost(wall_s=150.0, peak_mb=812.4, worker_peak_mb=0.0, jobs=1).lines()
    assert lines[0].startswith("- wall time of this `harness reproduce`: 2.5 min")
    assert lines[1] == "- peak resident memory: reproduce process 812 MiB"


def test_cost_lines_bound_the_workers_running_at_once() -> None:
    lines = Cost(wall_s=60.0, peak_mb=300.0, worker_peak_mb=700.0, jobs=2).lines()
    # 300 + 2 * 700: the parent and both workers at their peaks at the same moment.
    assert lines[1] == (
        "- peak resident memory: reproduce process 300 MiB, largest of its worker processes 700 MiB; "
        "with --jobs 2 at most 1700 MiB at once"
    )


def test_measure_cost_reads_this_process() -> None:
    cost = measure_cost(started=0.0, jobs=1)
    assert cost.peak_mb > 10  # a Python process with torch imported holds far more than 10 MiB
    assert cost.wall_s > 1e9  # seconds since the epoch


def _rows(*verdicts: str) -> pd.DataFrame:
    return pd.DataFrame({"claim": ["C1"] * len(verdicts), "verdict": list(verdicts)})


@pytest.mark.parametrize(
    ("verdicts", "overall"),
    [
        (("supports", "supports", "inconclusive"), "supported"),  # 2 outnumber 1
        (("supports", "inconclusive"), "not established"),  # 1 does not outnumber 1 (the old rule said supported)
        (("supports", "supports", "contradicts"), "not established"),  # none may contradict
        (("contradicts", "contradicts", "inconclusive"), "contradicted"),
        (("contradicts", "inconclusive"), "not established"),
        (("inconclusive",), "not established"),
    ],
)
def test_claim_rule_is_the_one_the_report_states(verdicts: tuple[str, ...], overall: str) -> None:
    """REPORT.md says 'supporting comparisons outnumber inconclusive ones and none contradicts it'."""
    assert claim_summary(_rows(*verdicts), "C1").startswith(f"**{overall}**")


def test_c1_tests_look_inside_sft_mimic_and_c2_holds_the_comparisons_with_it() -> None:
    tests = claim_tests(load_profile("default"))
    c1 = [t for t in tests if t.claim == "C1"]
    assert {t.method for t in c1} == {"sft-mimic"} and {t.kind for t in c1} == {"level", "gap"}
    assert [t.label for t in c1] == [
        "sft-mimic: format_rate vs 0.9",
        "sft-mimic, held-out - familiar: fidelity@1",
        "sft-mimic, held-out - familiar: q_error",
        "sft-mimic vs foresight-no-rl, held-out - familiar: fidelity@1",
    ]
    c2 = {(t.method, t.baseline, t.metric) for t in tests if t.claim == "C2"}
    assert ("foresight", "sft-mimic", "fidelity@1") in c2
    # RLCR's direction: the calibration term against the success reward alone, at equal RL.
    assert {("foresight", "foresight-success-only", m) for m in ("ece_all", "brier")} <= c2
    without = dataclasses.replace(load_profile("default"), ablations=["foresight-no-rl"])
    assert not [t for t in claim_tests(without) if "foresight-success-only" in (t.method, t.baseline)]
    c4 = {(t.method, t.baseline) for t in tests if t.claim == "C4"}
    assert ("foresight-no-rl", "foresight-no-order") in c4


def test_report_prints_n_p_and_first_turn_calibration_before_all_turns(tmp_path) -> None:
    profile = load_profile("default")
    summary = pd.DataFrame(
        [
            {"task": "graph-nav", "method": "foresight", "seeds": 3, "episodes": 300, "success": 0.5,
             "first_p_coverage": 0.9, "brier_skill_first": 0.125, "auroc_first": 0.7, "p_coverage": 0.8,
             "ece_all": 0.2, "brier": 0.25},
            {"task": "graph-nav", "method": "react", "seeds": 3, "episodes": 300, "success": 0.4,
             "first_p_coverage": None, "brier_skill_first": None, "auroc_first": None, "p_coverage": None,
             "ece_all": None, "brier": None},
        ]
    )  # fmt: skip
    row = {"claim": "C3", "test": "foresight vs react: success", "why": "", "task": "graph-nav", "method": 0.5,
           "baseline": 0.4, "diff": 0.1, "ci_low": 0.02, "ci_high": 0.18, "p_value": 0.0123, "seeds": 3,
           "episodes": 300, "n": "3 x 100", "resampled": "seeds, then episodes", "verdict": "supports"}  # fmt: skip
    one_seed = {**row, "task": "countdown", "seeds": 1, "episodes": 100, "n": "1 x 100"}
    text = write_report(profile, tmp_path, summary, tmp_path, None, pd.DataFrame([row, one_seed]))
    assert (
        "| foresight vs react: success | graph-nav | 0.500 | 0.400 | 0.100 | [0.020, 0.180] | 0.012 | n = 3 x 100 |"
        in text
    )
    assert "n = 1 x 100 (1 seed: no seed variance)" in text
    calibration = text[text.index("## Calibration of p") :]
    # Only the method with a p is in the calibration table; first-turn columns come before the all-turn ones.
    assert "react" not in calibration.split("Reading anchor")[0]
    header = next(line for line in calibration.splitlines() if line.startswith("| task"))
    assert header.index("brier_skill_first") < header.index("ece_all (all turns)") < header.index("brier (all turns)")
    assert "RLCR paper" in calibration and "ECE 0.37 and AUROC 0.50" in calibration and "Brier 0.21" in calibration
