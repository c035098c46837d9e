"""`harness reproduce --jobs 2` off a terminal: stage lines named by worker, one line per run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli_processes import harness
from tests.integration.test_reproduce import smoke_variant

pytestmark = pytest.mark.heavy


def test_two_workers_report_their_stages_and_every_run(tmp_path: Path) -> None:
    profile = smoke_variant(tmp_path / "two.yaml", ["graph-nav"], ["react", "sft-mimic"], [])
    args = ["reproduce", "--profile", str(profile), "--jobs", "2", "--threads", "1"]
    folders = ["--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "r")]
    result = harness([*args, *folders], tmp_path / "logs", timeout=900)
    assert result.code == 0, result.err[-3000:]
    lines = result.out.splitlines()
    stage = r"\[worker [12]\] graph-nav seed0 (sft|react eval|sft-mimic eval)"  # a training stage or an evaluation
    started = [line for line in lines if re.match(stage + r": started, \d+ steps$", line)]
    ended = [line for line in lines if re.match(stage + r": done, (\d+)/\2 steps in ", line)]
    # Two chains (react's sft, sft-mimic's sft), each a training stage and an evaluation.
    assert len(started) == len(ended) == 4, result.out
    # Which worker takes which chain is the pool's choice; every stage line names one of the two.
    assert {line.split("]")[0] for line in started} <= {"[worker 1", "[worker 2"}
    runs = [line for line in lines if re.match(r"\[[12]/2\] (react|sft-mimic) on graph-nav seed 0: success ", line)]
    assert len(runs) == 2 and "2 run(s) trained and evaluated" in result.out
