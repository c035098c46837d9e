"""Locks between processes, leftovers of killed writers, and `reproduce --jobs` never sharing a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.locks import holder, locked
from harness.core.registry import make_task, method_factory
from harness.core.store import remove_leftovers
from harness.running.reproduce import RUN_TOKENS, chain_cost, chains, plan
from harness.training.stages import GRPO_EPISODE_TOKENS, stage_hash
from harness.training.train import data_hash, initial_checkpoint


def test_a_held_lock_names_its_holder_and_a_free_one_names_none(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with locked(lock, "run x", wait=False):
        assert holder(lock) == str(os.getpid())
        # flock conflicts between two opens of the file, even in one process.
        with pytest.raises(HarnessError, match=rf"run x is in use by process {os.getpid()} \(lock {lock}\)"):
            with locked(lock, "run x", wait=False):
                pass
    assert holder(lock) == "unknown"
    with locked(lock, "run x", wait=False):
        pass


def test_a_lock_dies_with_its_holder(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    script = (
        "import os, signal, sys\nfrom pathlib import Path\nfrom harness.core.locks import locked\n"
        f"with locked(Path({str(lock)!r}), 'x', wait=False):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": ":".join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert holder(lock).isdigit()  # the dead holder's pid is still written ...
    with locked(lock, "x", wait=False):  # ... but the kernel released its lock
        pass


def test_remove_leftovers_removes_temp_entries_of_the_named_files_only(tmp_path: Path) -> None:
    for name in (".metrics.json.ab12", ".episodes.jsonl.x", "metrics.json", ".lock", ".other.json.1"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".abc123.q9").mkdir()
    removed = remove_leftovers(tmp_path, ["metrics.json", "episodes.jsonl", "abc123"])
    assert sorted(p.name for p in removed) == [".abc123.q9", ".episodes.jsonl.x", ".metrics.json.ab12"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", ".other.json.1", "metrics.json"]


def test_reproduce_jobs_never_give_two_workers_one_run_or_stage(tmp_path: Path) -> None:
    """`reproduce --jobs N` hands whole chains to its workers: no two chains write one file, and the
    chains cut each (task, seed) group as its stages say (react with vanilla-rl, sft-mimic with
    foresight-no-amt, foresight with foresight-no-rl and foresight-success-only, foresight-no-order alone)."""
    profile = load_profile("smoke")
    writes = []
    for group in plan(profile):
        cut = chains(profile, group)
        assert [[run.method for run in c] for c in cut] == [
            ["react", "vanilla-rl"],
            ["sft-mimic", "foresight-no-amt"],
            ["foresight", "foresight-no-rl", "foresight-success-only"],
            ["foresight-no-order"],
        ]
        for chain in cut:
            files = set()
            for run in chain:
                task = make_task(run.task, profile.tasks[run.task])
                files.add(str(run.dir(Path("runs"))))
                assert run.dir(Path("runs")) == Path(f"runs/{profile.name}/{run.task}/{run.method}/seed{run.seed}")
                key = initial_checkpoint(profile, run.seed, tmp_path).hash  # built before the workers start
                for spec in method_factory(run.method)(profile).stages:
                    key = stage_hash(spec, key, data_hash(task, profile, run.seed))
                    files.add(f"cache/{key}")
            writes.append(files)
    assert len(writes) == 4 * len(profile.tasks) * len(set(profile.seeds) | set(profile.ablation_seeds))
    assert sum(len(w) for w in writes) == len(set().union(*writes))


def test_chains_are_ordered_by_their_budgets() -> None:
    """Chain costs by hand from the default profile: sft-like stages count their tokens, a GRPO stage
    its episodes at GRPO_EPISODE_TOKENS each, and every run RUN_TOKENS."""
    profile = load_profile("default")
    cut = chains(profile, plan(profile)[0])
    episodes = 20 * 4 * 8 * GRPO_EPISODE_TOKENS
    assert [chain_cost(profile, c) for c in cut] == [
        300_000 + episodes + 2 * RUN_TOKENS,  # sft, rl
        600_000 + episodes + 2 * RUN_TOKENS,  # sft on D_look, fc-rl
        150_000 + 450_000 + 2 * episodes + 3 * RUN_TOKENS,  # wm-amt, fe-sft, fc-rl, fc-rl (success only)
        600_000 + RUN_TOKENS,
    ]
