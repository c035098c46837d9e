"""One stage to train, as a value: what `run_stage` hands the trainer, in this process or pickled for a launch.

A `StageJob` holds everything a stage's training depends on besides the source checkpoint's files and
the code: the stage, its input checkpoint, the task by name and knobs (each launched process rebuilds
it), the rows of its data recipe (None for a kind that plays its own episodes), the seed, the work
folder of its TRL checkpoints, the folder it is written to, and the LoRA rank (None: full weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.registry import make_task
from harness.training.stages import StageKind, StageSpec, stage_kind
from tasks.base import Task


@dataclass(frozen=True)
class Checkpoint:
    """A trained (or initial) model: a base checkpoint and the LoRA adapters stacked on it."""

    hash: str
    base: Path
    adapters: tuple[Path, ...] = ()


@dataclass(frozen=True)
class StageJob:
    """One stage's training, from `source` in `work` to `target`."""

    spec: StageSpec
    task: str
    knobs: dict[str, Any]
    seed: int
    work: Path
    source: Checkpoint | None = None
    """None only where a caller hands the trainer a model itself (`train_sft`, `train_grpo` in tests)."""
    rows: Any = None
    target: Path | None = None
    lora_rank: int | None = None

    @property
    def kind(self) -> StageKind:
        """Returns the stage's registered kind."""
        return stage_kind(self.spec.kind)

    @property
    def label(self) -> str:
        """Returns the stage's name on the progress display: "<task> seed<k> <stage>"."""
        return f"{self.task} seed{self.seed} {self.spec.name}"

    def make_task(self) -> Task:
        """Returns the task built from its name and knobs."""
        return make_task(self.task, self.knobs)
