"""Plays a trained agent on a task's split in batches; every method sees the same world noise.

Episode i of a split draws its world noise from (seed, SALT_EVAL, i) whatever the method, so the
comparison of two methods is paired episode by episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.agent import AgentEpisode, Sampling, run_episodes
from tasks.base import Task

SALT_EVAL = 505


def play_split(
    model: Any,
    tokenizer: Any,
    task: Task,
    instances: Sequence[Any],
    fmt: str,
    seed: int,
    stop_ids: list[int],
    batch_size: int = 64,
    sampling: Sampling = Sampling(),
    prefix: str = "",
) -> list[AgentEpisode]:
    """Returns the agent's episode on every instance, played `batch_size` at a time."""
    episodes: list[AgentEpisode] = []
    for start in range(0, len(instances), batch_size):
        chunk = instances[start : start + batch_size]
        rngs = [np.random.default_rng([seed, SALT_EVAL, start + i]) for i in range(len(chunk))]
        episodes += run_episodes(model, tokenizer, task, chunk, rngs, fmt, sampling, stop_ids, prefix=prefix)
    return episodes


def success_rate(episodes: Sequence[AgentEpisode]) -> float:
    """Returns the share of solved episodes."""
    return float(np.mean([e.success for e in episodes])) if episodes else 0.0


def random_policy_success(task: Task, instances: Sequence[Any], seed: int) -> float:
    """Returns the success of a uniformly random legal policy on `instances` (the floor to beat)."""
    solved = 0
    for i, inst in enumerate(instances):
        rng = np.random.default_rng([seed, SALT_EVAL, i])
        state = task.reset(inst)
        while not state.done:
            legal = task.legal_actions(state)
            result = task.step(state, legal[int(rng.integers(len(legal)))], rng)
            state = result.state
            solved += result.reward > 0
    return solved / max(1, len(instances))
