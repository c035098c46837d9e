"""Runs as values (RunSpec) and the backend registry of harness.running.workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.runs import RunSpec
from harness.running.chains import Placement
from harness.running.workers import BACKENDS, backend_for, execute


def test_a_run_spec_knows_its_directory_and_its_title() -> None:
    run = RunSpec(load_profile("smoke"), "foresight", "graph-nav", 3)
    assert run.dir(Path("/r")) == Path("/r/smoke/graph-nav/foresight/seed3")
    assert run.title() == "foresight on graph-nav seed 3"
    assert run.title(with_profile=True) == "foresight on graph-nav seed 3 at smoke"
    assert pickle.loads(pickle.dumps(run)) == run  # what the pool and Ray send to a worker


def test_backend_and_jobs_select_one_registered_backend() -> None:
    assert [backend_for(name, jobs).name for name, jobs in (("local", 1), ("local", 2), ("ray", 1), ("ray", 4))] == [
        "local",
        "pool",
        "ray",
        "ray",
    ]
    assert [b.chained for b in BACKENDS.values()] == [False, True, True]
    with pytest.raises(HarnessError, match=r"unknown backend 'slurm' \(known: local, ray\)"):
        backend_for("slurm", 1)


def test_execute_hands_the_work_to_the_selected_backend(monkeypatch) -> None:
    """A planted backend in the registry gets the chains and the placement, and its finished runs are echoed."""
    seen = []
    run = RunSpec(load_profile("smoke"), "react", "graph-nav", 0)

    def planted(work, runs, cache, place: Placement, finish) -> None:
        seen.append((work, place))
        finish(run, "success 1.00")

    monkeypatch.setitem(BACKENDS, "local", BACKENDS["local"].__class__("local", planted, chained=False))
    lines: list[str] = []
    assert execute([[run]], Path("runs"), Path("cache"), 1, 2, lines.append) == 1
    assert seen == [([[run]], Placement(jobs=1, threads=2, address=None, with_profile=False))]
    assert len(lines) == 1 and lines[0].startswith("[1/1] react on graph-nav seed 0: success 1.00 (")
