"""Options and helpers shared by the command-line modules (`harness.cli.main`, `harness.cli.checks`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.core.config import Profile

SEED = click.IntRange(min=0)
"""Seeds feed numpy's SeedSequence, which takes non-negative integers only."""

PROFILE = click.option("--profile", default="default", show_default=True, help="smoke, default, paper, or a .yaml path")

JOBS = click.option("--jobs", default=1, show_default=True, type=int, help="worker processes sharing the cores")

THREADS = click.option(
    "--threads",
    default=None,
    type=int,
    help="torch threads per worker with --jobs > 1 (default: cores // jobs); runs at 1 thread give "
    "the same numbers whatever the number of jobs",
)


QUIET = click.option(
    "--quiet", is_flag=True, help="print only errors and the final summary (no progress, no line per run)"
)


def progress_mode(quiet: bool) -> str:
    """Returns the progress mode of a command: quiet, else live bars on a terminal and plain lines elsewhere."""
    return "quiet" if quiet else "auto"


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
        QUIET,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def resolve_profile(profile: str, model: str | None, lora: bool):
    """Returns the profile with --model/--lora applied; --lora without --model is an error."""
    from harness.core.config import load_profile

    if lora and not model:
        raise HarnessError("--lora needs --model PATH (LoRA adapts a pretrained model, not the tiny default)")
    overrides = {"model.path": model, "model.lora": lora} if model else {}
    return load_profile(profile, overrides)


def results_folder(profile: Profile) -> Path:
    """Returns where a profile's tables, figures and REPORT.md go: its reference folder, else results/<name>.

    So `harness reproduce --profile smoke` never overwrites the default profile's committed results.
    """
    return Path(profile.reference) if profile.reference else Path("results") / profile.name
