"""Progress of `harness eval` off a terminal: plain stage lines with wall times; `--quiet`: the summary alone.
Neither changes a byte of the run: progress is display only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli.main import cli

pytestmark = pytest.mark.heavy  # trains react on smoke twice over: ~30 s
ARGS = ["eval", "--method", "react", "--task", "graph-nav", "--profile", "smoke"]


def test_plain_lines_then_quiet_give_the_same_run(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    plain = CliRunner().invoke(cli, [*ARGS, "--cache", cache, "--runs", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    started = [line for line in lines if line.startswith("graph-nav seed0 sft: started, ")]
    assert len(started) == 1, plain.stdout
    steps = int(re.search(r"started, (\d+) steps", started[0])[1])
    done = [line for line in lines if line.startswith("graph-nav seed0 sft: done, ")]
    assert len(done) == 1
    assert re.match(
        rf"graph-nav seed0 sft: done, {steps}/{steps} steps in \d+\.\d s \([\d,]+ tok/s, loss \d\.\d{{3}}\)", done[0]
    )
    assert "graph-nav seed0 react eval: started, 1 steps" in lines
    assert any(line.startswith("graph-nav seed0 react eval: done, 1/1 steps in ") for line in lines)
    assert lines[-2].startswith("react on graph-nav seed 0: success ")
    # The stage is cached now; --quiet prints the summary alone, and the run is the same to the byte.
    quiet = CliRunner().invoke(cli, [*ARGS, "--cache", cache, "--runs", str(tmp_path / "b"), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert len(quiet.stdout.splitlines()) == 2 and quiet.stdout.splitlines()[0] == lines[-2]
    for name in ("metrics.json", "episodes.jsonl"):
        a, b = (tmp_path / x / "smoke/graph-nav/react/seed0" / name for x in ("a", "b"))
        assert a.read_bytes() == b.read_bytes(), name
    board = tmp_path / "a/smoke/graph-nav/react/seed0/tensorboard"
    assert sorted(p.name for p in board.iterdir()) == ["eval", "sft"]
