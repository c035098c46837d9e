"""The run store: results/runs/<profile>/<task>/<method>/seed<k>/ (docs/design.md#evaluation-and-the-run-store).

A run directory holds manifest.json (resolved config, stage hashes, git commit, versions, CPU and
numeric path, wall times, peak memory), episodes.jsonl (every test episode, turn by turn) and metrics.json, which is
written last: a run is complete only when it exists. metrics.json holds only what the seed
determines, so a rerun can be checked byte for byte.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from harness.core import faults
from harness.core.config import Profile
from harness.core.environ import cpu_model, numeric_path
from harness.core.errors import HarnessError
from harness.core.locks import locked
from harness.core.store import atomic_write_text, remove_leftovers

RUN_FILES = ["manifest.json", "episodes.jsonl", "metrics.json"]
PACKAGES = ("torch", "transformers", "trl", "peft", "datasets", "lm-eval", "bm25s", "numpy", "foresight-harness")


@dataclass
class Run:
    """A complete run read back from the store."""

    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    metrics: dict[str, Any]


def run_dir(root: Path, profile: str, task: str, method: str, seed: int) -> Path:
    """Returns the directory of one run."""
    return root / profile / task / method / f"seed{seed}"


@dataclass(frozen=True)
class RunSpec:
    """One run: a method trained on a task at a seed under a profile, then evaluated."""

    profile: Profile
    method: str
    task: str
    seed: int

    def dir(self, runs: Path) -> Path:
        """Returns the run's directory in the run store `runs`."""
        return run_dir(runs, self.profile.name, self.task, self.method, self.seed)

    def title(self, with_profile: bool = False) -> str:
        """Returns "<method> on <task> seed <k>", followed by "at <profile>" when several profiles share the work."""
        return f"{self.method} on {self.task} seed {self.seed}" + (f" at {self.profile.name}" if with_profile else "")


def versions() -> dict[str, str]:
    """Returns the installed versions of the packages results depend on, and the platform and numeric path.

    `cpu_capability` is what torch reports now, in this process: the kernels it really dispatches to,
    whatever the environment asked for (a process that ran torch before the pin keeps its native
    kernels); `numerics` is the pin in force (`harness.core.environ.numeric_path`): `native` where
    the pin in the environment came too late for torch.
    """
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    found["python"] = platform.python_version()
    found["torch_threads"] = str(torch.get_num_threads())
    found["cpu_model"] = cpu_model()
    found["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    found["numerics"] = numeric_path(capability=found["cpu_capability"])
    return found


def git_commit() -> str:
    """Returns the current git commit (with '+dirty' for uncommitted changes), or 'unknown'."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
        return commit + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dumps(obj: Any) -> str:
    """Returns the canonical JSON text of a run file (sorted keys, so reruns compare byte for byte)."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_run(path: Path, manifest: dict[str, Any], records: Sequence[dict[str, Any]], metrics: dict[str, Any]) -> None:
    """Writes a run: manifest and episodes first, metrics.json last, each atomically.

    Call it holding the run's lock (`run_lock`): temp files found beside the run are then a killed
    writer's, and are removed.
    """
    (path / "metrics.json").unlink(missing_ok=True)
    remove_leftovers(path, RUN_FILES)
    atomic_write_text(path / "manifest.json", dumps(manifest))
    atomic_write_text(path / "episodes.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    faults.point("run-write")
    atomic_write_text(path / "metrics.json", dumps(metrics))


def run_lock(path: Path) -> AbstractContextManager[None]:
    """Returns the lock of one run directory: a second process evaluating the same run exits 2 naming the first."""
    return locked(path / ".lock", f"run {path}", wait=False)


def is_complete(path: Path) -> bool:
    """Returns whether a run directory holds its metrics.json."""
    return (path / "metrics.json").is_file()


def stale_reason(path: Path, key: str) -> str | None:
    """Returns why a complete run does not belong to the config whose run key is `key`, or None when it does.

    metrics.json existing says the run finished, not under which config: after a profile edit the
    old run is still complete. Its manifest's `run_key` names what it was made from.
    """
    try:
        recorded = json.loads((path / "manifest.json").read_text()).get("run_key")
    except (OSError, ValueError, AttributeError):
        return "its manifest.json is unreadable"
    if recorded is None:
        return "its manifest records no run key (made by an older harness)"
    return None if recorded == key else f"it was made under another config (run key {recorded}, now {key})"


def read_records(path: Path) -> list[dict[str, Any]]:
    """Returns the records of an episodes.jsonl; HarnessError names the file and line of a bad one."""
    records = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HarnessError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or "success" not in record or "turns" not in record:
                raise HarnessError(f"{path}:{number}: not an episode record (needs 'success' and 'turns')")
            records.append(record)
    return records


def read_run(path: Path) -> Run:
    """Returns a complete run; HarnessError for a missing or incomplete one (never half a run)."""
    if not path.is_dir():
        raise HarnessError(f"no run at {path}")
    if not is_complete(path):
        raise HarnessError(f"run {path} is incomplete (no metrics.json); rerun its `harness eval`")
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"run {path} has an unreadable manifest or metrics file ({exc})") from None
    return Run(path, manifest, read_records(path / "episodes.jsonl"), metrics)
