"""`harness reproduce`: train and evaluate what is missing, then tables, figures and REPORT.md.

The plan is data from the profile: its methods on every task and seed, its ablations on the
ablation seeds. Runs of one (task, seed) share stage prefixes; with `--jobs N` they are cut into
chains that share no stage, and N worker processes take the chains, the costliest first.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core import faults
from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.registry import method_factory
from harness.core.runs import RunSpec, dumps, is_complete
from harness.core.store import atomic_write_text, staged_outputs
from harness.evaluation.compare import read_checked_run
from harness.evaluation.evaluate import run_to_make
from harness.reporting.report import Cost, claim_tests, evidence, write_report
from harness.reporting.result_tables import shown_name
from harness.reporting.sweeps import budget_section_for
from harness.running.workers import backend_for, execute
from harness.training.stages import stage_cost, stage_hash
from harness.training.train import initial_checkpoint

TABLE_METRICS = (
    "success",
    "format_rate",
    "format_rate_t1",
    "format_rate_t2",
    "format_rate_t3plus",
    "fidelity@1",
    "fidelity@2",
    "first_p_coverage",
    "ece_first",
    "brier_first",
    "brier_skill_first",
    "auroc_first",
    "reliability_first",
    "resolution_first",
    "uncertainty_first",
    "p_coverage",
    "ece_all",
    "brier",
    "brier_skill_all",
    "auroc",
    "q_error",
    "q_error_star",
    "selection_gain",
    "selection_gain_star",
    "mean_p",
    "overconfidence",
    "p_entropy",
)
"""The summary table's metrics: first-turn calibration after `first_p_coverage` (the share of episodes
whose first turn wrote a p), all-turn calibration and Q-error after `p_coverage` (the share of turns)."""


def plan(profile: Profile) -> list[list[RunSpec]]:
    """Returns the runs of the profile grouped by (task, seed), each group in stage-sharing order."""
    for name in profile.methods + profile.ablations:
        method_factory(name)  # an unknown name fails before any work starts
    # Seeds outermost: a partial reproduction already holds every task at the first seed.
    groups: dict[tuple[int, str], list[RunSpec]] = {}
    for seed in sorted(set(profile.seeds) | set(profile.ablation_seeds)):
        for task in profile.tasks:
            items = [RunSpec(profile, m, task, seed) for m in profile.methods if seed in profile.seeds]
            items += [RunSpec(profile, m, task, seed) for m in profile.ablations if seed in profile.ablation_seeds]
            groups[(seed, task)] = items
    return list(groups.values())


def worker_threads(jobs: int, threads: int | None) -> int:
    """Returns the torch thread count of each of `jobs` workers: `threads`, else the cores shared out."""
    if threads is not None and threads < 1:
        raise HarnessError(f"--threads must be at least 1, got {threads}")
    return threads or max(1, (os.cpu_count() or 2) // jobs)


def chains(profile: Profile, group: list[RunSpec]) -> list[list[RunSpec]]:
    """Returns the runs of one (task, seed) group cut into chains that share no stage, in plan order.

    A stage's key covers its input's key, so two runs share a stage only if they share their first
    one: runs are chained by their first stage (a run without stages is a chain of its own).
    """
    found: dict[str, list[RunSpec]] = {}
    for item in group:
        stages = method_factory(item.method)(profile).stages
        found.setdefault(stage_hash(stages[0], "", "") if stages else item.title(), []).append(item)
    return list(found.values())


RUN_TOKENS = 30_000
"""Cost of evaluating one run (and starting it) in sft tokens, for ordering work only."""


def chain_cost(profile: Profile, chain: list[RunSpec]) -> int:
    """Returns a rough cost of a chain in sft tokens: its distinct stages' budgets plus its evaluations."""
    stages = {}
    for run in chain:
        for spec in method_factory(run.method)(profile).stages:
            stages[stage_hash(spec, "", "")] = spec
    return len(chain) * RUN_TOKENS + sum(stage_cost(spec) for spec in stages.values())


def must_make(run: RunSpec, runs: Path, echo: Callable[[str], None]) -> bool:
    """Returns whether a run must be made: missing, or made under another config (said in one line)."""
    why = run_to_make(run.method, run.task, run.profile, run.seed, runs)
    if why not in (None, "missing"):
        echo(f"redoing {run.title()}: {why}")
    return why is not None


def run_missing(
    profile: Profile,
    runs: Path,
    cache: Path,
    jobs: int,
    echo: Callable[[str], None],
    threads: int | None = None,
    backend: str = "local",
    address: str | None = None,
) -> int:
    """Trains and evaluates every missing or stale run of the plan; returns how many it ran.

    With `jobs` > 1 (or the ray backend) the runs are cut into chains that share no stage, and the
    workers (spawned once, at `threads` torch threads each, default the cores shared out; or Ray
    tasks asking for that many CPUs) take the chains, the costliest first, so the workers end
    together. A run's numbers depend on its thread count, not on the jobs or the backend.
    """
    groups = [[item for item in g if must_make(item, runs, echo)] for g in plan(profile)]
    groups = [g for g in groups if g]
    if not groups:
        return 0
    for seed in sorted({item.seed for g in groups for item in g}):
        initial_checkpoint(profile, seed, cache)  # built once, before workers could race for it
    if backend_for(backend, jobs).chained:
        work = sorted((c for g in groups for c in chains(profile, g)), key=lambda c: -chain_cost(profile, c))
    else:
        work = [[item] for g in groups for item in g]
    # On Ray a run asks for its threads as CPUs; one CPU each lets Ray fill every core of a cluster.
    count = (threads or 1) if backend == "ray" else worker_threads(jobs, threads)
    return execute(work, runs, cache, jobs, count, echo, backend, address)


