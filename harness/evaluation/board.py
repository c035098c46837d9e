"""TensorBoard event files of a run, under `<run>/tensorboard/`: its stages' curves and its headline metrics.

Each stage's event files were written by the trainer's own TensorBoardCallback (`report_to`) into
the stage's cache entry; they are copied here under the stage's name, so `tensorboard --logdir
results` shows every stage of every run by task, method and seed. `eval/` holds the run's headline
metrics at step 0. Event files are outputs only: no command reads them back, and verify ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.store import atomic_dir, copy_tree, remove_leftovers, write_error
from harness.training.stages import BOARD_DIR

HEADLINE = (
    "success",
    "format_rate",
    "ece_first",
    "ece_all",
    "brier",
    "auroc",
    "fidelity@1",
    "fidelity@2",
    "q_error",
    "q_error_star",
    "selection_gain",
    "mean_p",
)
"""The metrics a run's eval/ board shows (those that are None for a method are left out)."""


def headline_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """Returns {'eval/<metric>': value} for the headline metrics a run has, its success CI and training tokens."""
    found = {f"eval/{key}": metrics.get(key) for key in HEADLINE}
    ci = metrics.get("success_ci") or {}
    found["eval/success_ci_low"] = ci.get("ci_low")
    found["eval/success_ci_high"] = ci.get("ci_high")
    found["eval/training_tokens"] = (metrics.get("cost") or {}).get("training_tokens")
    return {tag: float(value) for tag, value in found.items() if isinstance(value, int | float)}


def write_board(path: Path, metrics: dict[str, Any], stages: Sequence[tuple[str, str]], cache: Path) -> Path:
    """Writes `<path>/tensorboard/`: each (stage name, stage hash)'s event files and eval/; returns the folder.

    Call it holding the run's lock: a temp folder found beside the run is then a killed writer's.
    """
    from torch.utils.tensorboard import SummaryWriter

    remove_leftovers(path, [BOARD_DIR])
    with atomic_dir(path / BOARD_DIR) as tmp:
        for name, key in stages:
            source = cache / key / BOARD_DIR
            if source.is_dir():
                try:
                    copy_tree(source, tmp / name)
                except OSError as exc:
                    raise write_error(exc, path / BOARD_DIR / name) from None
        writer = SummaryWriter(log_dir=str(tmp / "eval"))
        for tag, value in headline_scalars(metrics).items():
            writer.add_scalar(tag, value, 0)
        writer.close()
    return path / BOARD_DIR
