"""Issue 15 item 4 and issue 19 item 3: the calibration reward alone moves p toward the success rate, on every task.

Start: the default profile's FE-SFT checkpoint (foresight-no-rl: WM-AMT, then FE-SFT on D_look whose p
targets come from the reference policy, with p smoothing), seed 0, trained here; set
HARNESS_MECHANISM_CACHE to a stage cache that holds it (e.g. results/cache after `make reproduce`) to
skip that. Its p is explorable (1-2 bits at the first turn) and miscalibrated where it plays: on
graph-nav's and kb-search's held-out-like prompts (harness/data/rl_pool.py) it fails ~90% of its
episodes but writes p around 0.5-0.7, and on kb-search's train prompts it succeeds in ~95% but
writes ~0.65. countdown's held-out-like prompts it solves about a third of the time: the pool that
asks its p to move down is the held-out-like instances the start failed in all K probe episodes
(seed 3; the measurement plays seed 7), as the other tasks' held-out-like pools mostly are.

RL: the real fc-rl stage with the success and fidelity weights 0, `lambda_cal` 1, `p_only` and
`p_temperature` 3, on one pool of prompts. `p_only` lets the loss reach the p value tokens the reward
scores alone. Without it the calibration reward can be earned by the actions: an episode that fails
scores 1 - p^2, so with p below 0.5 the actions learn to fail (measured, docs/calibration.md:
kb-search success 0.64 -> 0.21 in 80 steps at lr 1e-3 while p barely moved). `p_temperature` lets
the rollouts sample p values the start gives little mass: countdown's start puts none below 0.4.

Measured on frozen actions: the start model plays K episodes of each pool instance (temperature 1,
as RL samples); at every p the reward scores (turns whose block parsed) the expected p of the start
and of the trained model are read from the same tokens; the outcome is the episode's success. Passes
when the gap mean p - mean outcome shrinks by MARGIN and the Brier score falls; the measure reads p
alone, so a drift of the actions cannot pass it, and kb-search's two pools ask p to move in opposite
directions, which a model that merely broke would not do. The actions are out of the loss but share
the weights, so they do drift: the trained model's own success on the pool is printed, not asserted
(measured: kb-search's train prompts 0.95 -> 0.61, its held-out-like 0.08 -> 0.01; docs/calibration.md).
Control: with `lambda_cal` 0 every reward is 0 and the weights do not change at all.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.agent import AgentEpisode, Sampling, run_episodes
from harness.core.config import load_profile
from harness.core.traces import P_WORDS
from harness.data.rl_pool import rl_pool
from harness.training.grpo import train_grpo
from harness.training.job import StageJob
from harness.training.models import stop_token_ids
from harness.training.p_sampling import p_token_ids, p_value_mask
from harness.training.rewards import scored_turns
from harness.training.stages import StageSpec, settings_for
from harness.training.train import load_checkpoint, method_and_task, train_method

pytestmark = pytest.mark.heavy
STEPS = 150
K = 4
"""Frozen episodes per pool instance."""
MARGIN = 0.05
GRPO = {"prompts_per_step": 4, "num_generations": 8, "lr": 1e-4, "beta": 0.0, "temperature": 1.0, "max_turn_tokens": 40,
        "lambda_success": 0.0, "lambda_fid": 0.0, "p_only": True, "p_temperature": 3.0,
        "save_every": 100_000}  # fmt: skip
VALUES = torch.tensor([float(w) for w in P_WORDS], dtype=torch.float64)


def start_checkpoint(task_name: str, tmp_path: Path):
    """Returns the default profile's foresight-no-rl checkpoint of seed 0, training what the cache lacks."""
    torch.set_num_threads(1)
    cache = Path(os.environ.get("HARNESS_MECHANISM_CACHE", tmp_path / "cache"))
    _, checkpoint, _ = train_method("foresight-no-rl", task_name, load_profile("default"), 0, cache)
    return checkpoint


@torch.no_grad()
def expected_ps(model, tokenizer, episode: AgentEpisode) -> list[float]:
    """Returns the model's expected p (over the values 0.0 ... 1.0) at each p the reward scored: those of the
    turns whose block parsed, as the evaluation's metrics read them."""
    marker, values = p_token_ids(tokenizer)
    mask = p_value_mask(episode.completion_ids, episode.env_mask, marker, values, scored_turns(episode))
    at = [len(episode.prompt_ids) + j - 1 for j, keep in enumerate(mask) if keep]  # the logits that chose each value
    if not at:
        return []
    logits = model(input_ids=torch.tensor([episode.prompt_ids + episode.completion_ids])).logits[0].double()
    probs = torch.softmax(logits[at][:, list(values)], dim=-1)
    return (probs @ VALUES).tolist()


def play(model, tokenizer, task, instances, seed: int) -> list[AgentEpisode]:
    """Returns K sampled episodes (temperature 1) of each instance."""
    chosen = [inst for inst in instances for _ in range(K)]
    rngs = [np.random.default_rng([seed, i]) for i in range(len(chosen))]
    sampling = Sampling(1.0, GRPO["max_turn_tokens"], seed=seed)
    return run_episodes(model, tokenizer, task, chosen, rngs, "foresight", sampling, stop_token_ids(tokenizer))


def calibration(model, tokenizer, episodes: list[AgentEpisode]) -> dict[str, float]:
    """Returns mean p, mean outcome (per p written) and the Brier score of the model's expected p on `episodes`."""
    ps, outcomes = [], []
    for episode in episodes:
        beliefs = expected_ps(model, tokenizer, episode)
        ps += beliefs
        outcomes += [float(episode.success)] * len(beliefs)
    p, o = np.array(ps), np.array(outcomes)
    return {"p": float(p.mean()), "outcome": float(o.mean()), "brier": float(np.mean((p - o) ** 2)), "n": len(p)}


