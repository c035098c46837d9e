"""The grpo stage (vanilla-rl and FC-RL) through TRL's GRPOTrainer with our multi-turn rollouts.

GRPOTrainer hands each step's prompts to `rollout_func`, which plays whole episodes with the
batched agent loop and returns the prompt ids, the completion ids (agent turns and observations
interleaved), the sampling log-probabilities, and `env_mask` (1 = the model wrote the token,
0 = the world did) so that observations are never trained on. Per-episode rewards travel as
extra fields to the reward functions, which TRL weights with `reward_weights`.
Every logged step in log.jsonl also says where its time went (StepClock): generation, the world
and rewards, and the rest of the step (scoring passes, loss, backward and the optimizer).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from harness.agent import AgentEpisode, Sampling, run_episodes
from harness.training.rewards import calibration_reward, fidelity_reward, success_reward
from harness.training.sft import JsonlLog, StageProgress, StepFaults, board_callback, resume_point, trainer_args
from harness.training.stages import GrpoSettings
from tasks.base import Task

SALT_RL = 404
# rollout_func is experimental in TRL 1.16; we rely on it knowingly (see README, 'Methods and stages').
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


class StepClock(TrainerCallback):
    """Times each optimizer step and splits it: generation, environment and rewards, the rest.

    The rollout function reports the first two (`add`); the rest of the step is TRL's scoring
    forward passes (old and reference log-probabilities), the loss, the backward pass and the
    AdamW step, reported as `time/optimizer_s`. `pop` gives the per-step means since its last call.
    """

    def __init__(self) -> None:
        self.started: float | None = None
        self.parts = {"generation_s": 0.0, "env_rewards_s": 0.0}
        self.totals: dict[str, float] = {}
        self.steps = 0

    def add(self, generation_s: float, env_rewards_s: float) -> None:
        self.parts["generation_s"] += generation_s
        self.parts["env_rewards_s"] += env_rewards_s

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.started is None:
            return
        step_s = time.perf_counter() - self.started
        parts = {**self.parts, "step_s": step_s, "optimizer_s": step_s - sum(self.parts.values())}
        for key, value in parts.items():
            self.totals[key] = self.totals.get(key, 0.0) + value
        self.steps += 1
        self.started, self.parts = None, dict.fromkeys(self.parts, 0.0)

    def pop(self) -> dict[str, float]:
        """Returns {"time/<part>_s": mean seconds per step} over the steps since the last call."""
        means = {f"time/{k}": round(v / self.steps, 4) for k, v in self.totals.items()} if self.steps else {}
        self.totals, self.steps = {}, 0
        return means


class RlTags(TrainerCallback):
    """Adds the GRPO stage's namespaced TensorBoard tags (`rl/reward/<name>`, `rl/time/<part>_s`, ...).

    The trainer's own TensorBoardCallback (`report_to`) writes every log under `train/`; these tags
    go through that callback's writer at the same step. The step timings are popped from the clock
    here, once per log, and kept in `timing` for log.jsonl.
    """

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock
        self.timing: dict[str, float] = {}
        self.board: Any = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.timing = self.clock.pop()
        writer = getattr(self.board, "tb_writer", None)
        if writer is None or not logs:
            return
        for tag, value in rl_tags(logs, self.timing).items():
            writer.add_scalar(tag, value, state.global_step)
        writer.flush()


def rl_tags(logs: dict[str, Any], timing: dict[str, float]) -> dict[str, float]:
    """Returns the rl/ tags of one GRPO log: total and per-function rewards, completion length, step timings."""
    tags = {"rl/reward/total": logs.get("reward"), "rl/completion/mean_length": logs.get("completions/mean_length")}
    for key, value in logs.items():
        if key.startswith("rewards/") and key.endswith("/mean"):
            tags[f"rl/reward/{key.split('/')[1]}"] = value
    tags.update({f"rl/{key}": value for key, value in timing.items()})
    return {tag: float(value) for tag, value in tags.items() if isinstance(value, int | float)}


def episode_rewards(task: Task, episodes: Sequence[AgentEpisode], seed: int) -> dict[str, list[float]]:
    """Returns success, calibration and fidelity of each episode (fidelity simulated with a seeded rng)."""
    rng = np.random.default_rng([seed, SALT_RL, 1 << 20])
    return {
        "success": [success_reward(e) for e in episodes],
        "calibration": [calibration_reward(e) for e in episodes],
        "fidelity": [fidelity_reward(task, e, rng) for e in episodes],
    }


def _field_reward(name: str) -> Callable[..., list[float]]:
    def reward(prompts: list[Any], completions: list[Any], **fields: Any) -> list[float]:
        return [float(x) for x in fields[name]]

    reward.__name__ = name
    return reward


def make_rollout_func(
    task: Task,
    instances: Sequence[Any],
    tokenizer: Any,
    fmt: str,
    settings: GrpoSettings,
    seed: int,
    stop_ids: list[int],
    clock: StepClock | None = None,
) -> Callable[[list[str], Any], dict[str, list]]:
    """Returns the rollout_func that plays one episode per prompt with the trainer's current model."""
    by_prompt = {task.prompt(task.reset(inst)): inst for inst in instances}

    def rollout_func(prompts: list[str], trainer: Any) -> dict[str, list]:
        # One generation per optimizer step (steps_per_generation = 1), so the step numbers the
        # call; a run resumed from a checkpoint then draws the very episodes an unbroken run draws.
        call = trainer.state.global_step
        chosen = [by_prompt[p] for p in prompts]
        rngs = [np.random.default_rng([seed, SALT_RL, call, i]) for i in range(len(chosen))]
        sampling = Sampling(settings.temperature, settings.max_turn_tokens, seed=seed * 1_000_003 + call)
        training = trainer.model.training
        started, timings = time.perf_counter(), {"env_s": 0.0}
        episodes = run_episodes(trainer.model, tokenizer, task, chosen, rngs, fmt, sampling, stop_ids, timings=timings)
        played = time.perf_counter()
        trainer.model.train(training)
        rewards = episode_rewards(task, episodes, seed * 7919 + call)
        if clock is not None:
            clock.add(played - started - timings["env_s"], timings["env_s"] + time.perf_counter() - played)
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes],
            "env_mask": [e.env_mask for e in episodes],
            **rewards,
        }

    return rollout_func


