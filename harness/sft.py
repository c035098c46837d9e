"""The sft and wm-amt stages through TRL's SFTTrainer.

sft (agentic SFT, also FE-SFT and sft-mimic): pre-tokenized episodes with `assistant_masks`
marking the agent's tokens, so observations and prompts are context, not targets.
wm-amt: the same trainer on whole texts with the full language-model loss.
The step budget comes from a token budget, so methods can be compared at matched tokens.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from harness.agent import encode_segments
from harness.stages import SftSettings


class JsonlLog(TrainerCallback):
    """Appends every trainer log (loss, reward, tokens seen) as one json line; shows progress.

    `extra`, if given, is called at each log for more fields (the GRPO stage's step timings).
    """

    def __init__(self, path: Path, label: str, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = path
        self.label = label
        self.extra = extra

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs:
            return
        extra = self.extra() if self.extra else {}
        record = {"step": state.global_step, "tokens_seen": state.num_input_tokens_seen, **logs, **extra}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        loss = logs.get("loss")
        reward = logs.get("reward")
        shown = f"loss {loss:.3f}" if isinstance(loss, float) else ""
        shown += f" reward {reward:.3f}" if isinstance(reward, float) else ""
        if not shown:
            return
        print(f"  [{self.label}] step {state.global_step}/{state.max_steps} {shown}", flush=True)


def tokenize_rows(rows: Dataset, tokenizer: Any, full_loss: bool, max_length: int) -> Dataset:
    """Returns `input_ids` and `assistant_masks` per row (all ones under the full LM loss)."""

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        flags = [True] * len(row["texts"]) if full_loss else row["agent"]
        ids, mask = encode_segments(tokenizer, row["texts"], flags)
        eos = tokenizer.eos_token_id
        if full_loss and eos is not None:
            ids, mask = ids + [eos], mask + [1]
        return {"input_ids": ids[:max_length], "assistant_masks": mask[:max_length]}

    return rows.map(encode, remove_columns=rows.column_names)


def trainer_args(work_dir: Path, save_every: int, seed: int) -> dict[str, Any]:
    """Returns the TrainingArguments every stage shares: CPU-safe, seeded, resumable, no reporting."""
    return {
        "output_dir": str(work_dir),
        "save_steps": save_every,
        "save_total_limit": 1,
        "report_to": [],
        "use_cpu": True,
        "gradient_checkpointing": False,
        "bf16": False,
        "seed": seed,
        "data_seed": seed,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def latest_checkpoint(work_dir: Path) -> str | None:
    """Returns the newest TRL checkpoint directory in `work_dir`, if an interrupted run left one."""
    found = sorted(work_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return str(found[-1]) if found else None


def train_sft(
    model: Any,
    tokenizer: Any,
    rows: Dataset,
    settings: SftSettings,
    full_loss: bool,
    work_dir: Path,
    seed: int,
    label: str,
) -> dict[str, Any]:
    """Trains `model` in place on `rows`; returns steps, tokens seen and first/last loss."""
    data = tokenize_rows(rows, tokenizer, full_loss, settings.max_length)
    mean_len = sum(len(ids) for ids in data["input_ids"]) / max(1, len(data))
    steps = max(1, math.ceil(settings.tokens / (settings.batch_size * mean_len)))
    args = SFTConfig(
        max_steps=steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, int(settings.warmup_ratio * steps)),
        weight_decay=settings.weight_decay,
        max_length=settings.max_length,
        logging_steps=max(1, steps // 20),
        include_num_input_tokens_seen=True,
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        **trainer_args(work_dir, settings.save_every, seed),
    )
    log_path = work_dir / "log.jsonl"
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[JsonlLog(log_path, label)],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=latest_checkpoint(work_dir))
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    # TRL's num_tokens counts attended (non-pad) tokens; num_input_tokens_seen counts padding too.
    tokens = [r["num_tokens"] for r in records if "num_tokens" in r]
    return {
        "steps": steps,
        "tokens_seen": int(tokens[-1]) if tokens else int(trainer.state.num_input_tokens_seen),
        "padded_tokens_seen": int(trainer.state.num_input_tokens_seen),
        "agent_tokens": int(sum(sum(m) for m in data["assistant_masks"]) * steps * settings.batch_size / len(data)),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }
