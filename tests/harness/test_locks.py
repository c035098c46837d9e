"""Locks between processes, leftovers of killed writers, and `reproduce --jobs` never sharing a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import load_profile
from harness.errors import HarnessError
from harness.locks import holder, locked
from harness.registry import make_task, method_factory
from harness.reproduce import plan
from harness.stages import stage_hash
from harness.store import remove_leftovers
from harness.train import data_hash, initial_checkpoint


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
        "import os, signal, sys\nfrom pathlib import Path\nfrom harness.locks import locked\n"
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
    """Each worker of `reproduce --jobs N` runs one group of the plan: no two groups write one file."""
    profile = load_profile("smoke")
    writes = []
    for group in plan(profile):
        files = set()
        for method, task_name, seed in group:
            task = make_task(task_name, profile.tasks[task_name])
            files.add(f"runs/{profile.name}/{task_name}/{method}/seed{seed}")
            key = initial_checkpoint(profile, seed, tmp_path).hash  # built before the workers start
            for spec in method_factory(method)(profile).stages:
                key = stage_hash(spec, key, data_hash(task, profile, seed))
                files.add(f"cache/{key}")
        writes.append(files)
    assert len(writes) == len(profile.tasks) * len(set(profile.seeds) | set(profile.ablation_seeds))
    assert sum(len(w) for w in writes) == len(set().union(*writes))
