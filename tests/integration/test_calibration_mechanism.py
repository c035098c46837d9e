"""Issue 15 item 4 and issue 19 item 3: the calibration reward teaches p when it is the only thing rewarded,
on every task of the suite, starting from a model that almost always writes p 1.0.

Set-up per task (smoke knobs, seed 0, one thread): a tiny model trained by SFT on D_look whose p words
are rewritten to 1.0 in 95% of turns and drawn from 0.0 ... 0.9 in the rest, so that the token after
`p` is nearly deterministic (what FE-SFT learnt before p targets came from a reference policy) while
each value has been seen followed by `act`. Without `p_temperature` the rollouts of the first step
all write 1.0 and GRPO has nothing to compare. Then fc-rl (the real grpo stage, train-side prompts
only) with the success and fidelity weights 0 and `p_temperature` P_TEMPERATURE:
- lambda_cal 1: the mean first-turn p of the rollouts moves toward the train-side success rate by at
  least MARGIN between the first LAST steps and the last LAST steps of STEPS;
- lambda_cal 0 (every weight 0): every advantage is zero and the weights do not change at all.
The numbers come from the stage's own log.jsonl (train/p_first_mean, train/success: RolloutStats).
Measured numbers, and why all three are expected to fail at present (graph-nav too, since the start
checkpoint changed): docs/calibration.md. The wiring half (a reward on p alone moves p; zero rewards
change nothing) is test_calibration_wiring.py, in `make test`.
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
from harness.core.traces import P_WORDS
from harness.data.recipes import build_corpora, rows_dataset
from harness.training.grpo import train_grpo
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer, load_model, stop_token_ids
from harness.training.sft import train_sft
from harness.training.stages import settings_for
from harness.training.train import suite_vocabulary

pytestmark = pytest.mark.heavy
SFT_TOKENS = {"graph-nav": 60_000, "kb-search": 150_000, "countdown": 150_000}
"""Enough for the format at temperature 1 (kb-search and countdown turns are longer than graph-nav's)."""
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
    settings = settings_for(
        "sft", {"tokens": SFT_TOKENS[task_name], "lr": 0.003, "batch_size": 8, "save_every": 100_000}, "sft"
    )
    train_sft(model, tokenizer, rows_dataset(rows), settings, False, folder / "sft", 0, "mechanism sft")
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
    train_grpo(model, tokenizer, task, task.splits(0).train, "foresight", grpo, work, 0, "fc-rl",
               stop_token_ids(tokenizer))  # fmt: skip
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    return [r for r in records if "train/success" in r], before, model.state_dict()


# Not strict: this exact configuration (40 steps, max_turn_tokens 40) has not yet run to the end on
# these two tasks (the tuning runs of docs/calibration.md were close to it), so an unexpected pass
# shows as XPASS rather than failing the suite.
UNSOLVED = pytest.mark.xfail(
    strict=False,
    reason="measured: the calibration-only reward does not bring p toward success on this deterministic task "
    "(docs/calibration.md); success drifts as the action tokens get the reward's noise",
)


GRAPH_NAV = pytest.mark.xfail(
    strict=False,
    reason="measured in session 9 (and at 2d5bdc8 and a6f14b7, so not a regression of later commits): train "
    "success 0.609, mean first-turn p 0.663 -> 0.796; p starts only 0.05 above success and then rises "
    "(docs/calibration.md)",
)


@pytest.mark.parametrize(
    "task_name",
    [
        pytest.param("graph-nav", marks=GRAPH_NAV),
        pytest.param("kb-search", marks=UNSOLVED),
        pytest.param("countdown", marks=UNSOLVED),
    ],
)
def test_calibration_alone_moves_p_toward_the_success_rate(task_name: str, tmp_path: Path) -> None:
    start = always_certain(task_name, tmp_path)
    greedy, _, _ = fc_rl(start, task_name, tmp_path / "no-exploration", 1, lambda_cal=1.0)
    assert greedy[0]["train/p_first_mean"] == 1.0  # ~0 entropy: without p_temperature every rollout writes 1.0
    control, before, after = fc_rl(
        start, task_name, tmp_path / "control", 2, lambda_cal=0.0, p_temperature=P_TEMPERATURE
    )
    assert all(torch.equal(before[k], after[k]) for k in before), "zero rewards changed the weights"
    trained, _, _ = fc_rl(
        start, task_name, tmp_path / "calibration", STEPS, lambda_cal=1.0, p_temperature=P_TEMPERATURE
    )
    assert len(trained) == STEPS and trained[0]["train/p_first_mean"] == control[0]["train/p_first_mean"]
    success = float(np.mean([r["train/success"] for r in trained]))
    p_start = float(np.mean([r["train/p_first_mean"] for r in trained[:LAST]]))
    p_end = float(np.mean([r["train/p_first_mean"] for r in trained[-LAST:]]))
    print(f"{task_name}: success {success:.3f}, mean first-turn p {p_start:.3f} -> {p_end:.3f}")
    assert p_start - success > MARGIN, (p_start, success)  # p starts overconfident: there is something to learn
    assert abs(p_end - success) <= abs(p_start - success) - MARGIN, (p_start, p_end, success)
