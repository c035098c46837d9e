"""The grpo stage (vanilla-rl and FC-RL) through TRL's GRPOTrainer with our multi-turn rollouts.

GRPOTrainer hands each step's prompts to `rollout_func`, which plays whole episodes with the
batched agent loop and returns the prompt ids, the completion ids (agent turns and observations
interleaved), the sampling log-probabilities, and `env_mask` (1 = the model wrote the token,
0 = the world did) so that observations are never trained on. Per-episode rewards travel as
extra fields to the reward functions, which TRL weights with `reward_weights`: each `Reward` of
`stage_rewards` holds its name, its weight and its function together.
Every logged step in log.jsonl also says where its time went (StepClock): generation, the world
and rewards, and the rest of the step (scoring passes, loss, backward and the optimizer), and what
the step's rollouts were like on the train side (RolloutStats): success, format rate and mean p.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from harness.agent import AgentEpisode, Sampling, run_episodes
from harness.core.streams import int_seed, stream
from harness.core.traces import ForesightBlock, ParseError
from harness.data.rl_pool import rl_pool
from harness.training import distributed
from harness.training.callbacks import CheckpointManifest, JsonlLog, RlTags, StageProgress, StepClock, StepFaults
from harness.training.job import StageJob
from harness.training.models import stop_token_ids
from harness.training.p_sampling import PTemperatureGRPOTrainer, p_token_ids, p_value_mask
from harness.training.rewards import calibration_reward, fidelity_reward, scored_turns, success_reward
from harness.training.stages import GrpoSettings
from harness.training.work_folder import board_callback, read_log, resume_point, trainer_args
from tasks.base import Task

TRACE_ENV = "HARNESS_ROLLOUT_TRACE"
"""If set, a folder where every rollout call writes what it played and returned (for tests)."""
# rollout_func is experimental in TRL 1.16; we rely on it knowingly (see README, 'Methods and stages').
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


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


@dataclass(frozen=True)
class Reward:
    """One reward TRL weighs into the total: its name (a field of every rollout, and the log's
    `rewards/<name>/mean`), its weight, and the reward function that reads the field."""

    name: str
    weight: float
    fn: Callable[..., list[float]]


def stage_rewards(settings: GrpoSettings) -> list[Reward]:
    """Returns the weighted rewards of a grpo stage: success at `lambda_success`, calibration at `lambda_cal`
    and fidelity at `lambda_fid`; a reward at weight 0 is left out, but success, so that TRL logs train-side
    success. What each scores: `episode_rewards`."""
    weighted = (
        ("success", settings.lambda_success),
        ("calibration", settings.lambda_cal),
        ("fidelity", settings.lambda_fid),
    )
    return [Reward(name, weight, _field_reward(name)) for name, weight in weighted if weight or name == "success"]


def fit_grpo(job: StageJob, model: Any, tokenizer: Any, task: Task) -> dict[str, Any]:
    """Returns the stats of a grpo stage after training `model` in place on its prompt pool (harness.data.rl_pool)."""
    assert isinstance(job.spec.settings, GrpoSettings)
    pool = rl_pool(task, job.seed, job.spec.settings.heldout_like_share)
    stats = train_grpo(model, tokenizer, task, job, pool.instances, pool.heldout_like_ids, pool.prompt_rows(task))
    if pool.wanted:
        stats["pool"] = pool.summary()
    return stats


def train_grpo(
    model: Any,
    tokenizer: Any,
    task: Task,
    job: StageJob,
    instances: Sequence[Any],
    heldout_like: frozenset[str] = frozenset(),
    prompt_rows: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Trains `model` in place with GRPO on episodes of `instances`; returns steps, tokens and rewards.

    `heldout_like` names the instances of the pool that are held-out-like (harness/data/rl_pool.py),
    whose train-side success the log shows apart; `prompt_rows` is the prompt set GRPO samples
    from (default: each distinct prompt of `instances` once)."""
    settings, work_dir = job.spec.settings, job.work
    assert isinstance(settings, GrpoSettings)
    rewards = stage_rewards(settings)
    if prompt_rows is None:
        prompt_rows = sorted({task.prompt(task.reset(inst)) for inst in instances})
    prompts = list(prompt_rows)
    args = grpo_config(settings, rewards, work_dir, job.seed)
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
    stop_ids = stop_token_ids(tokenizer)
    trainer = trainer_class(
        model=model,
        reward_funcs=[r.fn for r in rewards],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        rollout_func=make_rollout_func(
            task, instances, tokenizer, job.spec.fmt, settings, job.seed, stop_ids, clock, stats
        ),
        callbacks=[
            clock,
            tags,
            JsonlLog(log_path, extra=lambda: tags.extra),
            StageProgress(job.label),
            StepFaults("grpo"),
            CheckpointManifest(),
        ],
        **extra,
    )
    tags.board = board_callback(trainer, work_dir)
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=checkpoint)
    return _grpo_stats(settings, trainer, read_log(log_path))


def grpo_config(settings: GrpoSettings, rewards: Sequence[Reward], work_dir: Path, seed: int) -> GRPOConfig:
    """Returns the GRPOConfig of a grpo stage, its rewards weighted as `rewards` says."""
    batch = settings.prompts_per_step * settings.num_generations
    return GRPOConfig(
        max_steps=settings.steps,
        per_device_train_batch_size=distributed.per_process(batch, "prompts_per_step * num_generations"),
        num_generations=settings.num_generations,
        steps_per_generation=1,  # rollout_func numbers its calls by the optimizer step
        learning_rate=settings.lr,
        temperature=settings.temperature,
        beta=settings.beta,
        scale_rewards=settings.scale_rewards,
        max_completion_length=4096,
        reward_weights=[r.weight for r in rewards],
        logging_steps=1,
        **trainer_args(work_dir, settings.save_every, seed),
    )


def _grpo_stats(settings: GrpoSettings, trainer: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Returns a trained grpo stage's steps, tokens seen and first and last logged reward."""
    rewards = [r["reward"] for r in records if "reward" in r]
    return {
        "steps": settings.steps,
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "first_reward": rewards[0] if rewards else None,
        "last_reward": rewards[-1] if rewards else None,
    }
