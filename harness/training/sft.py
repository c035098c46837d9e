"""The sft and wm-amt stages through TRL's SFTTrainer.

sft (agentic SFT, also FE-SFT and sft-mimic): pre-tokenized episodes with `assistant_masks`
marking the agent's tokens, so observations and prompts are context, not targets.
wm-amt: the same trainer on whole texts with the full language-model loss.
The step budget comes from a token budget, so methods can be compared at matched tokens.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from harness.agent import chat_prompt, encode_segments
from harness.core.errors import HarnessError
from harness.core.streams import stream
from harness.training import distributed
from harness.training.callbacks import CheckpointManifest, JsonlLog, StageProgress, StepFaults
from harness.training.job import StageJob
from harness.training.p_smoothing import loss_function, p_token_ids
from harness.training.stages import SftSettings
from harness.training.work_folder import board_callback, read_log, resume_point, trainer_args
from tasks.base import Task


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
    model: Any, tokenizer: Any, job: StageJob, full_loss: bool = False, render: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """Trains `model` in place on `job.rows`; returns steps, tokens seen, its rows' tokens and first/last loss.

    `full_loss`: every token is a target (wm-amt); `render` as in `tokenize_rows`.
    """
    settings, work_dir = job.spec.settings, job.work
    assert isinstance(settings, SftSettings)
    data = tokenize_rows(job.rows, tokenizer, full_loss, settings.max_length, render)
    corpus_tokens = sum(len(ids) for ids in data["input_ids"])
    mean_len = corpus_tokens / max(1, len(data))
    steps = max(1, math.ceil(settings.tokens / (settings.batch_size * mean_len)))
    args = sft_config(settings, steps, work_dir, job.seed)
    log_path = work_dir / "log.jsonl"
    checkpoint = resume_point(work_dir)
    if settings.group_by_length:
        lengths = [len(ids) for ids in data["input_ids"]]
        data = data.select(stage_order(lengths, settings.batch_size, steps, job.seed))
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        compute_loss_func=p_loss(tokenizer, data, settings.p_smoothing, full_loss),
        callbacks=[
            JsonlLog(log_path),
            StageProgress(job.label),
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
        # The rows as tokenized (truncated to max_length), before the length-grouped order repeats them:
        # tokens_seen / corpus_tokens is the passes over the stage's data (REPORT.md's cost table).
        "corpus_tokens": corpus_tokens,
        "agent_tokens": int(sum(sum(m) for m in data["assistant_masks"]) * steps * settings.batch_size / len(data)),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }


def sft_config(settings: SftSettings, steps: int, work_dir: Path, seed: int) -> SFTConfig:
    """Returns the SFTConfig of an sft or wm-amt stage of `steps` optimizer steps."""
    return SFTConfig(
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


def fit_agentic(job: StageJob, model: Any, tokenizer: Any, task: Task) -> dict[str, Any]:
    """Returns the stats of an sft stage (loss on the agent's tokens) after training `model` in place."""
    render = None
    if getattr(tokenizer, "chat_template", None):
        # A chat model trains on prompts rendered as the agent loop shows them (harness.agent.chat_prompt).
        def render(prompt: str) -> str:
            return chat_prompt(tokenizer, task, job.spec.fmt, prompt)

    return train_sft(model, tokenizer, job, False, render)


def fit_full_text(job: StageJob, model: Any, tokenizer: Any, task: Task) -> dict[str, Any]:
    """Returns the stats of a wm-amt stage (the full language-model loss on whole texts) after training `model`."""
    return train_sft(model, tokenizer, job, True)
