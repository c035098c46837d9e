"""The `harness` command line: parses arguments, then calls library functions that tests call too.

Bad input (HarnessError, a click usage error, or a path that cannot be read or written) ends with
one line on stderr naming the problem and exit code 2; a bug (any other exception) keeps its
traceback and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.errors import HarnessError

QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
"""Set (unless the user set them) before anything imports transformers or datasets: offline and quiet."""

SEED = click.IntRange(min=0)
"""Seeds feed numpy's SeedSequence, which takes non-negative integers only."""

if TYPE_CHECKING:
    from harness.config import Profile

PROFILE = click.option("--profile", default="default", show_default=True, help="smoke, default, paper, or a .yaml path")


def run_options(command):
    """Returns `command` with the options that name one run: method, task, seed, profile, model, cache."""
    options = [
        click.option("--method", "method_name", required=True, help="a registered method (harness methods list)"),
        click.option("--task", "task_name", required=True, help="a registered task (harness tasks list)"),
        click.option("--seed", default=0, show_default=True, type=SEED),
        PROFILE,
        click.option(
            "--model", default=None, help="a local HF causal LM (directory or .gguf) instead of the tiny model"
        ),
        click.option("--lora", is_flag=True, help="train LoRA adapters on --model (PEFT)"),
        click.option("--cache", type=click.Path(path_type=Path), default=Path("results/cache"), show_default=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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
    from harness.config import load_profile
    from harness.registry import make_task, task_names

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
    from harness.config import load_profile
    from harness.describe import describe_task

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
    from harness.config import load_profile
    from harness.data import build_corpora, check_out_dir, corpus_stats, save_corpora
    from harness.probes.items import PROBE_FILES, jsonl_text, probe_items
    from harness.registry import make_task

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
    click.echo(f"expert success on train: {stats['expert_success']:.0%}")
    click.echo(f"written to {out}")


@cli.group()
def methods() -> None:
    """List the registered methods and their stages."""


@methods.command("list")
@PROFILE
def methods_list(profile: str) -> None:
    """One line per method: its format and its stages with their token or step budgets."""
    from harness.config import load_profile
    from harness.registry import method_factory, method_names
    from harness.stages import GrpoSettings

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


def resolve_profile(profile: str, model: str | None, lora: bool):
    """Returns the profile with --model/--lora applied; --lora without --model is an error."""
    from harness.config import load_profile

    if lora and not model:
        raise HarnessError("--lora needs --model PATH (LoRA adapts a pretrained model, not the tiny default)")
    overrides = {"model.path": model, "model.lora": lora} if model else {}
    return load_profile(profile, overrides)


@cli.command()
@run_options
def train(
    method_name: str, task_name: str, seed: int, profile: str, model: str | None, lora: bool, cache: Path
) -> None:
    """Trains whatever is missing of a method on a task, reusing cached stages, then stops."""
    from harness.train import train_method

    prof = resolve_profile(profile, model, lora)
    _, checkpoint, outcomes = train_method(method_name, task_name, prof, seed, cache)
    for o in outcomes:
        verb = "reused" if o.reused else "trained"
        click.echo(f"{verb:<8} {o.name:<8} {o.hash}  tokens_seen={o.stats.get('tokens_seen')}")
    click.echo(f"checkpoint {checkpoint.adapters[-1] if checkpoint.adapters else checkpoint.base}")


@cli.command("eval")
@run_options
@click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
def evaluate(
    method_name: str, task_name: str, seed: int, profile: str, model: str | None, lora: bool, cache: Path, runs: Path
) -> None:
    """Trains what is missing, plays the test split, writes episodes.jsonl, then metrics.json."""
    from harness.evaluate import evaluate_run

    prof = resolve_profile(profile, model, lora)
    path, metrics = evaluate_run(method_name, task_name, prof, seed, cache, runs)
    s = metrics["success_ci"]
    click.echo(
        f"{method_name} on {task_name} seed {seed}: success {s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}] "
        f"n={s['n']}, format rate {metrics['format_rate']:.3f}, random policy {metrics['random_policy_success']:.3f}"
    )
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
    from harness.compare import FORMATS, compare_table, load_pairs, render
    from harness.config import load_profile
    from harness.evaluate import evaluate_run
    from harness.registry import method_factory
    from harness.runs import is_complete, run_dir
    from harness.store import atomic_write_text

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


def results_folder(profile: Profile) -> Path:
    """Returns where a profile's tables, figures and REPORT.md go: its reference folder, else results/<name>.

    So `harness reproduce --profile smoke` never overwrites the default profile's committed results.
    """
    return Path(profile.reference) if profile.reference else Path("results") / profile.name


@cli.command()
@PROFILE
@click.option("--jobs", default=1, show_default=True, type=int, help="worker processes sharing the cores")
@click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=Path("results/cache"), show_default=True)
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=None,
    help="where tables, figures and REPORT.md go (default: the profile's `reference` folder, else results/<profile>)",
)
def reproduce(profile: str, jobs: int, runs: Path, cache: Path, results: Path | None) -> None:
    """Trains and evaluates whatever is missing, then writes tables, figures and REPORT.md."""
    import time

    from harness.config import load_profile
    from harness.reproduce import build_outputs, run_missing

    if jobs < 1:
        raise HarnessError(f"--jobs must be at least 1, got {jobs}")
    started = time.time()
    prof = load_profile(profile)
    ran = run_missing(prof, profile, runs, cache, jobs, click.echo)
    click.echo(f"{ran} run(s) trained and evaluated in {time.time() - started:.0f} s")
    paths, cost = build_outputs(prof, runs, cache, results or results_folder(prof), started, jobs)
    for path in paths:
        click.echo(f"wrote {path}")
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
    from harness.config import load_profile
    from harness.reproduce import build_outputs

    prof = load_profile(profile)
    for path in build_outputs(prof, runs, cache, results or results_folder(prof))[0]:
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--model", default=None, help="probe this local HF causal LM (directory or .gguf)")
@click.option("--method", "method_name", default=None, help="probe this method's trained checkpoint instead")
@click.option("--task", "task_name", default=None, help="one task of the profile (default: all of them)")
@PROFILE
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--limit", default=None, type=int, help="probe only the first N items of each probe")
@click.option("--lora", is_flag=True, help="with --method and --model: the method was trained with LoRA on --model")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="folder for probes.json (see README)")
@click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=Path("results/cache"), show_default=True)
def probe(
    model: str | None,
    method_name: str | None,
    task_name: str | None,
    profile: str,
    seed: int,
    limit: int | None,
    lora: bool,
    batch_size: int,
    out: Path | None,
    runs: Path,
    cache: Path,
) -> None:
    """Runs the lm-eval probes (next observation, success-estimate calibration) on a model or a trained method."""
    from harness.models import load_model
    from harness.probes.runner import probe_tasks, write_probes
    from harness.runs import run_dir
    from harness.train import load_checkpoint, trained_checkpoint

    if limit is not None and limit < 1:
        raise HarnessError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise HarnessError(f"--batch-size must be at least 1, got {batch_size}")
    if not model and not method_name:
        raise HarnessError("give --model PATH (a checkpoint to probe) or --method M (a trained method)")
    if method_name is None:
        if lora:
            raise HarnessError("--lora applies to --method only (a trained method's adapters on --model)")
        prof = resolve_profile(profile, None, False)
        tasks_ = [task_name] if task_name else list(prof.tasks)
        loaded, tokenizer = load_model(model)
        report = probe_tasks(loaded, tokenizer, prof, tasks_, seed, limit, str(model), batch_size)
        name = Path(model).stem if Path(model).is_file() else Path(model).resolve().name
        path = write_probes(report, out or Path("results/probes") / prof.name / name / f"seed{seed}")
        _echo_probes(report)
        click.echo(f"written to {path}")
        return
    prof = resolve_profile(profile, model, lora)
    tasks_ = [task_name] if task_name else list(prof.tasks)
    checkpoints = {t: trained_checkpoint(method_name, t, prof, seed, cache) for t in tasks_}
    for task, checkpoint in checkpoints.items():
        loaded, tokenizer = load_checkpoint(checkpoint)
        report = probe_tasks(
            loaded, tokenizer, prof, [task], seed, limit, f"{method_name} {checkpoint.hash}", batch_size
        )
        report["method"] = method_name
        path = write_probes(report, out / task if out else run_dir(runs, prof.name, task, method_name, seed))
        _echo_probes(report)
        click.echo(f"written to {path}")


