"""The `harness` command line: parses arguments, then calls library functions that tests call too.

Bad input (HarnessError, a click usage error, or a path that cannot be read or written) ends with
one line on stderr naming the problem and exit code 2; a bug (any other exception) keeps its
traceback and exits 1.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path

import click

from harness.cli.browse import data, methods, tasks, view
from harness.cli.browse import profile as profile_group
from harness.cli.checks import models, probe, verify
from harness.cli.options import (
    CACHE,
    PROFILE,
    QUIET,
    RESULTS,
    RUNS,
    WORKERS,
    check_workers,
    launch_options,
    progress_mode,
    resolve_profile,
    results_folder,
    run_options,
    use_launcher,
)
from harness.core import environ
from harness.core.errors import HarnessError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--include-path",
    multiple=True,
    type=click.Path(path_type=Path),
    help="a folder of your own task or method modules to import (repeatable; also HARNESS_INCLUDE_PATH)",
)
def cli(include_path: tuple[Path, ...]) -> None:
    """foresight-harness: foresight training (WM-AMT, FE-SFT, FC-RL) beside its baselines."""
    from harness.core import faults
    from harness.core.registry import INCLUDE_ENV

    faults.check()  # a malformed HARNESS_KILL_AT fails here, not at its point midway through a command

    if include_path:
        # Through the environment, so that worker processes (reproduce --jobs) import them too.
        folders = [str(p.resolve()) for p in include_path] + [os.environ.get(INCLUDE_ENV, "")]
        os.environ[INCLUDE_ENV] = os.pathsep.join(f for f in folders if f)


@cli.command()
@run_options
@launch_options
def train(
    method_name: str,
    task_name: str,
    seed: int,
    profile: str,
    model: str | None,
    lora: bool,
    data_path: str | None,
    cache: Path,
    launcher: str,
    processes: int | None,
    accelerate_config: Path | None,
    quiet: bool,
) -> None:
    """Trains whatever is missing of a method on a task, reusing cached stages, then stops."""
    from harness.core import progress
    from harness.training.train import train_method

    use_launcher(launcher, processes, accelerate_config, trains_only=True)
    prof = resolve_profile(profile, model, lora, task_name, data_path)
    with progress.session(progress_mode(quiet), click.echo):
        _, checkpoint, outcomes = train_method(method_name, task_name, prof, seed, cache)
    for o in outcomes:
        verb = "reused" if o.reused else "trained"
        click.echo(f"{verb:<8} {o.name:<8} {o.hash}  tokens_seen={o.stats.get('tokens_seen')}")
    click.echo(f"checkpoint {checkpoint.adapters[-1] if checkpoint.adapters else checkpoint.base}")


@cli.command("eval")
@run_options
@RUNS
@launch_options
def evaluate(
    method_name: str,
    task_name: str,
    seed: int,
    profile: str,
    model: str | None,
    lora: bool,
    data_path: str | None,
    cache: Path,
    quiet: bool,
    runs: Path,
    launcher: str,
    processes: int | None,
    accelerate_config: Path | None,
) -> None:
    """Trains what is missing, plays the test split, writes episodes.jsonl, then metrics.json."""
    from harness.core import progress
    from harness.evaluation.evaluate import evaluate_run, summary_line

    use_launcher(launcher, processes, accelerate_config, trains_only=False)
    prof = resolve_profile(profile, model, lora, task_name, data_path)
    with progress.session(progress_mode(quiet), click.echo):
        path, metrics = evaluate_run(method_name, task_name, prof, seed, cache, runs)
    click.echo(f"{method_name} on {task_name} seed {seed}: {summary_line(metrics)}")
    click.echo(f"run written to {path}")


@cli.command()
@click.option("--method", "method_name", default="foresight", show_default=True)
@click.option("--baseline", default="sft-mimic", show_default=True)
@click.option("--task", "task_name", default="all", show_default=True, help="a task of the profile, or all")
@PROFILE
@click.option("--format", "fmt", default="table", show_default=True, help="table, md, csv or latex")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="write to this file instead of stdout")
@RUNS
@CACHE
@click.option("--run-missing", is_flag=True, help="train and evaluate missing runs first")
def compare(
    method_name: str,
    baseline: str,
    task_name: str,
    profile: str,
    fmt: str,
    out: Path | None,
    runs: Path,
    cache: Path,
    run_missing: bool,
) -> None:
    """Compares two methods paired by task, seed and episode, with paired-bootstrap CIs."""
    from harness.core.config import load_profile
    from harness.core.registry import method_factory
    from harness.core.runs import is_complete, run_dir
    from harness.core.store import atomic_write_text
    from harness.evaluation.compare import FORMATS, compare_table, load_pairs, render
    from harness.evaluation.evaluate import evaluate_run

    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    prof = load_profile(profile)
    if task_name != "all":
        prof.task_knobs(task_name)  # a task the profile lacks fails before any work
    tasks_ = list(prof.tasks) if task_name == "all" else [task_name]
    if run_missing:
        for task in tasks_:
            for name in (method_name, baseline):
                for seed in prof.seeds:
                    if not is_complete(run_dir(runs, prof.name, task, name, seed)):
                        evaluate_run(name, task, prof, seed, cache, runs)
    # The hint for a missing run repeats the user's own --profile (a name or a file), --runs and --cache.
    options = shlex.join(["--profile", profile, "--runs", str(runs), "--cache", str(cache)])
    pairs = load_pairs(prof, runs, method_name, baseline, tasks_, options=options)
    verbal = (method_factory(method_name)(prof).verbal_p, method_factory(baseline)(prof).verbal_p)
    text = render(compare_table(pairs, verbal, prof.data.look_k), fmt, method_name, baseline)
    if out:
        atomic_write_text(out, text)
        click.echo(f"written to {out}")
    else:
        click.echo(text, nl=False)


@cli.command()
@PROFILE
@WORKERS
@RUNS
@CACHE
@RESULTS
@launch_options
@QUIET
def reproduce(
    profile: str,
    jobs: int,
    threads: int | None,
    backend: str,
    address: str | None,
    runs: Path,
    cache: Path,
    results: Path | None,
    launcher: str,
    processes: int | None,
    accelerate_config: Path | None,
    quiet: bool,
) -> None:
    """Trains and evaluates whatever is missing, then writes tables, figures and REPORT.md."""
    import time

    from harness.core import progress
    from harness.core.config import load_profile
    from harness.running.reproduce import build_outputs, run_missing, worker_threads

    check_workers(jobs, backend, address)
    worker_threads(jobs, threads)  # a bad --threads fails before any work
    use_launcher(launcher, processes, accelerate_config, trains_only=False)
    started = time.time()
    prof = load_profile(profile)
    with progress.session(progress_mode(quiet), click.echo) as shown:
        ran = run_missing(prof, runs, cache, jobs, shown.say, threads, backend, address)
    click.echo(f"{ran} run(s) trained and evaluated in {time.time() - started:.0f} s")
    folder = results or results_folder(prof)
    paths, cost = build_outputs(prof, runs, cache, folder, started, jobs)
    _echo_written(paths, folder, quiet)
    click.echo("\n".join(line.removeprefix("- ") for line in cost.lines()))


def _echo_written(paths: list[Path], folder: Path, quiet: bool) -> None:
    """Prints a line per file written, or with --quiet one line counting them."""
    if quiet:
        click.echo(f"wrote {len(paths)} files under {folder}")
    else:
        for path in paths:
            click.echo(f"wrote {path}")


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@cli.command()
@PROFILE
@click.option("--name", "sweep_name", required=True, help="a sweep of the profile's `sweeps:` section, or a new name")
@click.option("--vary", multiple=True, help="KEY=V1,V2,... over a dotted profile key (repeatable)")
@click.option("--tasks", "tasks_", default=None, help="comma-separated (default: the sweep's, else the profile's)")
@click.option("--methods", default=None, help="comma-separated methods (default: the sweep's, else the profile's)")
@click.option("--seeds", default=None, help="comma-separated seeds (default: the sweep's, else the profile's)")
@WORKERS
@RUNS
@CACHE
@click.option("--out", type=click.Path(path_type=Path), default=None, help="default: results/sweeps/<name>")
@click.option("--dry-run", is_flag=True, help="list the points and the runs missing, train nothing")
@QUIET
def sweep(
    profile: str,
    sweep_name: str,
    vary: tuple[str, ...],
    tasks_: str | None,
    methods: str | None,
    seeds: str | None,
    jobs: int,
    threads: int | None,
    backend: str,
    address: str | None,
    runs: Path,
    cache: Path,
    out: Path | None,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Runs a grid over profile fields (each point a profile variant), then its tables, figures and BUDGET.md."""
    from harness.core import progress
    from harness.core.config import load_profile
    from harness.running.reproduce import worker_threads
    from harness.running.sweep import parse_vary, point_slug, points, run_sweep, sweep_spec, sweep_work
    from harness.running.sweep_results import write_sweep_results

    check_workers(jobs, backend, address)
    try:
        seed_list = [int(s) for s in _names(seeds) or []] or None
    except ValueError:
        raise HarnessError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    count = (threads or 1) if backend == "ray" else worker_threads(jobs, threads)
    prof = load_profile(profile)
    spec = sweep_spec(prof, sweep_name, parse_vary(vary), _names(tasks_), _names(methods), seed_list)
    found = points(prof, spec)
    runs_per_point = len(spec.tasks) * len(spec.methods) * len(spec.seeds)
    click.echo(f"sweep {spec.name}: {len(found)} point(s) x {runs_per_point} run(s)")
    if dry_run:
        missing = sum(len(c) for c in sweep_work(found, runs, cache))
        for point in found:
            click.echo(f"  {point.profile.name}  ({point_slug(point.values)})")
        click.echo(f"{missing} run(s) missing")
        return
    started = time.time()
    with progress.session(progress_mode(quiet), click.echo) as shown:
        ran = run_sweep(found, runs, cache, jobs, count, shown.say, backend, address)
    click.echo(f"{ran} run(s) trained and evaluated in {time.time() - started:.0f} s")
    folder = out or Path("results/sweeps") / spec.name
    _echo_written(write_sweep_results(spec, found, runs, folder), folder, quiet)


