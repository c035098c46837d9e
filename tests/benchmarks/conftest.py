"""What the benchmarks share: the default profile's model and data, a lightly trained model, the BENCH line.

Every benchmark measures a ratio between two things run in the same process, on the same model
and data, in alternating rounds (so a busy neighbour slows both alike), and prints one line
`BENCH <name> ratio=<x> target=<y> ...` that a reader or a script can check at a glance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.core.config import Profile, load_profile
from harness.core.fields import as_dict
from harness.core.registry import make_task
from harness.data.recipes import Corpora, build_corpora
from harness.training.job import StageJob
from harness.training.models import save_checkpoint
from harness.training.sft import tokenize_rows
from harness.training.stages import StageSpec, settings_for
from harness.training.train import Checkpoint, initial_checkpoint, load_checkpoint

TASK = "graph-nav"
LIGHT_STEPS = 40
"""Optimizer steps of the sft stage behind the lightly trained model (it writes foresight blocks that
end at the newline, as a trained agent does; an untrained model runs every turn to the token limit)."""


def threads() -> int:
    """Returns torch's thread count for the benchmarks: BENCH_THREADS, else 1.

    Not OMP_NUM_THREADS (the Makefile exports 2): on a 2-core machine that anything else also uses,
    two threads per op made a training step up to 30 times slower and the agent loop up to 40 times
    (tests/benchmarks/NOTES.md, "Threads"), which would measure the scheduler, not the code.
    """
    return int(os.environ.get("BENCH_THREADS", "1"))


def bench_line(name: str, ratio: float, target: str, **context: Any) -> str:
    """Returns (and prints) the summary line of one benchmark."""
    shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in context.items())
    line = f"BENCH {name} ratio={ratio:.3f} target={target} threads={torch.get_num_threads()} {shown}".rstrip()
    print(f"\n{line}")
    return line


@pytest.fixture(scope="session", autouse=True)
def torch_threads() -> None:
    torch.set_num_threads(threads())


@pytest.fixture(scope="session")
def profile() -> Profile:
    return load_profile("default")


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="session")
def corpora(profile: Profile) -> Corpora:
    return build_corpora(make_task(TASK, profile.tasks[TASK]), profile.data, 0)


@pytest.fixture(scope="session")
def initial(profile: Profile, cache: Path) -> Checkpoint:
    """The untrained default-size model of seed 0."""
    return initial_checkpoint(profile, 0, cache)


@pytest.fixture(scope="session")
def light_model(profile: Profile, cache: Path, corpora: Corpora, initial: Checkpoint) -> Path:
    """Returns a checkpoint of the default-size model after LIGHT_STEPS steps of the sft stage on D_look."""
    from harness.training.sft import train_sft

    model, tokenizer = load_checkpoint(initial)
    data = tokenize_rows(corpora.look, tokenizer, False, 1024)
    mean_len = sum(len(ids) for ids in data["input_ids"]) / len(data)
    settings = profile.stages["fe-sft"]
    budget = int(LIGHT_STEPS * settings.batch_size * mean_len)
    settings = settings_for(
        "sft", {**as_dict(profile.stages["fe-sft"]), "tokens": budget, "save_every": 10_000}, "bench"
    )
    work = cache / "light.partial"
    work.mkdir()
    spec = StageSpec("fe-sft", "sft", "look", "foresight", settings)
    train_sft(model, tokenizer, StageJob(spec, "graph-nav", {}, 0, work, rows=corpora.look))
    return save_checkpoint(model, tokenizer, cache / "light")
