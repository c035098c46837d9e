"""The checking commands of `harness`: lm-eval probes, verification against a reference, model import.

Registered on the `harness` group by `harness.cli.main`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from harness.cli.options import CACHE, DATA, JOBS, PROFILE, RUNS, SEED, resolve_profile
from harness.core.errors import HarnessError


@click.command()
@click.option("--model", default=None, help="probe this local HF causal LM (directory or .gguf)")
@click.option("--method", "method_name", default=None, help="probe this method's trained checkpoint instead")
@click.option("--task", "task_name", default=None, help="one task of the profile (default: all of them)")
@PROFILE
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--limit", default=None, type=int, help="probe only the first N items of each probe")
@click.option("--lora", is_flag=True, help="with --method and --model: the method was trained with LoRA on --model")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="folder for probes.json (docs/probes.md)")
@RUNS
@CACHE
@DATA
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
    data_path: str | None,
) -> None:
    """Runs the lm-eval probes (next observation, success-estimate calibration) on a model or a trained method."""
    from harness.core.runs import run_dir
    from harness.evaluation.probes.runner import probe_tasks, write_probes
    from harness.training.models import load_model
    from harness.training.train import load_checkpoint, trained_checkpoint

    if limit is not None and limit < 1:
        raise HarnessError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise HarnessError(f"--batch-size must be at least 1, got {batch_size}")
    if not model and not method_name:
        raise HarnessError("give --model PATH (a checkpoint to probe) or --method M (a trained method)")
    if method_name is None:
        if lora:
            raise HarnessError("--lora applies to --method only (a trained method's adapters on --model)")
        prof = resolve_profile(profile, None, False, task_name, data_path)
        tasks_ = [task_name] if task_name else list(prof.tasks)
        loaded, tokenizer = load_model(model)
        report = probe_tasks(loaded, tokenizer, prof, tasks_, seed, limit, str(model), batch_size)
        name = Path(model).stem if Path(model).is_file() else Path(model).resolve().name
        path = write_probes(report, out or Path("results/probes") / prof.name / name / f"seed{seed}")
        _echo_probes(report)
        click.echo(f"written to {path}")
        return
    prof = resolve_profile(profile, model, lora, task_name, data_path)
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


@click.command()
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
@JOBS
@click.option("--atol", default=None, type=float, help="override the metrics' absolute tolerance")
def verify(
    profile: str, reference: Path | None, workdir: Path | None, cache: Path | None, jobs: int, atol: float | None
) -> None:
    """Reproduces a profile afresh and checks its summary table against the committed reference."""
    import shutil
    import tempfile

    import torch

    from harness.core import progress
    from harness.core.config import load_profile
    from harness.running.verify import (
        choose_comparison,
        compare_tables,
        load_reference,
        render_checks,
        reproduce_fresh,
        shown_differences,
        tolerances,
    )

    if jobs < 1:
        raise HarnessError(f"--jobs must be at least 1, got {jobs}")
    if atol is not None and not (math.isfinite(atol) and atol >= 0):
        raise HarnessError(f"--atol must be a finite number >= 0, got {atol}")
    prof = load_profile(profile)
    if reference is None and not prof.reference:
        raise HarnessError(f"profile {prof.name} names no committed reference; give --reference DIR")
    folder = reference or Path(prof.reference)
    expected, expected_env = load_reference(folder)  # a missing reference fails before any work
    counts = (expected_env or {}).get("versions", {}).get("torch_threads", [])
    # Run at the reference's thread count (in this process, or in each worker with --jobs) so that
    # the same environment can give the same bits.
    threads = int(counts[0]) if len(counts) == 1 else None
    if jobs == 1 and threads:
        torch.set_num_threads(threads)
    work = workdir or Path(tempfile.mkdtemp(prefix="harness-verify-"))
    click.echo(f"reproducing profile {prof.name} in {work}; reference {folder}")
    with progress.session("auto", click.echo) as shown:
        fresh, fresh_env = reproduce_fresh(prof, work, cache or work / "cache", jobs, shown.say, threads)
    comparison = choose_comparison(expected_env, fresh_env, atol)
    for line in comparison.lines(shown_differences(expected_env, fresh_env)):
        click.echo(line)
    checks = compare_tables(expected, fresh, tolerances(comparison.kind == "bytes", atol))
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


@click.group()
def models() -> None:
    """Model checkpoints: the tiny default and local pretrained models."""


@models.command("import-gguf")
@click.option(
    "--gguf", "gguf_path", type=click.Path(path_type=Path), default=None, help="default: SmolLM2-135M-Instruct"
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/models/smollm2-135m-instruct"))
def models_import_gguf(gguf_path: Path | None, out: Path) -> None:
    """Converts a GGUF file (default: the installed SmolLM2-135M-Instruct) into a local HF checkpoint."""
    from harness.training.models import import_gguf, smollm2_gguf_path

    path = import_gguf(gguf_path or smollm2_gguf_path(), out)
    click.echo(json.dumps({"checkpoint": str(path)}))
