"""The `harness` command line: parses arguments, then calls library functions that tests call too.

Bad input (HarnessError, a click usage error, or a path that cannot be read or written) ends with
one line on stderr naming the problem and exit code 2; a bug (any other exception) keeps its
traceback and exits 1.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click

from harness.cli.checks import models, probe, verify
from harness.cli.options import (
    JOBS,
    PROFILE,
    QUIET,
    SEED,
    THREADS,
    progress_mode,
    resolve_profile,
    results_folder,
    run_options,
)
from harness.core.errors import HarnessError

QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
"""Set (unless the user set them) before anything imports transformers or datasets: offline and quiet."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """foresight-harness: foresight training (WM-AMT, FE-SFT, FC-RL) beside its baselines."""


@cli.group()
def tasks() -> None:
    """List and inspect the registered tasks."""


@tasks.command("list")
@PROFILE
def tasks_list(profile: str) -> None:
    """One line per registered task: family, vocabulary and split sizes at the profile's knobs."""
    from harness.core.config import load_profile
    from harness.core.registry import make_task, task_names

    prof = load_profile(profile)
    for name in task_names():
        task = make_task(name, prof.tasks.get(name))
        c = task.config
        click.echo(
            f"{name:<12} {task.family:<7} vocab={len(task.vocabulary()):<5} "
            f"train={c.n_train} dev={c.n_dev} test={c.n_test}"
        )


@tasks.command("show")
@click.argument("name")
@PROFILE
def tasks_show(name: str, profile: str) -> None:
    """Knobs, vocabulary size, split sizes and an example expert episode in both formats."""
    from harness.core.config import load_profile
    from harness.reporting.describe import describe_task

    click.echo(describe_task(name, load_profile(profile)))


@cli.group()
def data() -> None:
    """Build the data recipes (D_expert, D_look, D_world)."""


@data.command("build")
@click.option("--task", "task_name", required=True, help="a registered task")
@PROFILE
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="default: results/data/<profile>/<task>/seed<k>"
)
def data_build(task_name: str, profile: str, seed: int, out: Path | None) -> None:
    """Builds D_expert, D_look, D_world and the probe items; prints sizes, token counts and coverage."""
    from harness.core.config import load_profile
    from harness.core.registry import make_task
    from harness.data.audit import audit_lines
    from harness.data.recipes import build_corpora, check_out_dir, corpus_stats, save_corpora
    from harness.evaluation.probes.items import PROBE_FILES, jsonl_text, probe_items

    prof = load_profile(profile)
    task = make_task(task_name, prof.tasks.get(task_name))
    out = out or Path("results/data") / prof.name / task_name / f"seed{seed}"
    check_out_dir(out)  # before the work, not after it
    click.echo(f"building {task_name} data, profile {prof.name}, seed {seed} ...", err=True)
    corpora = build_corpora(task, prof.data, seed)
    stats = corpus_stats(corpora)
    probes = probe_items(task, prof.data, seed)
    save_corpora(corpora, out, stats, {PROBE_FILES[name]: jsonl_text(rows) for name, rows in probes.items()})
    for name in ("D_expert", "D_look", "D_world"):
        s = stats[name]
        click.echo(f"{name:<9} rows={s['rows']:<6} tokens={s['tokens']:<8} agent_tokens={s['agent_tokens']}")
    click.echo(f"probes    {' '.join(f'{PROBE_FILES[n]}={len(r)}' for n, r in probes.items())} (test-side items)")
    cov = stats["coverage"]
    click.echo(
        f"coverage  test episodes needing parts no train expert episode shows: {cov['test_needs_unseen']:.0%}; "
        f"of those {int(cov['unseen_parts'])} parts, D_world shows {cov['unseen_in_world']:.0%}"
    )
    pt = stats["p_targets"]
    click.echo(
        f"p targets (D_look, reference policy of harness.data.reference): n={pt['n']} mean={pt['mean']:.3f} "
        f"share at 1.0={pt['share_1.0']:.0%}"
    )
    click.echo("          " + " ".join(f"{w}:{c}" for w, c in pt["histogram"].items()))
    for line in audit_lines(corpora.audit):
        click.echo(line)
    click.echo(f"expert success on train: {stats['expert_success']:.0%}")
    click.echo(f"written to {out}")


@cli.group()
def methods() -> None:
    """List the registered methods and their stages."""


@methods.command("list")
@PROFILE
def methods_list(profile: str) -> None:
    """One line per method: its format and its stages with their token or step budgets."""
    from harness.core.config import load_profile
    from harness.core.registry import method_factory, method_names
    from harness.training.stages import GrpoSettings

    prof = load_profile(profile)
    for name in method_names():
        method = method_factory(name)(prof)
        stages = [
            f"{s.name}({s.data}, {s.settings.steps} steps)"
            if isinstance(s.settings, GrpoSettings)
            else f"{s.name}({s.data}, {s.settings.tokens} tokens)"
            for s in method.stages
        ]
        click.echo(f"{name:<24} {method.fmt:<10} {' -> '.join(stages) or 'no training (few-shot prompting)'}")


