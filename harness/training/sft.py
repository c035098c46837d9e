"""The sft and wm-amt stages through TRL's SFTTrainer.

sft (agentic SFT, also FE-SFT and sft-mimic): pre-tokenized episodes with `assistant_masks`
marking the agent's tokens, so observations and prompts are context, not targets.
wm-amt: the same trainer on whole texts with the full language-model loss.
The step budget comes from a token budget, so methods can be compared at matched tokens.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from harness.agent import encode_segments
from harness.core import faults, progress
from harness.core.errors import HarnessError
from harness.core.store import atomic_write_text
from harness.core.streams import int_seed, stream
from harness.training import distributed, resume
from harness.training.p_smoothing import loss_function, p_token_ids
from harness.training.stages import BOARD_DIR, SftSettings


class JsonlLog(TrainerCallback):
    """Appends every trainer log (loss, reward, tokens seen) as one json line.

    `extra`, if given, is called at each log for more fields (the GRPO stage's step timings).
    """

    def __init__(self, path: Path, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = path
        self.extra = extra

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:  # data-parallel: process 0 writes the log
            return
        extra = self.extra() if self.extra else {}
        record = {"step": state.global_step, "tokens_seen": state.num_input_tokens_seen, **logs, **extra}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


class StageProgress(TrainerCallback):
    """Reports a stage's step of total, tokens seen and latest loss or reward to the progress display.

    In a data-parallel stage only process 0 reports (as only it writes log.jsonl).
    """

    def __init__(self, label: str) -> None:
        self.label = label

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            progress.active().start_stage(self.label, state.max_steps, state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        logs = logs or {}
        shown = " ".join(f"{k} {logs[k]:.3f}" for k in ("loss", "reward") if isinstance(logs.get(k), float))
        # GRPO counts its tokens in its own `num_tokens` log; SFT in the trainer state.
        tokens = logs.get("num_tokens") or state.num_input_tokens_seen or None
        progress.active().advance_stage(state.global_step, int(tokens) if tokens else None, shown)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            progress.active().end_stage()


class StepFaults(TrainerCallback):
    """Passes the fault-injection point `<kind>-step` at the end of every optimizer step (harness.core.faults)."""

    def __init__(self, kind: str) -> None:
        self.point = f"{kind}-step"

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        faults.point(self.point)


class CheckpointManifest(TrainerCallback):
    """Writes each TRL checkpoint's manifest once it is complete, then removes the older ones (harness.training.resume).

    The Trainer's own rotation (`save_total_limit`) is off: it removes the previous checkpoint
    before `on_save`, so a kill before the manifest was written would leave no checkpoint to resume.
    """

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"{resume.PREFIX}{state.global_step}"
        distributed.barrier()  # data-parallel: every process has written its rng_state_<rank>.pth
        faults.point("checkpoint-save")
        if state.is_world_process_zero:
            resume.write_manifest(folder)
            resume.prune(folder.parent, folder)


def read_log(path: Path) -> list[dict[str, Any]]:
    """Returns the records of a stage's log.jsonl; none in a process other than 0, which never writes it."""
    if distributed.rank() != 0:
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def tokenize_rows(
    rows: Dataset, tokenizer: Any, full_loss: bool, max_length: int, render: Callable[[str], str] | None = None
) -> Dataset:
    """Returns `input_ids` and `assistant_masks` per row (all ones under the full LM loss).

    `render`, if given, turns an agentic row's prompt (its first segment, without the newline) into
    the text the agent loop shows the model (a chat template's rendering; see harness.agent.chat_prompt).
    A row of kind `world` (D_world in a mixed stage) always takes the full LM loss, as in wm-amt,
    and is never rendered.
    """

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        full = full_loss or row["kind"] == "world"
        flags = [True] * len(row["texts"]) if full else row["agent"]
        texts = row["texts"]
        if render is not None and not full:
            texts = [render(texts[0].removesuffix("\n")), *texts[1:]]
        ids, mask = encode_segments(tokenizer, texts, flags)
        eos = tokenizer.eos_token_id
        if full and eos is not None:
            ids, mask = ids + [eos], mask + [1]
        return {"input_ids": ids[:max_length], "assistant_masks": mask[:max_length]}

    return rows.map(encode, remove_columns=rows.column_names)


def p_loss(tokenizer: Any, data: Dataset, amount: float, full_loss: bool) -> Any:
    """Returns the p-smoothing loss hook when `amount` > 0 and the agent writes p in `data`, else None (TRL's loss)."""
    if not 0.0 <= amount < 0.5:
        raise HarnessError(f"p_smoothing must lie in [0, 0.5), got {amount}")
    if amount == 0.0 or full_loss:
        return None
    try:
        p_id, values = p_token_ids(tokenizer)
    except HarnessError as error:  # a BPE model (--model): its p values span several tokens
        print(f"note: {error}; this stage trains without it", file=sys.stderr)
        return None
    value_set = set(values)
    for ids, mask in zip(data["input_ids"], data["assistant_masks"]):
        if any(a == p_id and b in value_set and m for a, b, m in zip(ids, ids[1:], mask[1:])):
            return loss_function(tokenizer, amount)
    return None  # no p in these rows (react's D_expert): the trainer's own loss, the same bytes as before


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


def length_grouped_order(
    lengths: list[int], batch_size: int, steps: int, rng: np.random.Generator, group: int = 50
) -> list[int]:
    """Returns `steps * batch_size` row indices, read in order, whose batches hold rows of similar length.

    Epoch after epoch, the rows are shuffled and cut into groups of `group` batches; each group is
    sorted by length and cut into batches, and the batches of a group are shuffled (a group's
    short last batch is left out of that epoch). Every row is used once per epoch but those few.
    """
    order: list[int] = []
    while len(order) < steps * batch_size:
        perm = rng.permutation(len(lengths))
        for start in range(0, len(perm), group * batch_size):
            chunk = sorted(perm[start : start + group * batch_size].tolist(), key=lambda i: lengths[i])
            batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            # A short batch would shift every later batch off its boundary: its rows wait an epoch.
            batches = [b for b in batches if len(b) == batch_size] or batches
            order += [i for b in rng.permutation(len(batches)) for i in batches[b]]
    return order[: steps * batch_size]


def stage_order(lengths: list[int], batch_size: int, steps: int, seed: int) -> list[int]:
    """Returns the rows, in reading order, that a length-grouped sft stage of `seed` trains on."""
    return length_grouped_order(lengths, batch_size, steps, stream(seed, "sft-order"))


def train_sft(
    model: Any,
    tokenizer: Any,
    rows: Dataset,
    settings: SftSettings,
    full_loss: bool,
    work_dir: Path,
    seed: int,
    label: str,
    render: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Trains `model` in place on `rows`; returns steps, tokens seen and first/last loss."""
    data = tokenize_rows(rows, tokenizer, full_loss, settings.max_length, render)
    mean_len = sum(len(ids) for ids in data["input_ids"]) / max(1, len(data))
    steps = max(1, math.ceil(settings.tokens / (settings.batch_size * mean_len)))
    args = SFTConfig(
        max_steps=steps,
        per_device_train_batch_size=distributed.per_process(settings.batch_size, "batch_size"),
        learning_rate=settings.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, int(settings.warmup_ratio * steps)),
        weight_decay=settings.weight_decay,
        max_length=settings.max_length,
        # Every step: a loss logged over a window of steps would average a different window after
        # a resume (the trainer restarts its window there), and the log would then differ.
        logging_steps=1,
        # Non-padding tokens, counted in the trainer state: a resumed run restores the count from its
        # checkpoint (TRL's own `num_tokens` log restarts from zero on resume).
        include_num_input_tokens_seen="non_padding",
        # Length grouping is done here, in a fixed order drawn from the seed, and read sequentially:
        # transformers' LengthGroupedSampler draws from the global torch RNG, whose state differs in
        # a resumed process, so a resumed stage would see other batches than an unbroken one.
        train_sampling_strategy="sequential" if settings.group_by_length else "random",
        **trainer_args(work_dir, settings.save_every, seed),
    )
    log_path = work_dir / "log.jsonl"
    checkpoint = resume_point(work_dir)
    if settings.group_by_length:
        lengths = [len(ids) for ids in data["input_ids"]]
        data = data.select(stage_order(lengths, settings.batch_size, steps, seed))
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        compute_loss_func=p_loss(tokenizer, data, settings.p_smoothing, full_loss),
        callbacks=[
            JsonlLog(log_path),
            StageProgress(label),
            StepFaults("wm-amt" if full_loss else "sft"),
            CheckpointManifest(),
        ],
    )
    trainer.remove_callback(PrinterCallback)
    board_callback(trainer, work_dir)
    trainer.train(resume_from_checkpoint=checkpoint)
    records = read_log(log_path)
    losses = [r["loss"] for r in records if "loss" in r]
    return {
        "steps": steps,
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "agent_tokens": int(sum(sum(m) for m in data["assistant_masks"]) * steps * settings.batch_size / len(data)),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }
