"""The grpo stage (vanilla-rl and FC-RL) through TRL's GRPOTrainer with our multi-turn rollouts.

GRPOTrainer hands each step's prompts to `rollout_func`, which plays whole episodes with the
batched agent loop and returns the prompt ids, the completion ids (agent turns and observations
interleaved), the sampling log-probabilities, and `env_mask` (1 = the model wrote the token,
0 = the world did) so that observations are never trained on. Per-episode rewards travel as
extra fields to the reward functions, which TRL weights with `reward_weights`.
Every logged step in log.jsonl also says where its time went (StepClock): generation, the world
and rewards, and the rest of the step (scoring passes, loss, backward and the optimizer), and what
the step's rollouts were like on the train side (RolloutStats): success, format rate and mean p.
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
from harness.core.streams import int_seed, stream
from harness.core.traces import ForesightBlock, ParseError
from harness.training import distributed
from harness.training.p_sampling import PTemperatureGRPOTrainer, p_token_ids, p_value_mask
from harness.training.rewards import calibration_reward, fidelity_reward, scored_turns, success_reward
from harness.training.sft import (
    CheckpointManifest,
    JsonlLog,
    StageProgress,
    StepFaults,
    board_callback,
    read_log,
    resume_point,
    trainer_args,
)
from harness.training.stages import GrpoSettings
from tasks.base import Task

TRACE_ENV = "HARNESS_ROLLOUT_TRACE"
"""If set, a folder where every rollout call writes what it played and returned (for tests)."""
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


class RolloutStats:
    """Train-side numbers of the episodes GRPO played since the last `pop`: success, format rate, mean p.

    They show whether success is uncertain where RL looks (a calibration reward has nothing to
    teach on prompts the agent always solves) and whether p moves during FC-RL.
    """

    def __init__(self, heldout_like: frozenset[str] = frozenset()) -> None:
        self.episodes: list[AgentEpisode] = []
        self.heldout_like = heldout_like

    def add(self, episodes: Sequence[AgentEpisode]) -> None:
        self.episodes.extend(episodes)

    def pop(self) -> dict[str, float]:
        """Returns {"train/success", "train/format_rate", "train/p_mean", "train/p_first_mean"} (the p
        means over parsed foresight blocks only; absent when there were none), then forgets the episodes.

        Where first turns parsed: "train/p_first_brier" (mean (p - outcome)^2 at the first turn) and
        "train/p_first_success" (the success of those episodes). With held-out-like instances in the
        pool, also the success and mean first-turn p of each kind among the episodes played
        ("train/success_plain", "train/p_first_mean_heldout_like", ...; a kind not played is absent)."""
        episodes, self.episodes = self.episodes, []
        if not episodes:
            return {}
        turns = [t for e in episodes for t in e.turns]
        ps = [t.parsed.p for t in turns if isinstance(t.parsed, ForesightBlock)]
        # (episode, its first-turn p) where the first turn parsed
        firsts = [(e, p) for e in episodes if (p := _first_p(e)) is not None]
        parsed = [not isinstance(t.parsed, ParseError) for t in turns]
        found = {
            "train/success": float(np.mean([e.success for e in episodes])),
            "train/format_rate": float(np.mean(parsed)) if parsed else 0.0,
        }
        if ps:
            found["train/p_mean"] = float(np.mean(ps))
        if firsts:
            found["train/p_first_mean"] = float(np.mean([p for _, p in firsts]))
            # What the calibration reward scores at the first turn: (p - outcome)^2, lower is better.
            found["train/p_first_brier"] = float(np.mean([(p - e.success) ** 2 for e, p in firsts]))
            # The success of those same episodes: calibration in the large compares p_first_mean with it.
            found["train/p_first_success"] = float(np.mean([e.success for e, _ in firsts]))
        if self.heldout_like:
            for kind, held in (("plain", False), ("heldout_like", True)):
                played = [e.success for e in episodes if (e.instance_id in self.heldout_like) == held]
                if played:
                    found[f"train/success_{kind}"] = float(np.mean(played))
                kept = [p for e, p in firsts if (e.instance_id in self.heldout_like) == held]
                if kept:
                    found[f"train/p_first_mean_{kind}"] = float(np.mean(kept))
        return {k: round(v, 6) for k, v in found.items()}


def _first_p(episode: AgentEpisode) -> float | None:
    """Returns the p of the episode's first turn, or None when that turn has no parsed foresight block."""
    if episode.turns and isinstance(episode.turns[0].parsed, ForesightBlock):
        return episode.turns[0].parsed.p
    return None


class RlTags(TrainerCallback):
    """Adds the GRPO stage's namespaced TensorBoard tags (`rl/reward/<name>`, `rl/time/<part>_s`, `rl/rollout/...`).

    The trainer's own TensorBoardCallback (`report_to`) writes every log under `train/`; these tags
    go through that callback's writer at the same step. The step timings and rollout numbers are
    popped from the clock and the stats here, once per log, and kept in `extra` for log.jsonl.
    """

    def __init__(self, clock: StepClock, stats: RolloutStats) -> None:
        self.clock = clock
        self.stats = stats
        self.extra: dict[str, float] = {}
        self.board: Any = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs:  # as JsonlLog: an empty log leaves the timings and episodes to the next one
            return
        self.extra = {**self.clock.pop(), **self.stats.pop()}
        writer = getattr(self.board, "tb_writer", None)
        if writer is None:  # a data-parallel process other than 0 writes no events
            return
        for tag, value in rl_tags(logs, self.extra).items():
            writer.add_scalar(tag, value, state.global_step)
        writer.flush()


def rl_tags(logs: dict[str, Any], extra: dict[str, float]) -> dict[str, float]:
    """Returns the rl/ tags of one GRPO log: total and per-function rewards, completion length, step
    timings (`time/...` as `rl/time/...`) and the rollouts' own numbers (`train/...` as `rl/rollout/...`)."""
    tags = {"rl/reward/total": logs.get("reward"), "rl/completion/mean_length": logs.get("completions/mean_length")}
    for key, value in logs.items():
        if key.startswith("rewards/") and key.endswith("/mean"):
            tags[f"rl/reward/{key.split('/')[1]}"] = value
    for key, value in extra.items():
        tags["rl/" + (f"rollout/{key.removeprefix('train/')}" if key.startswith("train/") else key)] = value
    return {tag: float(value) for tag, value in tags.items() if isinstance(value, int | float)}


def episode_rewards(task: Task, episodes: Sequence[AgentEpisode], seed: int, *indices: int) -> dict[str, list[float]]:
    """Returns success, calibration and fidelity of each episode (fidelity simulated with a seeded rng).

    `indices` (the rollout call and process) pick the call's own "rl-rewards" stream.
    """
    rng = stream(seed, "rl-rewards", *indices)
    return {
        "success": [success_reward(e) for e in episodes],
        "calibration": [calibration_reward(e) for e in episodes],
        "fidelity": [fidelity_reward(task, e, rng) for e in episodes],
    }


def sampling_seed(seed: int, call: int, rank: int) -> int:
    """Returns the token-sampling seed of one rollout call of one process (stream "rl-tokens", call, rank).

    A 32-bit seed: torch's CPU generator keeps only the low 32 bits of a seed, so an offset above
    them (a first version added rank << 40) gave every process the same stream, and with an
    untrained model the two processes then wrote the very same tokens (caught by test_devices.py).
    """
    return int_seed(seed, "rl-tokens", call, rank)


