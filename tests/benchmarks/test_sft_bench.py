"""Issue 5, item 2: tokens per second of the sft stage (TRL SFTTrainer) against a bare PyTorch loop.

Both train the untrained default-size model on graph-nav's D_look with the default profile's
batch size and learning rate for the same number of steps, loss on the agent's tokens only. The
bare loop is what one would write by hand: shuffled batches padded to their longest row, forward,
backward, AdamW step. Throughput counts non-pad tokens only (context included, as the stage's
token budget does), so padding is waste; the stage groups rows of similar length
(`group_by_length`). The stage's time is its whole call: trainer set-up included.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch

from harness.core.config import Profile
from harness.core.fields import as_dict
from harness.data.recipes import Corpora
from harness.training.job import StageJob
from harness.training.sft import stage_order, tokenize_rows, train_sft
from harness.training.stages import StageSpec, settings_for
from harness.training.train import Checkpoint, load_checkpoint

from .conftest import bench_line

TARGET = 0.8
STEPS = 20
ROUNDS = 2


def bare_loop(checkpoint: Checkpoint, ids: list[list[int]], masks: list[list[int]], batch: int, lr: float, steps: int):
    """Returns (non-pad tokens, padded tokens) after `steps` plain AdamW steps on shuffled padded batches."""
    model, tokenizer = load_checkpoint(checkpoint)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0)).tolist()
    real = padded = 0
    for step in range(steps):
        rows = [order[(step * batch + k) % len(order)] for k in range(batch)]
        width = max(len(ids[r]) for r in rows)
        input_ids = torch.full((batch, width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, -100)
        for k, r in enumerate(rows):
            row = torch.tensor(ids[r])
            input_ids[k, : len(row)] = row
            attention[k, : len(row)] = 1
            labels[k, : len(row)] = torch.where(torch.tensor(masks[r]) == 1, row, -100)
        model(input_ids=input_ids, attention_mask=attention, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        real += int(attention.sum())
        padded += input_ids.numel()
    return real, padded


def stage_padded_tokens(ids: list[list[int]], batch_size: int, steps: int) -> int:
    """Returns the tokens, padding included, of the batches a length-grouped sft stage reads at seed 0
    (its `stage_order`), each batch padded to its longest row."""
    lengths = [len(x) for x in ids]
    order = stage_order(lengths, batch_size, steps, 0)
    starts = range(0, len(order), batch_size)
    return sum(max(lengths[i] for i in order[k : k + batch_size]) * batch_size for k in starts)


@pytest.mark.benchmark(group="sft")
def test_bench_sft_stage_vs_bare_loop(
    benchmark, profile: Profile, corpora: Corpora, initial: Checkpoint, tmp_path: Path
) -> None:
    base = as_dict(profile.stages["fe-sft"])  # typed settings, as a mapping to override
    _, tokenizer = load_checkpoint(initial)
    data = tokenize_rows(corpora.look, tokenizer, False, settings_for("sft", base, "bench").max_length)
    mean_len = sum(len(x) for x in data["input_ids"]) / len(data)
    settings = settings_for("sft", {**base, "tokens": int(STEPS * base["batch_size"] * mean_len)}, "bench")
    assert settings.group_by_length  # the stage's padding is recomputed from its length-grouped order
    rates: dict[str, list[float]] = {"stage": [], "bare": []}
    tokens: dict[str, tuple[int, int]] = {}

    def one_round() -> None:
        model, tokenizer = load_checkpoint(initial)
        work = tmp_path / "stage"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        started = time.perf_counter()
        job = StageJob(
            StageSpec("fe-sft", "sft", "look", "foresight", settings), "graph-nav", {}, 0, work, rows=corpora.look
        )
        stats = train_sft(model, tokenizer, job)
        rates["stage"].append(stats["tokens_seen"] / (time.perf_counter() - started))
        padded = stage_padded_tokens(data["input_ids"], settings.batch_size, stats["steps"])
        tokens["stage"] = (stats["tokens_seen"], padded)
        started = time.perf_counter()
        real, padded = bare_loop(
            initial, data["input_ids"], data["assistant_masks"], settings.batch_size, settings.lr, stats["steps"]
        )
        rates["bare"].append(real / (time.perf_counter() - started))
        tokens["bare"] = (real, padded)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    ratio = max(rates["stage"]) / max(rates["bare"])
    benchmark.extra_info.update(
        {"ratio": ratio, "stage_tokens_per_s": max(rates["stage"]), "bare_tokens_per_s": max(rates["bare"])}
    )
    bench_line(
        "sft-stage-vs-bare-loop",
        ratio,
        f">={TARGET}",
        steps=STEPS,
        batch=settings.batch_size,
        stage_tok_per_s=round(max(rates["stage"])),
        bare_tok_per_s=round(max(rates["bare"])),
        stage_pad_share=1 - tokens["stage"][0] / tokens["stage"][1],
        bare_pad_share=1 - tokens["bare"][0] / tokens["bare"][1],
        group_by_length=settings.group_by_length,
    )
    assert ratio >= TARGET
