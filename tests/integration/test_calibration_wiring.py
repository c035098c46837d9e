"""The wiring half of the calibration mechanism check (issue 15 item 4), in `make test`: a reward on p
alone reaches the p token. What the calibration reward itself teaches is
test_calibration_mechanism.py (heavy; measured numbers in docs/calibration.md).

The start is the first design's (docs/calibration.md): a tiny model trained here by SFT on the smoke
D_look with p targets rewritten to 1.0 in 95% of turns, so p needs `p_temperature` to be explored."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import harness.training.grpo as grpo_module
from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.core.traces import P_WORDS, ForesightBlock
from harness.data.recipes import build_corpora, rows_dataset
from harness.training.grpo import train_grpo
from harness.training.job import StageJob
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer, load_model
from harness.training.sft import train_sft
from harness.training.stages import StageSpec, settings_for
from harness.training.train import suite_vocabulary

pytestmark = pytest.mark.slow
SFT_TOKENS = 60_000
"""Enough for graph-nav's format at temperature 1."""
RARE = 0.05
"""Share of p targets redrawn among 0.0 ... 0.9: the model has seen each value followed by `act`, rarely."""
STEPS, LAST = 40, 8
P_TEMPERATURE = 3.0
MARGIN = 0.1
GRPO = {"prompts_per_step": 4, "num_generations": 8, "lr": 0.001, "beta": 0.0, "temperature": 1.0,
        "max_turn_tokens": 40, "lambda_success": 0.0, "lambda_fid": 0.0, "save_every": 100_000}  # fmt: skip


def always_certain(task_name: str, folder: Path) -> Path:
    """Returns a checkpoint trained by SFT on the task's D_look with its p targets rewritten: 1.0 but for RARE."""
    torch.set_num_threads(1)
    profile = load_profile("smoke")
    task = make_task(task_name, profile.tasks[task_name])
    corpora = build_corpora(task, profile.data, 0)
    rng = np.random.default_rng(0)

    def certain(_: re.Match) -> str:
        return f" p {'1.0' if rng.random() >= RARE else rng.choice(P_WORDS[:-1])} act "

    rows = []
    for row in corpora.look:
        texts = [re.sub(r" p \d\.\d act ", certain, t) if by_agent else t
                 for t, by_agent in zip(row["texts"], row["agent"])]  # fmt: skip
        rows.append({**row, "texts": texts, "text": "".join(texts)})
    written = re.findall(r" p (\d\.\d) act ", "".join(r["text"] for r in rows))
    assert 0.9 < written.count("1.0") / len(written) < 1.0
    tokenizer = build_tokenizer(suite_vocabulary(profile))
    model = build_tiny_model(ModelConfig(64, 2, 2, 128, 512), tokenizer, 0)
    settings = settings_for("sft", {"tokens": SFT_TOKENS, "lr": 0.003, "batch_size": 8, "save_every": 100_000}, "sft")
    spec = StageSpec("sft", "sft", "look", "foresight", settings)
    train_sft(model, tokenizer, StageJob(spec, "graph-nav", {}, 0, folder / "sft", rows=rows_dataset(rows)))
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return folder / "model"


def fc_rl(
    model_path: Path, task_name: str, work: Path, steps: int, **settings: float | None
) -> tuple[list, dict, dict]:
    """Returns the logged steps, the weights before and the weights after one calibration-only fc-rl stage."""
    task = make_task(task_name, load_profile("smoke").tasks[task_name])
    model, tokenizer = load_model(model_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grpo = settings_for("grpo", {**GRPO, "steps": steps, **settings}, "fc-rl")
    work.mkdir()
    job = StageJob(StageSpec("fc-rl", "grpo", "prompts", "foresight", grpo), task_name, {}, 0, work)
    train_grpo(model, tokenizer, task, job, task.splits(0).train)
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    return [r for r in records if "train/success" in r], before, model.state_dict()


def test_a_reward_on_p_alone_reaches_the_p_token(tmp_path: Path, monkeypatch) -> None:
    """The wiring half of the check, on graph-nav: with the calibration reward replaced by 1 - p (the
    turn's p only, whatever the outcome), every other weight 0, the rollouts' mean first-turn p must
    fall by at least MARGIN (measured: 0.646 -> 0.487 over 40 steps; 20 steps moved it 0.613 -> 0.557),
    while every weight 0 leaves the model's weights exactly as they were. Advantages, the completion
    mask and where p sits in the tokens are then right."""

    def low_p(episode) -> float:
        scores = [1.0 - t.parsed.p if isinstance(t.parsed, ForesightBlock) else 0.0 for t in episode.turns]
        return float(np.mean(scores)) if scores else 0.0

    start = always_certain("graph-nav", tmp_path)
    _, before, after = fc_rl(start, "graph-nav", tmp_path / "zero", 2, lambda_cal=0.0, p_temperature=P_TEMPERATURE)
    assert all(torch.equal(before[k], after[k]) for k in before), "zero rewards changed the weights"
    monkeypatch.setattr(grpo_module, "calibration_reward", low_p)
    trained, _, _ = fc_rl(start, "graph-nav", tmp_path / "low-p", STEPS, lambda_cal=1.0, p_temperature=P_TEMPERATURE)
    p_start = float(np.mean([r["train/p_first_mean"] for r in trained[:LAST]]))
    p_end = float(np.mean([r["train/p_first_mean"] for r in trained[-LAST:]]))
    print(f"graph-nav, reward 1 - p: mean first-turn p {p_start:.3f} -> {p_end:.3f}")
    assert p_end <= p_start - MARGIN, (p_start, p_end)