def summary_table(profile: Profile, runs: Path) -> pd.DataFrame:
    """Returns one row per (task, method): each metric's mean over seeds, its std, and the seeds."""
    rows = []
    for task in profile.tasks:
        for method in profile.methods + profile.ablations:
            seeds = profile.seeds if method in profile.methods else profile.ablation_seeds
            dirs = [RunSpec(profile, method, task, s).dir(runs) for s in seeds]
            found = [read_checked_run(d).metrics for d in dirs if is_complete(d)]
            if not found:
                continue
            row: dict = {
                "task": task,
                "method": method,
                "seeds": len(found),
                "episodes": sum(m["n_episodes"] for m in found),
            }
            for key in TABLE_METRICS:
                values = [m[key] for m in found if m.get(key) is not None]
                row[key] = sum(values) / len(values) if values else None
                row[f"{key}_std"] = pd.Series(values).std(ddof=1) if len(values) > 1 else None
            row["success_per_seed"] = " ".join(f"{m['success']:.2f}" for m in found)
            row["random_policy"] = sum(m["random_policy_success"] for m in found) / len(found)
            row["training_tokens"] = sum(m["cost"]["training_tokens"] for m in found) / len(found)
            rows.append(row)
    return pd.DataFrame(rows)


def environment(profile: Profile, runs: Path) -> dict[str, Any]:
    """Returns what a reproduction's numbers depend on besides code and seeds, from its run manifests.

    `versions` maps each package (and python, torch_threads) to the distinct values found in the
    manifests of the profile's complete runs; `git_commits` lists the commits they ran at.
    """
    found: dict[str, set[str]] = {}
    commits: set[str] = set()
    for group in plan(profile):
        for run in group:
            path = run.dir(runs)
            if not is_complete(path):
                continue
            manifest = json.loads((path / "manifest.json").read_text())
            for key, value in manifest.get("versions", {}).items():
                found.setdefault(key, set()).add(str(value))
            commits.add(str(manifest.get("git_commit", "unknown")))
    return {
        "profile": profile.name,
        "versions": {key: sorted(values) for key, values in sorted(found.items())},
        "git_commits": sorted(commits),
    }


def write_tables(table: pd.DataFrame, out: Path) -> list[Path]:
    """Writes the summary as CSV, markdown and LaTeX (None shown as a dash); returns the paths.

    The CSV keeps the metric keys (`harness verify` reads it); markdown and LaTeX label the all-turn
    calibration columns "(all turns)".
    """
    shown = table.astype(object).where(table.notna(), "-")
    shown = shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v).rename(columns=shown_name)
    paths = [out / "summary.csv", out / "summary.md", out / "summary.tex"]
    atomic_write_text(paths[0], table.to_csv(index=False))
    faults.point("tables")
    atomic_write_text(paths[1], shown.to_markdown(index=False) + "\n")
    atomic_write_text(paths[2], shown.to_latex(index=False, escape=True))
    return paths


def write_summary(profile: Profile, runs: Path, out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Writes the summary tables and environment.json to `out`; returns the table and the files."""
    summary = summary_table(profile, runs)
    if summary.empty:
        raise HarnessError(f"no complete runs of profile {profile.name} under {runs}")
    written = write_tables(summary, out)
    atomic_write_text(out / "environment.json", dumps(environment(profile, runs)))
    return summary, [*written, out / "environment.json"]


def measure_cost(started: float, jobs: int) -> Cost:
    """Returns the wall time since `started` and the peak memory of this process and of its workers."""
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN holds the largest finished child, not a sum.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return Cost(time.time() - started, peak, worker, jobs)


OUTPUTS = ("tables", "figures", "REPORT.md")
"""What `build_outputs` writes under a results folder; the rest of it (sweeps/) is left alone."""


def build_outputs(
    profile: Profile, runs: Path, cache: Path, results: Path, started: float | None = None, jobs: int = 1
) -> tuple[list[Path], Cost | None]:
    """Writes tables, figures and REPORT.md from the run store; returns the files written and the cost.

    With `started` (the reproduce call's start time) REPORT.md records the wall time and peak memory
    measured just before it is written; without it (`harness report`) nothing is timed. All of them
    are written first and then renamed into place (`staged_outputs`): a failure on the way (a full
    disk) leaves the previous tables, figures and REPORT.md as they were.
    """
    from harness.reporting.plots import plot_all

    with staged_outputs(results, OUTPUTS) as stage:
        summary, written = write_summary(profile, runs, stage / "tables")
        written += plot_all(runs, cache, profile.name, stage / "figures", methods=profile.methods + profile.ablations)
        # The claim tests' paired bootstraps take minutes on the default profile: they count in the wall time.
        rows = evidence(profile, runs, claim_tests(profile))
        cost = None if started is None else measure_cost(started, jobs)
        report = write_report(profile, runs, summary, results, cost, rows)
        # Sweeps written under this results folder (`harness sweep`'s default out) add their section.
        for claims in sorted((results / "sweeps").glob("*/claims.csv")):
            report = report.rstrip("\n") + "\n\n" + budget_section_for(claims.parent)
        atomic_write_text(stage / "REPORT.md", report)
    return [results / p.relative_to(stage) for p in [*written, stage / "REPORT.md"]], cost
