"""REPORT.md's "Did each stage do its job?": the stage probes of every run (harness.evaluation.world_model).

Per task, one row per stage of each method the profile runs: the world-model accuracy of the
checkpoint after that stage on familiar and held-out transitions, and for a grpo stage the
train-side reward and first-turn Brier at its first and last logged steps. Each value is the mean
over the seeds whose run recorded it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.config import Profile
from harness.core.registry import method_factory
from harness.core.runs import is_complete, run_dir

HEADER = (
    "| method | stage | world model: familiar | held-out | items (familiar / held-out / dropped) "
    "| RL reward: first step | last step | first-turn Brier: first step | last step |"
)


def _stat(entries: list[dict[str, Any]], key: str, spec: str = ".3f") -> str:
    """Returns the mean of `key` over the entries that hold a value for it, formatted; '-' when none does."""
    kept = [e[key] for e in entries if e.get(key) is not None]
    return format(float(np.mean(kept)), spec) if kept else "-"


def _run_probes(profile: Profile, runs: Path, task: str, method: str) -> list[dict[str, Any]]:
    """Returns the stage probes ({"world_model": ..., "rl": ...}) of each complete run of `method` on `task`."""
    seeds = profile.seeds if method in profile.methods else profile.ablation_seeds
    found = []
    for seed in seeds:
        path = run_dir(runs, profile.name, task, method, seed)
        if is_complete(path):
            metrics = json.loads((path / "metrics.json").read_text())
            found.append({"world_model": metrics.get("world_model", {}), "rl": metrics.get("rl", {})})
    return found


def stage_rows(profile: Profile, runs: Path, task: str) -> list[str]:
    """Returns the table rows of one task: a row per stage of each method with at least one probed run."""
    rows = []
    for method in dict.fromkeys([*profile.methods, *profile.ablations]):
        probes = _run_probes(profile, runs, task, method)
        for stage in (s.name for s in method_factory(method)(profile).stages):
            wm = [p["world_model"][stage] for p in probes if stage in p["world_model"]]
            rl = [p["rl"][stage] for p in probes if stage in p["rl"]]
            if not wm and not rl:
                continue
            counts = ("n_familiar", "n_heldout", "heldout_dropped")
            items = " / ".join(_stat(wm, key, ".0f") for key in counts) if wm else "-"
            rows.append(
                f"| {method} | {stage} | {_stat(wm, 'familiar')} | {_stat(wm, 'heldout')} | {items} "
                f"| {_stat(rl, 'reward_first')} | {_stat(rl, 'reward_last')} "
                f"| {_stat(rl, 'brier_first_step')} | {_stat(rl, 'brier_last_step')} |"
            )
    return rows


def stage_probe_section(profile: Profile, runs: Path) -> list[str]:
    """Returns the lines of REPORT.md's "Did each stage do its job?" section: a table per task."""
    lines = [
        "## Did each stage do its job?",
        "",
        "World model: the share of next observations the checkpoint after each stage writes exactly (greedy,",
        "after 'world <state> act <action> ->'), on transitions of D_world's own exploration (familiar) and on",
        "transitions explored from dev instances whose line occurs in no training text (held-out; those whose",
        "line occurs are dropped, and counted). A later stage's drop shows what it forgot. RL: the train-side",
        "reward and the first-turn Brier (p - outcome)^2 of a grpo stage's first and last logged steps. Means",
        "over seeds; a dash: not recorded.",
        "",
    ]
    for task in profile.tasks:
        rows = stage_rows(profile, runs, task)
        lines += [f"### {task}", ""]
        lines += [HEADER, "|---|---|---|---|---|---|---|---|---|", *rows] if rows else ["no run records stage probes."]
        lines.append("")
    return lines
