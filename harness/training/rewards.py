"""FC-RL rewards of one played episode (docs/design.md#training-stages-and-the-fc-rl-reward), as small pure functions.

reward = success + lambda_cal * calibration + lambda_fid * fidelity, where
- success     = 1 if the episode solved its instance, else 0;
- calibration = mean over the episode's turns of 1 - (p - outcome)^2, outcome = success; a turn
  whose foresight block does not parse scores 0, so format failures are never rewarded;
- fidelity    = mean over turns of the share of the block's predicted observations that equal
  the actual ones (a turn without a block scores 0; a prediction past the episode's end, where
  the world gives no observation, is wrong: the rollout metric counts it the same way).
vanilla-rl uses success alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.agent import AgentEpisode
from harness.core.traces import ForesightBlock
from tasks.base import Task


def actual_observations(task: Task, episode: AgentEpisode, turn: int, rng: np.random.Generator) -> list[str]:
    """Returns what the world says to the block's plan at `turn`, step by step.

    Observations are the episode's own while the agent carried its plan out, and after it
    deviated (or the episode ended) what executing the rest of the plan would have given,
    simulated with `rng` from the last state reached.
    """
    block = episode.turns[turn].parsed
    assert isinstance(block, ForesightBlock)
    seen: list[str] = []
    state = episode.turns[turn].state
    following = True
    for j, action in enumerate(block.plan):
        k = turn + j
        if following and k < len(episode.turns) and episode.turns[k].action == action:
            seen.append(episode.turns[k].observation)
            state = episode.turns[k + 1].state if k + 1 < len(episode.turns) else episode.final_state
            continue
        following = False
        if state.done:
            break
        result = task.step(state, action, rng)
        seen.append(result.observation)
        state = result.state
    return seen


def success_reward(episode: AgentEpisode) -> float:
    """Returns 1.0 for a solved episode, else 0.0."""
    return 1.0 if episode.success else 0.0


def scored_turns(episode: AgentEpisode) -> list[bool]:
    """Returns, per turn, whether the calibration reward reads its p: whether its foresight block parsed."""
    return [isinstance(t.parsed, ForesightBlock) for t in episode.turns]


def calibration_reward(episode: AgentEpisode) -> float:
    """Returns the mean over turns of 1 - (p - outcome)^2 (0 for a turn without a block)."""
    if not episode.turns:
        return 0.0
    outcome = success_reward(episode)
    scores = [1.0 - (t.parsed.p - outcome) ** 2 if isinstance(t.parsed, ForesightBlock) else 0.0 for t in episode.turns]
    return float(np.mean(scores))


def fidelity_hits(predicted: Sequence[str], actual: Sequence[str]) -> list[bool]:
    """Returns, per predicted observation, whether it equals the actual one (missing = wrong)."""
    return [j < len(actual) and p == actual[j] for j, p in enumerate(predicted)]


def fidelity_reward(task: Task, episode: AgentEpisode, rng: np.random.Generator) -> float:
    """Returns the mean over turns of the share of predicted observations that came true."""
    if not episode.turns:
        return 0.0
    scores = []
    for i, turn in enumerate(episode.turns):
        if isinstance(turn.parsed, ForesightBlock):
            hits = fidelity_hits(turn.parsed.rollout, actual_observations(task, episode, i, rng))
            scores.append(float(np.mean(hits)))
        else:
            scores.append(0.0)
    return float(np.mean(scores))
