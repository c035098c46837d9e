"""Issue 15 item 4: the calibration reward can teach p when calibration is the only thing rewarded.

Set-up (smoke-sized, about a minute): graph-nav at slip 0.5, so that plans succeed about half the
time whatever p says; a tiny model trained by SFT on D_look whose p words are redrawn uniformly from
0.6-1.0 (mean 0.8), so that sampled p has entropy (a p token with ~0 entropy gives GRPO nothing to
move). Then fc-rl with the success weight 0 and the fidelity weight 0:
- lambda_cal 1: the mean first-turn p of the rollouts must move toward the train-side success rate
  by at least MARGIN within STEPS steps (measured, seed 0, 1 thread: from 0.866 to 0.702 over the
  last 10 steps against a train-side success rate of 0.584, so 0.164 closer; the format rate rose
  too, 0.69 to 0.88, since a turn whose block does not parse scores 0);
- lambda_cal 0 (every reward weight 0): every advantage is zero, so the weights must not change at all.
The numbers come from the stage's own log.jsonl (train/p_first_mean, train/success: RolloutStats).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.core.traces import FORMAT_WORDS
from harness.data.recipes import build_corpora, rows_dataset
from harness.training.grpo import train_grpo
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer, load_model, stop_token_ids
from harness.training.sft import train_sft
from harness.training.stages import settings_for

pytestmark = pytest.mark.slow
KNOBS = {"n_nodes": 8, "horizon": 6, "n_train": 40, "n_dev": 4, "n_test": 12, "slip": 0.5}
P_WORDS = ("0.6", "0.7", "0.8", "0.9", "1.0")
STEPS, CONTROL_STEPS, LAST = 30, 10, 10
MARGIN = 0.08
GRPO = {"prompts_per_step": 4, "num_generations": 8, "lr": 0.001, "beta": 0.0, "temperature": 1.0,
        "max_turn_tokens": 24, "lambda_success": 0.0, "lambda_fid": 0.0, "save_every": 100_000}  # fmt: skip


@pytest.fixture(scope="module")
def spread_p_model(tmp_path_factory) -> Path:
    """Returns a checkpoint that writes the foresight format with p spread over 0.6-1.0 at temperature 1."""
    torch.set_num_threads(1)
    task = make_task("graph-nav", KNOBS)
    corpora = build_corpora(task, load_profile("smoke").data, 0)
    rng = np.random.default_rng(0)
    rows = []
    for row in corpora.look:
        texts = [
            re.sub(r" p \d\.\d act ", lambda _: f" p {rng.choice(P_WORDS)} act ", t) if by_agent else t
            for t, by_agent in zip(row["texts"], row["agent"])
        ]
        rows.append({**row, "texts": texts, "text": "".join(texts)})
    written = [w for r in rows for w in re.findall(r" p (\d\.\d) act ", r["text"])]
    assert {w: written.count(w) > len(written) / 10 for w in P_WORDS} == dict.fromkeys(P_WORDS, True)
    tokenizer = build_tokenizer(sorted(set(task.vocabulary()) | set(FORMAT_WORDS)))
    model = build_tiny_model(ModelConfig(96, 2, 2, 192, 512), tokenizer, 0)
    folder = tmp_path_factory.mktemp("mechanism")
    settings = settings_for("sft", {"tokens": 300_000, "lr": 0.003, "batch_size": 8, "save_every": 100_000}, "sft")
    train_sft(model, tokenizer, rows_dataset(rows), settings, False, folder / "sft", 0, "mechanism sft")
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return folder / "model"


def _fc_rl(model_path: Path, work: Path, steps: int, lambda_cal: float) -> tuple[list[dict], dict, dict]:
    """Returns the log records, the weights before and the weights after a calibration-only fc-rl stage."""
    task = make_task("graph-nav", KNOBS)
    model, tokenizer = load_model(model_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = settings_for("grpo", {**GRPO, "steps": steps, "lambda_cal": lambda_cal}, "fc-rl")
    work.mkdir()
    train_grpo(model, tokenizer, task, task.splits(0).train, "foresight", settings, work, 0, "fc-rl",
               stop_token_ids(tokenizer))  # fmt: skip
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    return [r for r in records if "train/success" in r], before, model.state_dict()


def test_calibration_alone_moves_p_toward_the_success_rate(spread_p_model: Path, tmp_path: Path) -> None:
    control, before, after = _fc_rl(spread_p_model, tmp_path / "control", CONTROL_STEPS, 0.0)
    assert all(torch.equal(before[k], after[k]) for k in before), "zero rewards changed the weights"
    # The control never changes the model: its rollouts sample the starting model's p.
    p_start = float(np.mean([r["train/p_first_mean"] for r in control]))
    trained, _, _ = _fc_rl(spread_p_model, tmp_path / "calibration", STEPS, 1.0)
    assert len(trained) == STEPS and trained[0]["train/p_first_mean"] == control[0]["train/p_first_mean"]
    success = float(np.mean([r["train/success"] for r in trained]))
    assert 0.35 <= success <= 0.75, success  # plans succeed about half the time: there is something to learn
    p_end = float(np.mean([r["train/p_first_mean"] for r in trained[-LAST:]]))
    assert p_start - success > MARGIN, (p_start, success)  # p starts overconfident
    assert abs(p_end - success) <= abs(p_start - success) - MARGIN, (p_start, p_end, success)
