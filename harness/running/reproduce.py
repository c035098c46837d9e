"""`harness reproduce`: train and evaluate what is missing, then tables, figures and REPORT.md.

The plan is data from the profile: its methods on every task and seed, its ablations on the
ablation seeds. Runs of one (task, seed) share stage prefixes; with `--jobs N` they are cut into
chains that share no stage, and N worker processes take the chains, the costliest first.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core import faults, progress
from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.registry import method_factory
from harness.core.runs import dumps, is_complete, read_run, run_dir
from harness.core.store import atomic_write_text
from harness.evaluation.evaluate import evaluate_run, summary_line
from harness.reporting.report import Cost, claim_tests, evidence, write_report
from harness.training.stages import GrpoSettings, stage_hash
from harness.training.train import initial_checkpoint

Item = tuple[str, str, int]
TABLE_METRICS = (
    "success",
    "format_rate",
    "fidelity@1",
    "fidelity@2",
    "ece_first",
    "ece_all",
    "brier",
    "auroc",
    "q_error",
    "q_error_star",
    "selection_gain",
    "mean_p",
    "overconfidence",
    "p_entropy",
)


def plan(profile: Profile) -> list[list[Item]]:
    """Returns the runs of the profile grouped by (task, seed), each group in stage-sharing order."""
    for name in profile.methods + profile.ablations:
        method_factory(name)  # an unknown name fails before any work starts
    # Seeds outermost: a partial reproduction already holds every task at the first seed.
    groups: dict[tuple[int, str], list[Item]] = {}
    for seed in sorted(set(profile.seeds) | set(profile.ablation_seeds)):
        for task in profile.tasks:
            items = [(m, task, seed) for m in profile.methods if seed in profile.seeds]
            items += [(m, task, seed) for m in profile.ablations if seed in profile.ablation_seeds]
            groups[(seed, task)] = items
    return list(groups.values())


def worker_threads(jobs: int, threads: int | None) -> int:
    """Returns the torch thread count of each of `jobs` workers: `threads`, else the cores shared out."""
    if threads is not None and threads < 1:
        raise HarnessError(f"--threads must be at least 1, got {threads}")
    return threads or max(1, (os.cpu_count() or 2) // jobs)


def chains(profile: Profile, group: list[Item]) -> list[list[Item]]:
    """Returns the runs of one (task, seed) group cut into chains that share no stage, in plan order.

    A stage's key covers its input's key, so two runs share a stage only if they share their first
    one: runs are chained by their first stage (a run without stages is a chain of its own).
    """
    found: dict[object, list[Item]] = {}
    for item in group:
        stages = method_factory(item[0])(profile).stages
        found.setdefault(stage_hash(stages[0], "", "") if stages else item, []).append(item)
    return list(found.values())


GRPO_EPISODE_TOKENS = 250
"""Cost of one GRPO episode in sft tokens, for ordering work only (measured: a 20-step, 640-episode
fc-rl stage takes about as long as 160k sft tokens on the default model)."""
RUN_TOKENS = 30_000
"""Cost of evaluating one run (and starting it) in sft tokens, for ordering work only."""


def chain_cost(profile: Profile, chain: list[Item]) -> int:
    """Returns a rough cost of a chain in sft tokens: its distinct stages' budgets plus its evaluations."""
    stages = {}
    for method, _, _ in chain:
        for spec in method_factory(method)(profile).stages:
            stages[stage_hash(spec, "", "")] = spec.settings
    cost = len(chain) * RUN_TOKENS
    for settings in stages.values():
        if isinstance(settings, GrpoSettings):
            cost += settings.steps * settings.prompts_per_step * settings.num_generations * GRPO_EPISODE_TOKENS
        else:
            cost += settings.tokens
    return cost


def _start_worker(threads: int, events: Any, counter: Any) -> None:
    """Sets a worker's torch threads, numbers it, sends its progress to the parent and silences it.

    The parent reports each run in one line and draws the workers' stages from `events`.
    """
    import torch

    torch.set_num_threads(threads)
    with counter.get_lock():
        counter.value += 1
        number = counter.value
    progress.use(progress.QueueReporter(events, str(number)))
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    os.close(quiet)


def _run_chain(chain: list[Item], profile_arg: str, runs: Path, cache: Path) -> list[tuple[Item, str]]:
    """Trains and evaluates a chain's runs in order in a worker process; returns each run's summary."""
    from harness.core.config import load_profile

    profile = load_profile(profile_arg)
    done = []
    for item in chain:
        try:
            _, metrics = evaluate_run(item[0], item[1], profile, item[2], cache, runs)
        except Exception as exc:
            line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HarnessError(f"{item[0]} on {item[1]} seed {item[2]} failed: {line}") from None
        done.append((item, summary_line(metrics)))
    return done