def _echo_probes(report: dict) -> None:
    """Prints one line per task and probe."""
    for task, found in report["tasks"].items():
        for probe_name, metrics in found.items():
            shown = " ".join(
                f"{k}={'-' if v is None else f'{v:.3f}'}"
                for k, v in metrics.items()
                if k not in ("items", "items_available", "data_sha256")
            )
            click.echo(f"{task:<12} {probe_name:<12} n={metrics['items']:<5} {shown}")


@cli.command()
@click.option("--profile", default="smoke", show_default=True, help="smoke, default, or a .yaml path")
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    default=None,
    help="results folder to check against (default: the profile's `reference`)",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="folder for the fresh runs and tables (default: a temporary one, removed when all pass)",
)
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=None,
    help="stage cache to reuse (default: <workdir>/cache, so every stage trains afresh)",
)
@click.option("--jobs", default=1, show_default=True, type=int, help="worker processes sharing the cores")
@click.option("--atol", default=None, type=float, help="override the metrics' absolute tolerance")
def verify(
    profile: str, reference: Path | None, workdir: Path | None, cache: Path | None, jobs: int, atol: float | None
) -> None:
    """Reproduces a profile afresh and checks its summary table against the committed reference."""
    import shutil
    import tempfile

    import torch

    from harness.config import load_profile
    from harness.verify import (
        compare_tables,
        environment_differences,
        load_reference,
        render_checks,
        reproduce_fresh,
        tolerances,
    )

    if jobs < 1:
        raise HarnessError(f"--jobs must be at least 1, got {jobs}")
    if atol is not None and atol < 0:
        raise HarnessError(f"--atol must not be negative, got {atol}")
    prof = load_profile(profile)
    if reference is None and not prof.reference:
        raise HarnessError(f"profile {prof.name} names no committed reference; give --reference DIR")
    folder = reference or Path(prof.reference)
    expected, expected_env = load_reference(folder)  # a missing reference fails before any work
    threads = (expected_env or {}).get("versions", {}).get("torch_threads", [])
    if jobs == 1 and len(threads) == 1:
        # Run at the reference's thread count so that the same environment can give the same bits.
        torch.set_num_threads(int(threads[0]))
    work = workdir or Path(tempfile.mkdtemp(prefix="harness-verify-"))
    click.echo(f"reproducing profile {prof.name} in {work}; reference {folder}")
    fresh, fresh_env = reproduce_fresh(prof, profile, work, cache or work / "cache", jobs, click.echo)
    differences = environment_differences(expected_env, fresh_env)
    if differences:
        click.echo("environment differs from the reference (" + "; ".join(differences) + "):")
        click.echo(
            f"  tolerance {atol if atol is not None else 0.1} on metrics, 10% on training tokens, "
            "exact on seeds, episodes and random_policy"
        )
    else:
        click.echo(f"same environment as the reference: tolerance {atol if atol is not None else 1e-9} on every column")
    checks = compare_tables(expected, fresh, tolerances(not differences, atol))
    click.echo(render_checks(checks))
    failed = sorted({(c.task, c.method) for c in checks if not c.ok})
    rows = {(c.task, c.method) for c in checks}
    if failed:
        raise HarnessError(
            f"verify failed: {len(failed)} of {len(rows)} rows of profile {prof.name} differ from {folder} "
            f"beyond tolerance (fresh results kept in {work})"
        )
    click.echo(f"verified: all {len(rows)} rows ({len(checks)} values) of profile {prof.name} match {folder}")
    if workdir is None:
        shutil.rmtree(work, ignore_errors=True)


@cli.group()
def models() -> None:
    """Model checkpoints: the tiny default and local pretrained models."""


@models.command("import-gguf")
@click.option(
    "--gguf", "gguf_path", type=click.Path(path_type=Path), default=None, help="default: SmolLM2-135M-Instruct"
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/models/smollm2-135m-instruct"))
def models_import_gguf(gguf_path: Path | None, out: Path) -> None:
    """Converts a GGUF file (default: the installed SmolLM2-135M-Instruct) into a local HF checkpoint."""
    from harness.models import import_gguf, smollm2_gguf_path

    path = import_gguf(gguf_path or smollm2_gguf_path(), out)
    click.echo(json.dumps({"checkpoint": str(path)}))


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
