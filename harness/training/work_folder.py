"""What every TRL trainer of a stage shares about its work folder: the TrainingArguments, log.jsonl, the
TensorBoard folder and the checkpoint an interrupted stage resumes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from harness.core.store import atomic_write_text
from harness.core.streams import int_seed
from harness.training import distributed
from harness.training.stages import BOARD_DIR


def read_log(path: Path) -> list[dict[str, Any]]:
    """Returns the records of a stage's log.jsonl; none in a process other than 0, which never writes it."""
    if distributed.rank() != 0:
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def trainer_args(work_dir: Path, save_every: int, seed: int) -> dict[str, Any]:
    """Returns the TrainingArguments every stage shares: CPU-safe, seeded, resumable, reporting to TensorBoard.

    A resumed stage adds a new event file beside the killed process's one; TensorBoard drops the
    killed process's steps past the checkpoint when the resumed one logs them again.
    """
    return {
        "output_dir": str(work_dir),
        "save_steps": save_every,
        "save_total_limit": None,  # CheckpointManifest removes the older checkpoints once the new one is verified
        "report_to": ["tensorboard"],
        # On a machine with a GPU the trainers use it (the paper profile); CPU runs are unchanged.
        "use_cpu": not torch.cuda.is_available(),
        "gradient_checkpointing": False,
        "bf16": False,
        # transformers and TRL take an int seed and seed the global generators with it themselves.
        "seed": int_seed(seed, "trainer"),
        "data_seed": int_seed(seed, "trainer"),
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        # Every parameter takes part in each forward pass: DDP need not search for unused ones.
        **({"ddp_find_unused_parameters": False} if distributed.launched() else {}),
    }


def board_callback(trainer: Any, work_dir: Path) -> Any:
    """Returns the trainer's own TensorBoardCallback (added by `report_to`), set to write into `work_dir/tensorboard`.

    transformers 5 dropped `logging_dir` from TrainingArguments; its callback reads the folder from
    its `logging_dir` attribute (else `TENSORBOARD_LOGGING_DIR`, else a dated folder) when training begins.
    """
    from transformers.integrations import TensorBoardCallback

    board = next(c for c in trainer.callback_handler.callbacks if isinstance(c, TensorBoardCallback))
    board.logging_dir = str(work_dir / BOARD_DIR)
    return board


def latest_checkpoint(work_dir: Path) -> str | None:
    """Returns the newest complete TRL checkpoint directory in `work_dir`, if an interrupted run left one.

    The Trainer writes a checkpoint in place and trainer_state.json last, so a checkpoint whose
    trainer_state.json is missing or cut short was being written when the process died; the
    previous one (kept until the new one has its manifest, see CheckpointManifest) is used instead.
    The stage's caller has dropped the checkpoints that fail their manifest (resume.drop_damaged).
    """
    found = []
    for path in work_dir.glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        if step.isdigit():
            found.append((int(step), path))
    return str(max(found)[1]) if found else None


def resume_point(work_dir: Path) -> str | None:
    """Returns the checkpoint to resume from (or None), after cutting log.jsonl back to that checkpoint.

    Lines logged after the checkpoint by the killed process are logged again by the resumed one,
    and so is the summary line that ends a training run (`train_loss`, ...); a line cut short
    by the kill is dropped. The log then reads as if training had never stopped.
    """
    checkpoint = latest_checkpoint(work_dir)
    log = work_dir / "log.jsonl"
    if log.exists() and distributed.rank() == 0:
        step = int(Path(checkpoint).name.removeprefix("checkpoint-")) if checkpoint else 0
        kept = []
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("step", 0) <= step and "train_loss" not in record:
                kept.append(line + "\n")
        atomic_write_text(log, "".join(kept))
    return checkpoint