def train_grpo(
    model: Any,
    tokenizer: Any,
    task: Task,
    instances: Sequence[Any],
    fmt: str,
    settings: GrpoSettings,
    work_dir: Path,
    seed: int,
    label: str,
    stop_ids: list[int],
) -> dict[str, Any]:
    """Trains `model` in place with GRPO on episodes of `instances`; returns steps, tokens and rewards."""
    names = ["success"] + [n for n, w in (("calibration", settings.lambda_cal), ("fidelity", settings.lambda_fid)) if w]
    weights = {"success": 1.0, "calibration": settings.lambda_cal, "fidelity": settings.lambda_fid}
    prompts = sorted({task.prompt(task.reset(inst)) for inst in instances})
    batch = settings.prompts_per_step * settings.num_generations
    args = GRPOConfig(
        max_steps=settings.steps,
        per_device_train_batch_size=batch,
        num_generations=settings.num_generations,
        steps_per_generation=1,  # rollout_func numbers its calls by the optimizer step
        learning_rate=settings.lr,
        temperature=settings.temperature,
        beta=settings.beta,
        max_completion_length=4096,
        reward_weights=[weights[n] for n in names],
        logging_steps=1,
        **trainer_args(work_dir, settings.save_every, seed),
    )
    log_path = work_dir / "log.jsonl"
    checkpoint = resume_point(work_dir)
    clock = StepClock()
    tags = RlTags(clock)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[_field_reward(n) for n in names],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        rollout_func=make_rollout_func(task, instances, tokenizer, fmt, settings, seed, stop_ids, clock),
        callbacks=[
            clock,
            tags,
            JsonlLog(log_path, extra=lambda: tags.timing),
            StageProgress(label),
            StepFaults("grpo"),
        ],
    )
    tags.board = board_callback(trainer, work_dir)
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=checkpoint)
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    rewards = [r["reward"] for r in records if "reward" in r]
    return {
        "steps": settings.steps,
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "first_reward": rewards[0] if rewards else None,
        "last_reward": rewards[-1] if rewards else None,
    }