@cli.command()
@PROFILE
@RUNS
@CACHE
@RESULTS
def report(profile: str, runs: Path, cache: Path, results: Path | None) -> None:
    """Rebuilds tables, figures and REPORT.md from the runs already in the store (trains nothing)."""
    from harness.core.config import load_profile
    from harness.running.reproduce import build_outputs

    prof = load_profile(profile)
    for path in build_outputs(prof, runs, cache, results or results_folder(prof))[0]:
        click.echo(f"wrote {path}")


for command in (tasks, data, methods, profile_group, view, probe, verify, models):
    cli.add_command(command)


def main() -> None:
    """Entry point: runs the command line, mapping HarnessError to one line and exit code 2."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Set by --launcher for this command's own workers only, never inherited from an earlier one.
    os.environ.pop("HARNESS_LAUNCHER", None)
    try:
        # Before any command imports torch: this process and every one it starts inherit the pin.
        environ.apply()
        code = cli.main(standalone_mode=False)
    except HarnessError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except OSError as exc:
        # A path the user named cannot be read or written (missing, a file where a folder must be,
        # no permission, disk full): the user's to fix, so one line and exit 2, not a traceback.
        click.echo(f"error: {os_error_line(exc)}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def os_error_line(exc: OSError) -> str:
    """Returns the one line an OSError prints: the system's reason and the path.

    A failed rename names the temp file first; the path the user gave is the second. shutil.copytree
    raises every file it failed to copy as one list (a full disk fails them all): the first stands
    for them.
    """
    failures = exc.args[0] if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) else []
    if failures and len(failures[0]) == 3:
        _, target, why = failures[0]
        reason = re.sub(r"^\[Errno \d+\] ", "", str(why)).split(": '")[0]
        more = f" (and {len(failures) - 1} more file(s))" if len(failures) > 1 else ""
        return f"cannot write {target}: {reason}{more}"
    named = exc.filename2 or exc.filename
    return f"{exc.strerror or exc}" + (f": {named}" if named else "")


if __name__ == "__main__":
    main()
