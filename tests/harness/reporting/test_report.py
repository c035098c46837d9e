"""REPORT.md: claim verdicts by the analysis plan's rule on hand-made tables, the plan's hash, the cost lines,
the outputs' atomicity."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.evaluation.metrics import RESAMPLES
from harness.reporting.plan import Comparison, DevScore, load_plan, parse_version
from harness.reporting.report import (
    Cost,
    claim_section,
    claim_tests,
    claim_verdicts,
    evidence,
    judge,
    plan_section,
    write_report,
)
from harness.running.reproduce import build_outputs, measure_cost


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


PLAN = load_plan()


def _test(claim: str, role: str, metric: str, direction: str = ">", baseline: str = "react") -> Comparison:
    return Comparison(claim, role, "foresight", baseline, metric, "paired", direction, None, 0.0, "why")


def _evidence(tests: list[Comparison], cells: dict[tuple[int, str], tuple[float, float]]) -> pd.DataFrame:
    """Returns evidence rows as `evidence` builds them: per (row, task), its (diff, p); a repeated test says same_as."""
    first: dict[tuple, int] = {}
    rows = []
    for (n, task), (diff, p) in cells.items():
        t = tests[n - 1]
        same = first.setdefault(t.key, n)
        rows.append(
            {"claim": t.claim, "role": t.role, "row": n, "same_as": same if same != n else None, "test": t.label,
             "claimed": t.claimed, "why": t.why, "task": task, "method": 0.5, "baseline": 0.5 - diff, "diff": diff,
             "ci_low": diff - 0.1, "ci_high": diff + 0.1, "p_value": p, "seeds": 1, "episodes": 40, "n": "1 x 40",
             "resampled": "episodes of 1 seed (no seed variance)"}
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_holm_across_the_claims_primary_rows_decides_each_verdict() -> None:
    tests = [_test("C3", "primary", "success"), _test("C3", "primary", "fidelity@1"), _test("C3", "secondary", "brier")]
    # Primary p 0.01, 0.04 (task a), 0.03, 0.005 (task b): Holm 0.03, 0.06, 0.06, 0.02 at alpha 0.05.
    cells = {(1, "a"): (0.2, 0.01), (2, "a"): (0.1, 0.04), (1, "b"): (-0.2, 0.03), (2, "b"): (0.3, 0.005),
             (3, "a"): (0.4, 0.001), (3, "b"): (-0.4, 0.001)}  # fmt: skip
    rows = judge(_evidence(tests, cells), tests, PLAN, dev=None).set_index(["row", "task"])
    assert rows["p_holm"].loc[[(1, "a"), (2, "a"), (1, "b"), (2, "b")]].tolist() == pytest.approx(
        [0.03, 0.06, 0.06, 0.02]
    )
    assert rows.loc[(1, "a"), "verdict"] == "supports"
    assert rows.loc[(2, "a"), "verdict"] == "inconclusive"  # raw 0.04 < 0.05, but not after Holm
    assert rows.loc[(1, "b"), "verdict"] == "inconclusive"
    assert rows.loc[(2, "b"), "verdict"] == "supports"
    # Secondary: p 0.001 either way, never adjusted, never a verdict.
    assert rows.loc[(3, "a"), "verdict"] == rows.loc[(3, "b"), "verdict"] == "not counted"
    assert pd.isna(rows.loc[(3, "a"), "p_holm"])
    assert claim_verdicts(rows.reset_index(), tests, ["a", "b"]) == {"C3": {"a": "inconclusive", "b": "inconclusive"}}


@pytest.mark.parametrize(
    ("cells", "verdict"),
    [
        ({1: (0.2, 0.001), 2: (0.1, 0.001)}, "supported"),
        ({1: (-0.2, 0.001), 2: (0.1, 0.5)}, "contradicted"),  # one contradicts, none supports
        ({1: (0.2, 0.001), 2: (-0.1, 0.001)}, "mixed"),
        ({1: (0.2, 0.001), 2: (0.1, 0.5)}, "inconclusive"),  # one supports, the other does not
        ({1: (0.2, 0.001), 2: (0.1, None)}, "inconclusive"),  # an undefined metric: p counts as 1
        ({1: (0.2, 0.001)}, "inconclusive"),  # row 2's runs are missing: it does not support
    ],
)
def test_claim_verdict_per_task(cells: dict[int, tuple[float, float | None]], verdict: str) -> None:
    tests = [_test("C3", "primary", "success"), _test("C3", "primary", "fidelity@1", baseline="vanilla-rl")]
    rows = judge(_evidence(tests, {(n, "a"): c for n, c in cells.items()}), tests, PLAN, dev=None)
    assert claim_verdicts(rows, tests, ["a"]) == {"C3": {"a": verdict}}


def test_secondary_rows_do_not_count() -> None:
    """A secondary row at p 0.001 against the claim leaves a supported claim supported."""
    tests = [_test("C3", "primary", "success"), _test("C3", "secondary", "fidelity@1")]
    rows = judge(_evidence(tests, {(1, "a"): (0.2, 0.001), (2, "a"): (-0.3, 0.001)}), tests, PLAN, dev=None)
    assert claim_verdicts(rows, tests, ["a"]) == {"C3": {"a": "supported"}}


def test_a_duplicate_is_stated_once_and_counted_once() -> None:
    tests = [_test("C3", "primary", "success"), _test("C3", "primary", "fidelity@1"), _test("C3", "primary", "success")]
    assert tests[2].key == tests[0].key  # the same test, mentioned again
    # Family of 2 distinct tests: Holm 2 * 0.02 = 0.04 and max(0.04, 0.03) = 0.04 (a family of 3 would give 0.06).
    cells = {(1, "a"): (0.2, 0.02), (2, "a"): (0.1, 0.03), (3, "a"): (0.2, 0.02)}
    rows = judge(_evidence(tests, cells), tests, PLAN, dev=None)
    assert rows["p_holm"].tolist() == pytest.approx([0.04, 0.04, 0.04])
    lines = claim_section(rows, tests, ["a"], "C3")
    assert "a Holm family of 2" in lines[0]
    table = [line for line in lines if line.startswith("| 3 |")]
    assert table == ["| 3 | = row 1 | > 0 | a |  |  |  |  |  |  | 0.040 | supports |"]  # n's cell empty too
    assert sum("foresight vs react: success" in line for line in lines) == 1


def test_the_gate_leaves_a_comparison_without_a_verdict() -> None:
    tests = [_test("C3", "primary", "success")]
    dev = {
        ("a", "foresight"): DevScore(0.50, 0.20, 0.95),
        ("a", "react"): DevScore(0.60, 0.20, 0.99),
        ("b", "foresight"): DevScore(0.30, 0.20, 0.95),  # 0.10 above random: not judged on b
        ("b", "react"): DevScore(0.60, 0.20, 0.99),
    }
    cells = {(1, "a"): (0.2, 0.001), (1, "b"): (0.2, 0.001)}
    rows = judge(_evidence(tests, cells), tests, PLAN, dev=dev)
    assert rows["verdict"].tolist() == ["supports", "no verdict at this scale"]
    assert rows["gate"].tolist() == ["passed", "foresight is 0.10 above random on dev (< 0.15)"]
    assert claim_verdicts(rows, tests, ["a", "b"]) == {"C3": {"a": "supported", "b": "no verdict at this scale"}}
    assert judge(_evidence(tests, cells), tests, PLAN, dev=None)["gate"].tolist() == ["not applied"] * 2


def test_the_report_records_the_plan_and_shows_primary_and_secondary_apart() -> None:
    profile = load_profile("default")
    tests = claim_tests(profile)
    c2 = [n for n, t in enumerate(tests, 1) if t.claim == "C2"]
    rows = judge(_evidence(tests, {(n, "kb-search"): (0.1, 0.001) for n in c2}), tests, PLAN, dev=None)
    summary = pd.DataFrame({"task": ["kb-search"], "method": ["foresight"], "p_entropy": [0.96], "success": [0.5]})
    text = write_report(profile, Path("runs"), summary, Path("results"), None, rows)
    assert "version 1 of `harness/reporting/analysis_plan.yaml`" in text
    assert f"sha256 of its content `{PLAN.sha256}`." in text and "No earlier version." in text
    assert "The gate is not applied in this report" in text
    c2_text = text[text.index("## C2.") : text.index("## C3.")]
    assert "kb-search **supported**" in c2_text and "a Holm family of 3" in c2_text
    primary, secondary = c2_text.index("primary comparison |"), c2_text.index("secondary comparison (not counted)")
    assert c2_text[primary:secondary].count("| kb-search |") == 3
    assert c2_text[secondary:].count("| kb-search |") == 8
    assert "here 0.96 to 0.96 bits" in text and "about 0" not in text
    cost = text[text.index("## Cost and environment") :]
    assert "### Where the time goes\n\nNo complete run in the store.\n" in cost  # no store at `runs`


def test_claim_tests_are_the_plans_for_the_profiles_methods() -> None:
    tests = claim_tests(load_profile("default"))
    assert tests == list(PLAN.comparisons)
    without = dataclasses.replace(load_profile("default"), ablations=["foresight-no-rl"])
    assert not [t for t in claim_tests(without) if "foresight-success-only" in (t.method, t.baseline)]


def test_the_report_lists_what_a_new_version_changed() -> None:
    raw = {**PLAN.raw, "version": 2, "alpha": 0.01}
    v2 = parse_version(raw, "versions[1]")
    lines = plan_section([PLAN, v2], pd.DataFrame())
    assert "version 2 of `harness/reporting/analysis_plan.yaml`" in lines[0]
    assert lines[lines.index("Changed from version 1:") + 2] == "- alpha: 0.05 -> 0.01"
    assert f"sha256 of its content `{v2.sha256}`." in lines and v2.sha256 != PLAN.sha256
    assert "No earlier version." not in lines and any("(alpha 0.01)" in line for line in lines)


def _store(runs: Path, profile: str, method: str, successes: list[bool]) -> None:
    """Writes a complete run of `method` on countdown seed 0 whose episodes succeed as given."""
    path = runs / profile / "countdown" / method / "seed0"
    path.mkdir(parents=True)
    records = [
        {"episode": i, "instance_id": f"i{i}", "success": s, "heldout": i % 2 == 0, "candidates": [],
         "turns": [{"parsed": None}]}
        for i, s in enumerate(successes)
    ]  # fmt: skip
    (path / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "manifest.json").write_text("{}\n")
    (path / "metrics.json").write_text("{}\n")


def test_evidence_from_a_run_store_decides_c3_by_holm(tmp_path: Path) -> None:
    """foresight succeeds on all 20 episodes, every baseline on none: each bootstrap p is 2 / (B + 1)."""
    profile = dataclasses.replace(
        load_profile("smoke"), tasks={"countdown": {}}, ablations=[], seeds=[0],
        methods=["react", "sft-mimic", "vanilla-rl", "foresight"],
    )  # fmt: skip
    _store(tmp_path, profile.name, "foresight", [True] * 20)
    for baseline in ("react", "sft-mimic", "vanilla-rl"):
        _store(tmp_path, profile.name, baseline, [False] * 20)
    tests = claim_tests(profile)
    rows = evidence(profile, tmp_path, tests)
    c3 = rows[rows["claim"] == "C3"]
    p = 2 / (RESAMPLES + 1)  # every draw of the difference is 1.0, none on the other side of 0
    assert c3["diff"].tolist() == [1.0, 1.0, 1.0] and c3["p_value"].tolist() == pytest.approx([p] * 3)
    assert c3["p_holm"].tolist() == pytest.approx([3 * p] * 3) and set(c3["verdict"]) == {"supports"}
    assert claim_verdicts(rows, tests, ["countdown"])["C3"] == {"countdown": "supported"}
    # brier_skill_first is planned before scoring computes it: its rows are there, undefined, and p counts as 1.
    skill = rows[rows["test"] == "foresight vs sft-mimic: brier_skill_first"].iloc[0]
    assert pd.isna(skill["diff"]) and skill["verdict"] == "inconclusive" and skill["p_holm"] == 1.0
    assert claim_verdicts(rows, tests, ["countdown"])["C2"] == {"countdown": "inconclusive"}
    assert "C4" not in set(rows["claim"])  # its methods are ablations this profile does not run


def _react_run(runs: Path) -> None:
    """Writes a complete smoke run of react on countdown, seed 0: two episodes, its metrics."""
    run = runs / "smoke" / "countdown" / "react" / "seed0"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text("{}\n")
    (run / "episodes.jsonl").write_text('{"success": true, "turns": []}\n{"success": false, "turns": []}\n')
    metrics = {"n_episodes": 2, "success": 0.5, "random_policy_success": 0.1, "cost": {"training_tokens": 0}}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_a_full_disk_during_report_leaves_the_old_tables_figures_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _react_run(tmp_path / "runs")
    results = tmp_path / "results"
    for name in ("tables/summary.csv", "tables/summary.md", "figures/success.png", "REPORT.md"):
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_text(f"old {name}\n")
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # summary.csv is written; the disk fills up during summary.md
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(HarnessError, match=r"summary.md: No space left on device"):
        build_outputs(load_profile("smoke"), tmp_path / "runs", tmp_path / "cache", results)
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in results.iterdir()) == ["REPORT.md", "figures", "tables"]


def test_report_prints_n_p_and_first_turn_calibration_before_all_turns() -> None:
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
    tests = claim_tests(profile)
    c3 = next(n for n, t in enumerate(tests, 1) if t.claim == "C3" and t.baseline == "react")
    rows = _evidence(tests, {(c3, "graph-nav"): (0.1, 0.0123), (c3, "countdown"): (0.1, 0.0123)})
    rows.loc[rows["task"] == "graph-nav", ["seeds", "episodes", "n"]] = [3, 300, "3 x 100"]
    text = write_report(profile, Path("runs"), summary, Path("results"), None, judge(rows, tests, PLAN, dev=None))
    assert "| [0.000, 0.200] | 0.012 | 3 x 100 |" in text
    assert "| 0.012 | 1 x 40 (1 seed: no seed variance) |" in text
    calibration = text[text.index("## Calibration of p") :]
    # Only the method with a p is in the calibration table; first-turn columns come before the all-turn ones.
    assert "react" not in calibration.split("Reading anchor")[0]
    header = next(line for line in calibration.splitlines() if line.startswith("| task"))
    assert header.index("brier_skill_first") < header.index("ece_all (all turns)") < header.index("brier (all turns)")
    assert "RLCR paper" in calibration and "ECE 0.37 and AUROC 0.50" in calibration and "Brier 0.21" in calibration
