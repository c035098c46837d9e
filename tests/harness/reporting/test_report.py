"""REPORT.md: its cost lines (wall time, peak memory, workers included), its claim rule, and its outputs' atomicity."""

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
from harness.reporting.report import Cost, claim_summary, claim_tests
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