def run_missing(
    profile: Profile,
    profile_arg: str,
    runs: Path,
    cache: Path,
    jobs: int,
    echo: Callable[[str], None],
    threads: int | None = None,
) -> int:
    """Trains and evaluates every missing run of the plan; returns how many it ran.

    With `jobs` > 1 the runs are cut into chains that share no stage, and `jobs` worker processes
    (spawned once, at `threads` torch threads each, default the cores shared out) take the chains,
    the costliest first, so the workers end together. A run's numbers depend on its thread count,
    not on the jobs.
    """
    groups = [
        [item for item in g if not is_complete(run_dir(runs, profile.name, item[1], item[0], item[2]))]
        for g in plan(profile)
    ]
    groups = [g for g in groups if g]
    total = sum(len(g) for g in groups)
    if not total:
        return 0
    for seed in sorted({item[2] for g in groups for item in g}):
        initial_checkpoint(profile, seed, cache)  # built once, before workers could race for it
    done = [0]
    started = time.time()
    progress.active().start_runs(total)

    def finish(item: Item, line: str) -> None:
        done[0] += 1
        progress.active().finish_run()
        echo(f"[{done[0]}/{total}] {item[0]} on {item[1]} seed {item[2]}: {line} ({time.time() - started:.0f} s)")

    if jobs <= 1:
        for group in groups:
            for item in group:
                _, metrics = evaluate_run(item[0], item[1], profile, item[2], cache, runs)
                finish(item, summary_line(metrics))
        return total
    work = sorted((c for g in groups for c in chains(profile, g)), key=lambda c: -chain_cost(profile, c))
    context, count = multiprocessing.get_context("spawn"), worker_threads(jobs, threads)
    events = context.Queue()
    drawing = progress.forward_events(events, progress.active())
    initargs = (count, events, context.Value("i", 0))
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=initargs)
    try:
        with pool:
            futures = [pool.submit(_run_chain, chain, profile_arg, runs, cache) for chain in work]
            try:
                for future in as_completed(futures):
                    for item, line in future.result():
                        finish(item, line)
            except BrokenProcessPool:
                raise HarnessError(
                    "a reproduce worker process died (killed, or out of memory); rerun to resume; "
                    "--jobs 1 shows its output"
                ) from None
            finally:
                for future in futures:
                    future.cancel()
    finally:
        events.put(None)
        drawing.join(timeout=10)
    return total


def summary_table(profile: Profile, runs: Path) -> pd.DataFrame:
    """Returns one row per (task, method): each metric's mean over seeds, its std, and the seeds."""
    rows = []
    for task in profile.tasks:
        for method in profile.methods + profile.ablations:
            seeds = profile.seeds if method in profile.methods else profile.ablation_seeds
            found = [
                read_run(run_dir(runs, profile.name, task, method, s)).metrics
                for s in seeds
                if is_complete(run_dir(runs, profile.name, task, method, s))
            ]
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
        for method, task, seed in group:
            path = run_dir(runs, profile.name, task, method, seed)
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
    """Writes the summary as CSV, markdown and LaTeX (None shown as a dash); returns the paths."""
    shown = table.astype(object).where(table.notna(), "-")
    shown = shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)
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


def build_outputs(
    profile: Profile, runs: Path, cache: Path, results: Path, started: float | None = None, jobs: int = 1
) -> tuple[list[Path], Cost | None]:
    """Writes tables, figures and REPORT.md from the run store; returns the files written and the cost.

    With `started` (the reproduce call's start time) REPORT.md records the wall time and peak memory
    measured just before it is written; without it (`harness report`) nothing is timed.
    """
    from harness.reporting.plots import plot_all

    summary, written = write_summary(profile, runs, results / "tables")
    written += plot_all(runs, cache, profile.name, results / "figures", methods=profile.methods + profile.ablations)
    # The claim tests' paired bootstraps take minutes on the default profile: they count in the wall time.
    rows = evidence(profile, runs, claim_tests(profile))
    cost = None if started is None else measure_cost(started, jobs)
    atomic_write_text(results / "REPORT.md", write_report(profile, runs, summary, results, cost, rows))
    return [*written, results / "REPORT.md"], cost