@cli.command()
@run_options
def train(
    method_name: str, task_name: str, seed: int, profile: str, model: str | None, lora: bool, cache: Path, quiet: bool
) -> None:
    """Trains whatever is missing of a method on a task, reusing cached stages, then stops."""
    from harness.core import progress
    from harness.training.train import train_method

    prof = resolve_profile(profile, model, lora)
    with progress.session(progress_mode(quiet), click.echo):
        _, checkpoint, outcomes = train_method(method_name, task_name, prof, seed, cache)
    for o in outcomes:
        verb = "reused" if o.reused else "trained"
        click.echo(f"{verb:<8} {o.name:<8} {o.hash}  tokens_seen={o.stats.get('tokens_seen')}")
    click.echo(f"checkpoint {checkpoint.adapters[-1] if checkpoint.adapters else checkpoint.base}")


@cli.command("eval")
@run_options
@click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
def evaluate(
    method_name: str,
    task_name: str,
    seed: int,
    profile: str,
    model: str | None,
    lora: bool,
    cache: Path,
    quiet: bool,
    runs: Path,
) -> None:
    """Trains what is missing, plays the test split, writes episodes.jsonl, then metrics.json."""
    from harness.core import progress
    from harness.evaluation.evaluate import evaluate_run, summary_line

    prof = resolve_profile(profile, model, lora)
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
@click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=Path("results/cache"), show_default=True)
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
    pairs = load_pairs(prof, runs, method_name, baseline, tasks_)
    verbal = (method_factory(method_name)(prof).verbal_p, method_factory(baseline)(prof).verbal_p)
    text = render(compare_table(pairs, verbal, prof.data.look_k), fmt, method_name, baseline)
    if out:
        atomic_write_text(out, text)
        click.echo(f"written to {out}")
    else:
        click.echo(text, nl=False)


@cli.command()
@PROFILE
@JOBS
@THREADS
@click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=Path("results/cache"), show_default=True)
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=None,
    help="where tables, figures and REPORT.md go (default: the profile's `reference` folder, else results/<profile>)",
)
@QUIET
def reproduce(
    profile: str, jobs: int, threads: int | None, runs: Path, cache: Path, results: Path | None, quiet: bool
) -> None:
    """Trains and evaluates whatever is missing, then writes tables, figures and REPORT.md."""
    import time

    from harness.core import progress
    from harness.core.config import load_profile
    from harness.running.reproduce import build_outputs, run_missing, worker_threads

    if jobs < 1:
        raise HarnessError(f"--jobs must be at least 1, got {jobs}")
    worker_threads(jobs, threads)  # a bad --threads fails before any work
    started = time.time()
    prof = load_profile(profile)
    with progress.session(progress_mode(quiet), click.echo) as shown:
        ran = run_missing(prof, profile, runs, cache, jobs, shown.say, threads)
    click.echo(f"{ran} run(s) trained and evaluated in {time.time() - started:.0f} s")
    folder = results or results_folder(prof)
    paths, cost = build_outputs(prof, runs, cache, folder, started, jobs)
    for path in paths if not quiet else []:
        click.echo(f"wrote {path}")
    if quiet:
        click.echo(f"wrote {len(paths)} files under {folder}")
    click.echo("\n".join(line.removeprefix("- ") for line in cost.lines()))


@cli.command()
@PROFILE
@click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=Path("results/cache"), show_default=True)
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=None,
    help="where tables, figures and REPORT.md go (default: the profile's `reference` folder, else results/<profile>)",
)
def report(profile: str, runs: Path, cache: Path, results: Path | None) -> None:
    """Rebuilds tables, figures and REPORT.md from the runs already in the store (trains nothing)."""
    from harness.core.config import load_profile
    from harness.running.reproduce import build_outputs

    prof = load_profile(profile)
    for path in build_outputs(prof, runs, cache, results or results_folder(prof))[0]:
        click.echo(f"wrote {path}")


@cli.command()
@PROFILE
@click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="default: results/view/<profile>")
@click.option("--method", "method_name", default="foresight", show_default=True, help="left side of the compare page")
@click.option("--baseline", default="sft-mimic", show_default=True, help="right side of the compare page")
def view(profile: str, runs: Path, out: Path | None, method_name: str, baseline: str) -> None:
    """Writes a static HTML browser of the stored runs: an index, a page per run, a compare page."""
    from harness.core.config import load_profile
    from harness.core.registry import method_factory
    from harness.reporting.view import write_site

    prof = load_profile(profile)
    for name in (method_name, baseline):
        method_factory(name)  # an unknown name fails before anything is written
    out = out or Path("results/view") / prof.name
    pages = write_site(prof, runs, out, results_folder(prof) / "figures", method_name, baseline)
    click.echo(f"wrote {len(pages)} pages to {out}")
    click.echo(f"open {out / 'index.html'} in a browser, or serve it: python -m http.server -d {out}")


for command in (probe, verify, models):
    cli.add_command(command)


def main() -> None:
    """Entry point: runs the command line, mapping HarnessError to one line and exit code 2."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
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
        # A failed rename names the temp file first; the path the user gave is the second.
        named = exc.filename2 or exc.filename
        where = f": {named}" if named else ""
        click.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