def trace_rollout(folder: Path, call: int, rank: int, first: int, prompts: list[str], output: dict) -> None:
    """Writes one rollout call's prompts and returned fields to `folder/step<call>-rank<rank>.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"step": call, "rank": rank, "first": first, "prompts": list(prompts), **output}
    (folder / f"step{call}-rank{rank}.json").write_text(json.dumps(record, sort_keys=True))


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
    stats: RolloutStats | None = None,
) -> Callable[[list[str], Any], dict[str, list]]:
    """Returns the rollout_func that plays one episode per prompt with the trainer's current model.

    Data-parallel, each process plays the prompts TRL hands it (its share of the step's batch) and
    returns rewards for exactly those episodes. Episode i of process r is global episode
    r * len(prompts) + i: its world draws from that number, and each process samples tokens and
    simulates fidelity from a stream of its own, so no two processes play correlated episodes.
    Process 0 of one process draws what the in-process stage draws.
    """
    by_prompt = {task.prompt(task.reset(inst)): inst for inst in instances}
    explore: dict[str, Any] = {}
    if settings.p_temperature is not None or settings.p_only:
        marker, values = p_token_ids(tokenizer)
    if settings.p_temperature is not None:
        explore = {"p_temperature": settings.p_temperature, "p_marker": marker, "p_values": values}

    def rollout_func(prompts: list[str], trainer: Any) -> dict[str, list]:
        # One generation per optimizer step (steps_per_generation = 1), so the step numbers the
        # call; a run resumed from a checkpoint then draws the very episodes an unbroken run draws.
        call = trainer.state.global_step
        chosen = [by_prompt[p] for p in prompts]
        rank = trainer.accelerator.process_index
        first = rank * len(chosen)
        rngs = [stream(seed, "rl-rollouts", call, first + i) for i in range(len(chosen))]
        sampling = Sampling(
            settings.temperature, settings.max_turn_tokens, seed=sampling_seed(seed, call, rank), **explore
        )
        training = trainer.model.training
        started, timings = time.perf_counter(), {"env_s": 0.0}
        episodes = run_episodes(trainer.model, tokenizer, task, chosen, rngs, fmt, sampling, stop_ids, timings=timings)
        played = time.perf_counter()
        trainer.model.train(training)
        rewards = episode_rewards(task, episodes, seed, call, rank)
        if clock is not None:
            clock.add(played - started - timings["env_s"], timings["env_s"] + time.perf_counter() - played)
        if stats is not None:
            stats.add(episodes)
        output = {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes],
            "env_mask": [
                p_value_mask(e.completion_ids, e.env_mask, marker, values, scored_turns(e))
                if settings.p_only
                else e.env_mask
                for e in episodes
            ],
            **rewards,
        }
        if os.environ.get(TRACE_ENV):
            trace_rollout(Path(os.environ[TRACE_ENV]), call, rank, first, prompts, output)
        return output

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
    heldout_like: frozenset[str] = frozenset(),
    prompt_rows: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Trains `model` in place with GRPO on episodes of `instances`; returns steps, tokens and rewards.

    `heldout_like` names the instances of the pool that are held-out-like (harness/data/rl_pool.py),
    whose train-side success the log shows apart; `prompt_rows` is the prompt set GRPO samples
    from (default: each distinct prompt of `instances` once)."""
    # Success stays a reward function even at weight 0, so that TRL logs train-side success.
    names = ["success"] + [n for n, w in (("calibration", settings.lambda_cal), ("fidelity", settings.lambda_fid)) if w]
    weights = {"success": settings.lambda_success, "calibration": settings.lambda_cal, "fidelity": settings.lambda_fid}
    if prompt_rows is None:
        prompt_rows = sorted({task.prompt(task.reset(inst)) for inst in instances})
    prompts = list(prompt_rows)
    batch = settings.prompts_per_step * settings.num_generations
    args = GRPOConfig(
        max_steps=settings.steps,
        per_device_train_batch_size=distributed.per_process(batch, "prompts_per_step * num_generations"),
        num_generations=settings.num_generations,
        steps_per_generation=1,  # rollout_func numbers its calls by the optimizer step
        learning_rate=settings.lr,
        temperature=settings.temperature,
        beta=settings.beta,
        scale_rewards=settings.scale_rewards,
        max_completion_length=4096,
        reward_weights=[weights[n] for n in names],
        logging_steps=1,
        **trainer_args(work_dir, settings.save_every, seed),
    )
    log_path = work_dir / "log.jsonl"
    checkpoint = resume_point(work_dir)
    clock, stats = StepClock(), RolloutStats(heldout_like)
    tags = RlTags(clock, stats)
    trainer_class: Any = GRPOTrainer
    extra: dict[str, Any] = {}
    if settings.p_temperature is not None:
        marker, values = p_token_ids(tokenizer)
        trainer_class = PTemperatureGRPOTrainer
        extra = {"p_temperature": settings.p_temperature, "marker": marker, "values": values}
    trainer = trainer_class(
        model=model,
        reward_funcs=[_field_reward(n) for n in names],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        rollout_func=make_rollout_func(task, instances, tokenizer, fmt, settings, seed, stop_ids, clock, stats),
        callbacks=[
            clock,
            tags,
            JsonlLog(log_path, extra=lambda: tags.extra),
            StageProgress(label),
            StepFaults("grpo"),
            CheckpointManifest(),
        ],
        **extra,
    )
    tags.board = board_callback(trainer, work_dir)
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=checkpoint)
    records = read_log(log_path)
    rewards = [r["reward"] for r in records if "reward" in r]
    return {
        "steps": settings.steps,
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "first_reward": rewards[0] if rewards else None,
        "last_reward": rewards[-1] if rewards else None,
    }
