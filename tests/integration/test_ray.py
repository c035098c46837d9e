"""`--backend ray`: chains of runs as Ray tasks give the bytes of the local backend at the same thread count,
on a local Ray and on Ray's simulated two-node cluster; a failed task is one line naming its run, and a
rerun resumes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.running.reproduce import run_missing
from tests.cli_inprocess import run
from tests.integration.test_reproduce import smoke_variant

pytestmark = pytest.mark.heavy
TASKS = ["graph-nav", "countdown"]
RUN_FILES = ("metrics.json", "episodes.jsonl")


def _bytes(runs: Path) -> dict[str, bytes]:
    """Returns every run file whose bytes the seed determines, by its path under `runs`."""
    return {str(p.relative_to(runs)): p.read_bytes() for name in RUN_FILES for p in sorted(runs.rglob(name))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """Returns (profile, run bytes) of react on two tasks made by the local pool, 2 workers at 1 thread."""
    tmp = tmp_path_factory.mktemp("ray-local")
    profile = smoke_variant(tmp / "ray-smoke.yaml", TASKS, ["react"], [])
    lines: list[str] = []
    assert run_missing(load_profile(str(profile)), tmp / "runs", tmp / "cache", 2, lines.append, 1) == 2
    found = _bytes(tmp / "runs")
    assert len(found) == 4
    return profile, found


def test_local_ray_gives_the_bytes_of_the_local_pool(monkeypatch, capsys, tmp_path: Path, reference) -> None:
    profile, expected = reference
    code, out, err = run(
        monkeypatch, capsys, "reproduce", "--profile", str(profile), "--backend", "ray", "--threads", "1",
        "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results"),
    )  # fmt: skip
    assert code == 0, err + out
    assert "2 run(s) trained and evaluated" in out and "[node " in out
    # Off a terminal, each Ray task's stages come back as plain lines named by its node and process.
    stages = re.findall(r"^\[worker [0-9a-f]{8}:\d+\] (graph-nav|countdown) seed0 sft: (started|done)", out, re.M)
    assert sorted(stages) == [(t, s) for t in sorted(TASKS) for s in ("done", "started")], out
    assert _bytes(tmp_path / "runs") == expected
    assert not ray.is_initialized()  # the Ray it started is stopped


def test_two_simulated_nodes_each_take_a_chain_with_the_same_bytes(tmp_path: Path, reference) -> None:
    profile, expected = reference
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        lines: list[str] = []
        ran = run_missing(load_profile(str(profile)), tmp_path / "runs", tmp_path / "cache", 1, lines.append, 1, "ray")
        nodes = {re.search(r"\[node (\w+)\]$", line)[1] for line in lines}
        alive = {n["NodeID"][:8] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert ran == 2 and len(nodes) == 2 and nodes <= alive, lines  # one CPU per node: a chain on each
    assert _bytes(tmp_path / "runs") == expected


def test_a_killed_ray_task_is_one_error_naming_its_run_and_a_rerun_resumes(tmp_path: Path, reference) -> None:
    profile, expected = reference
    prof = load_profile(str(profile))
    ray.init(num_cpus=2, runtime_env={"env_vars": {"HARNESS_KILL_AT": "sft-step:3"}}, log_to_driver=False)
    try:
        with pytest.raises(HarnessError) as failure:
            run_missing(prof, tmp_path / "runs", tmp_path / "cache", 1, print, 1, "ray")
    finally:
        ray.shutdown()
    message = str(failure.value)
    assert len(message.splitlines()) == 1 and "; rerun to resume" in message
    assert re.match(r"react on (graph-nav|countdown) seed 0 failed on Ray \(\w+", message), message
    assert not list((tmp_path / "runs").rglob("metrics.json"))
    lines: list[str] = []
    assert run_missing(prof, tmp_path / "runs", tmp_path / "cache", 1, lines.append, 1, "ray") == 2
    assert _bytes(tmp_path / "runs") == expected
