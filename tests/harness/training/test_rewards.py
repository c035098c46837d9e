"""FC-RL rewards on hand-made episodes, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from harness.agent import AgentEpisode, Turn
from harness.core.registry import make_task
from harness.core.traces import ForesightBlock, ParseError
from harness.training.rewards import (
    actual_observations,
    calibration_reward,
    fidelity_reward,
    scored_turns,
    success_reward,
)


@pytest.fixture(scope="module")
def kb():
    return make_task("kb-search", {})


def play(task, instance, turns_spec):
    """Returns an AgentEpisode whose turns are (parsed block or error, action) played in the world."""
    rng = np.random.default_rng(0)
    state = task.reset(instance)
    episode = AgentEpisode(instance.id, task.prompt(state))
    for parsed, action in turns_spec:
        result = task.step(state, action, rng)
        episode.turns.append(Turn(state, "", parsed, action, result.observation))
        state = result.state
        episode.success = result.reward > 0
    episode.final_state = state
    return episode


def expert_plan(task, instance):
    rng = np.random.default_rng(0)
    state, actions, observations = task.reset(instance), [], []
    while not state.done:
        action = task.expert(state)
        result = task.step(state, action, rng)
        actions.append(action)
        observations.append(result.observation)
        state = result.state
    return actions, observations


def test_calibration_and_fidelity_by_hand(kb) -> None:
    instance = next(i for i in kb.splits(0).train if len(i.relations) == 2)
    actions, observations = expert_plan(kb, instance)
    assert len(actions) == 3  # search, search, answer
    # Turn 0: a 2-step plan, both predictions right, p = 0.7.
    # Turn 1: a 2-step plan whose second prediction is wrong, p = 1.0.
    # Turn 2: the block failed to parse.
    t0 = ForesightBlock(tuple(actions[:2]), tuple(observations[:2]), 0.7, actions[0])
    t1 = ForesightBlock(tuple(actions[1:3]), (observations[1], "wrong"), 1.0, actions[1])
    t2 = ParseError("not a block", "x")
    episode = play(kb, instance, [(t0, actions[0]), (t1, actions[1]), (t2, actions[2])])
    assert episode.success
    assert success_reward(episode) == 1.0
    # calibration: mean(1 - 0.3^2, 1 - 0^2, 0) = (0.91 + 1 + 0) / 3
    assert calibration_reward(episode) == pytest.approx((0.91 + 1.0 + 0.0) / 3)
    assert scored_turns(episode) == [True, True, False]  # the p tokens `p_only` trains
    # fidelity: mean(2/2, 1/2, 0) = 0.5; turn 1's second step is "correct", predicted "wrong"
    assert fidelity_reward(kb, episode, np.random.default_rng(1)) == pytest.approx(0.5)


def test_actual_observations_simulate_after_deviation(kb) -> None:
    instance = next(i for i in kb.splits(0).train if len(i.relations) == 2)
    actions, observations = expert_plan(kb, instance)
    # The block plans the expert's two searches, but the agent then answers nonsense instead.
    block = ForesightBlock(tuple(actions[:2]), tuple(observations[:2]), 0.5, actions[0])
    episode = play(kb, instance, [(block, actions[0]), (ParseError("x", "x"), "answer nobody")])
    assert not episode.success
    assert episode.turns[1].observation == "wrong"
    # The second planned step was never carried out: its actual observation is simulated.
    assert actual_observations(kb, episode, 0, np.random.default_rng(0)) == observations[:2]
    assert fidelity_reward(kb, episode, np.random.default_rng(0)) == pytest.approx((1.0 + 0.0) / 2)
    # outcome 0: turn 0 scores 1 - 0.5^2 = 0.75, turn 1 (no block) 0
    assert calibration_reward(episode) == pytest.approx(0.375)


def test_empty_episode_rewards_zero(kb) -> None:
    episode = AgentEpisode("x", "q")
    assert calibration_reward(episode) == 0.0
    assert fidelity_reward(kb, episode, np.random.default_rng(0)) == 0.0
    assert success_reward(episode) == 0.0