def fc_rl(checkpoint, task, instances, work: Path, steps: int, **settings: float):
    """Returns the model before and after one calibration-only fc-rl stage on `instances`."""
    model, tokenizer = load_checkpoint(checkpoint)
    start, _ = load_checkpoint(checkpoint)
    grpo = settings_for("grpo", {**GRPO, "steps": steps, **settings}, "fc-rl")
    job = StageJob(StageSpec("fc-rl", "grpo", "prompts", "foresight", grpo), task.name, {}, 0, work)
    train_grpo(model, tokenizer, task, job, instances)
    return start, model, tokenizer


def failed_by_start(checkpoint, task, instances: list) -> list:
    """Returns the instances the start model failed in all K of its probe episodes (seed 3, not the measure's 7)."""
    model, tokenizer = load_checkpoint(checkpoint)
    probe = play(model, tokenizer, task, instances, seed=3)
    return [inst for i, inst in enumerate(instances) if not any(e.success for e in probe[i * K : (i + 1) * K])]


# Not strict, so that a pass shows as XPASS. Measured (docs/calibration.md, session 11): on countdown's
# whole held-out-like pool the start solves ~37% of its episodes; the calibration reward sharpens p
# there (Brier falls) without moving its mean toward the rate.
MIXED = pytest.mark.xfail(
    strict=False,
    reason="measured: on countdown's held-out-like pool (start success 0.37) the Brier score falls (0.279 -> 0.264 in "
    "150 steps) but mean p moves by at most 0.03 either way (60-150 steps, 4x8, 16x8 and 8x16 episodes a step)",
)


def pool_case(task_name: str, pool: str, tmp_path: Path) -> tuple:
    """Returns the start checkpoint, the task and the instances of one pool: held-out-like, train (48 of
    them) or failed (the held-out-like ones the start fails)."""
    checkpoint = start_checkpoint(task_name, tmp_path)
    _, task = method_and_task("foresight", task_name, load_profile("default"))
    prompts = rl_pool(task, 0, 0.5)
    instances = list(prompts.train if pool == "train" else prompts.heldout_like)
    if pool == "train":  # as many frozen episodes as on the other pools
        instances = [instances[i] for i in np.random.default_rng(0).permutation(len(instances))[:48]]
    if pool == "failed":  # held-out-like instances the start fails, as most of the other tasks' held-out-like ones
        instances = failed_by_start(checkpoint, task, instances)
    return checkpoint, task, instances


def gaps_after_rl(case: tuple, label: str, tmp_path: Path, **weights: float) -> tuple[dict, dict]:
    """Returns the calibration of the start and of the model after STEPS of fc-rl with `weights`, on frozen episodes."""
    checkpoint, task, instances = case
    start, trained, tokenizer = fc_rl(checkpoint, task, instances, tmp_path / "rl", STEPS, **weights)
    frozen = play(start, tokenizer, task, instances, seed=7)
    before, after = calibration(start, tokenizer, frozen), calibration(trained, tokenizer, frozen)
    own = play(trained, tokenizer, task, instances, seed=7)
    success = (float(np.mean([e.success for e in frozen])), float(np.mean([e.success for e in own])))
    log = [json.loads(line) for line in (tmp_path / "rl" / "log.jsonl").read_text().splitlines()]
    measured = {"weights": weights, "before": before, "after": after, "success": success}
    print(f"{label} prompts: {json.dumps(measured)}")
    assert len([r for r in log if "train/success" in r]) == STEPS
    return before, after


@pytest.mark.parametrize(
    ("task_name", "pool"),
    [
        ("graph-nav", "held-out-like"),
        ("kb-search", "held-out-like"),
        ("countdown", "failed"),
        ("kb-search", "train"),
        pytest.param("countdown", "held-out-like", marks=MIXED),
    ],  # fmt: skip
)
def test_calibration_alone_moves_p_toward_the_success_rate(task_name: str, pool: str, tmp_path: Path) -> None:
    case = pool_case(task_name, pool, tmp_path)
    checkpoint, task, instances = case
    start, unchanged, _ = fc_rl(checkpoint, task, instances, tmp_path / "control", 2, lambda_cal=0.0)
    weights = zip(start.state_dict().values(), unchanged.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in weights), "zero rewards changed the weights"
    shutil.rmtree(tmp_path / "control")

    before, after = gaps_after_rl(case, f"{task_name} on {pool}", tmp_path, lambda_cal=1.0)
    gap_before, gap_after = before["p"] - before["outcome"], after["p"] - after["outcome"]
    assert abs(gap_before) > 2 * MARGIN, before  # the start is miscalibrated here: there is something to learn
    assert abs(gap_after) <= abs(gap_before) - MARGIN, (before, after)
    assert after["brier"] < before["brier"], (before, after)


@pytest.mark.parametrize("pool", ["held-out-like", "train"])
def test_the_success_reward_alone_does_not_calibrate_p(pool: str, tmp_path: Path) -> None:
    """The control: the same run with the success reward in place of the calibration reward (measured on
    kb-search, session 11: p 0.687 -> 0.781 where the agent succeeds 8%, 0.651 -> 0.620 where it succeeds 97%)."""
    case = pool_case("kb-search", pool, tmp_path)
    before, after = gaps_after_rl(case, f"kb-search on {pool}", tmp_path, lambda_cal=0.0, lambda_success=1.0)
    gap_before, gap_after = before["p"] - before["outcome"], after["p"] - after["outcome"]
    assert abs(gap_after) > abs(gap_before) - MARGIN, (before, after)
