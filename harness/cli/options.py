"""Options and helpers shared by the command-line modules (`harness.cli.main`, `harness.cli.checks`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.core.config import SEED_MAX
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.core.config import Profile


def option_group(*decorators: Callable) -> Callable:
    """Returns a decorator that adds the click options `decorators` to a command, in --help in the order given."""

    def apply(command):
        for option in reversed(decorators):
            command = option(command)
        return command

    return apply


SEED = click.IntRange(min=0, max=SEED_MAX)
"""Seeds feed numpy's and torch's seeding: integers in [0, 2**32 - 1], as a profile's seeds."""

PROFILE = click.option("--profile", default="default", show_default=True, help="smoke, default, paper, or a .yaml path")

JOBS = click.option("--jobs", default=1, show_default=True, type=int, help="worker processes sharing the cores")

THREADS = click.option(
    "--threads",
    default=None,
    type=int,
    help="torch threads per worker with --jobs > 1 (default: cores // jobs); runs at 1 thread give "
    "the same numbers whatever the number of jobs",
)

BACKEND = click.option(
    "--backend",
    default="local",
    show_default=True,
    type=click.Choice(["local", "ray"]),
    help="local: this process or --jobs worker processes; ray: each chain of runs a Ray task with --threads CPUs",
)

ADDRESS = click.option(
    "--address",
    default=None,
    help="with --backend ray: a running Ray cluster (`ray start --head`; 'auto' finds the local one); "
    "default: start a Ray on this machine",
)

WORKERS = option_group(JOBS, THREADS, BACKEND, ADDRESS)
"""How runs are spread: worker processes, torch threads, the local or Ray backend and its cluster."""

RUNS = click.option("--runs", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)

CACHE = click.option("--cache", type=click.Path(path_type=Path), default=Path("results/cache"), show_default=True)

RESULTS = click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=None,
    help="where tables, figures and REPORT.md go (default: the profile's `reference` folder, else results/<profile>)",
)


def check_workers(jobs: int, backend: str, address: str | None) -> None:
    """Raises HarnessError for a --jobs below 1 or an --address without --backend ray."""
    if jobs < 1:
        raise HarnessError(f"--jobs must be at least 1, got {jobs}")
    if address and backend != "ray":
        raise HarnessError("--address needs --backend ray")


DATA = click.option(
    "--data",
    "data_path",
    default=None,
    help="the task's records (gsm8k, hotpotqa): a .jsonl, .json or .parquet file or a folder; sets the task's "
    "`data` knob (and adds the task to the profile)",
)


QUIET = click.option(
    "--quiet", is_flag=True, help="print only errors and the final summary (no progress, no line per run)"
)


def progress_mode(quiet: bool) -> str:
    """Returns the progress mode of a command: quiet, else live bars on a terminal and plain lines elsewhere."""
    return "quiet" if quiet else "auto"


run_options = option_group(
    click.option("--method", "method_name", required=True, help="a registered method (harness methods list)"),
    click.option("--task", "task_name", required=True, help="a registered task (harness tasks list)"),
    click.option("--seed", default=0, show_default=True, type=SEED),
    PROFILE,
    click.option("--model", default=None, help="a local HF causal LM (directory or .gguf) instead of the tiny model"),
    click.option("--lora", is_flag=True, help="train LoRA adapters on --model (PEFT)"),
    DATA,
    CACHE,
    QUIET,
)
"""The options that name one run: method, task, seed, profile, model, data, cache."""


def resolve_profile(
    profile: str, model: str | None, lora: bool, task: str | None = None, data_path: str | None = None
) -> Profile:
    """Returns the profile with --model/--lora and --data (the `data` knob of `task`) applied.

    --lora without --model is an error, and so is --data for a task without a `data` knob.
    """
    from harness.core.config import load_profile

    if lora and not model:
        raise HarnessError("--lora needs --model PATH (LoRA adapts a pretrained model, not the tiny default)")
    overrides: dict[str, object] = {"model.path": model, "model.lora": lora} if model else {}
    if data_path is not None:
        if not task:
            raise HarnessError("--data needs --task (it sets that task's data knob)")
        overrides[f"tasks.{task}.data"] = data_path
    return load_profile(profile, overrides)


def results_folder(profile: Profile) -> Path:
    """Returns where a profile's tables, figures and REPORT.md go: its reference folder, else results/<name>.

    So `harness reproduce --profile smoke` never overwrites the default profile's committed results.
    """
    return Path(profile.reference) if profile.reference else Path("results") / profile.name


launch_options = option_group(
    click.option(
        "--launcher",
        type=click.Choice(["none", "accelerate"]),
        default="none",
        show_default=True,
        help="accelerate: every training stage runs data-parallel under `accelerate launch` (docs/devices.md)",
    ),
    click.option(
        "--processes",
        type=int,
        default=None,
        help="processes per stage with --launcher accelerate (default: the config's num_processes, else GPUs)",
    ),
    click.option(
        "--accelerate-config",
        type=click.Path(path_type=Path),
        default=None,
        help="an accelerate config file (`accelerate config`), e.g. one per machine for several machines",
    ),
)
"""The options that spread each training stage over several processes (accelerate)."""


def use_launcher(launcher: str, processes: int | None, config: Path | None, trains_only: bool) -> None:
    """Sets up the launcher the options name; HarnessError for a bad combination.

    Only the first machine of several evaluates and writes runs: elsewhere only `harness train` runs.
    """
    from harness.training.distributed import configure

    chosen = configure(launcher, processes, config)
    if chosen is not None and chosen.machine_rank() > 0 and not trains_only:
        raise HarnessError(
            f"this machine has machine_rank {chosen.machine_rank()} in {config}: run `harness train` here; "
            "machine 0 evaluates and writes the runs"
        )
