"""The reference policy of D_look's p (harness.data.reference, tasks.base.NoisyExpert): exact values, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.config import DataSpec, load_profile
from harness.core.errors import HarnessError
from harness.core.registry import make_task
from harness.data.recipes import build_corpora, corpus_stats, expert_episodes
from harness.data.reference import reference_policy, solve_epsilon, start_success
from tasks.base import NoisyExpert
from tasks.graph_nav import GraphNav, GraphNavConfig, Instance

SMOKE = load_profile("smoke")


def line_world() -> GraphNav:
    """n0 -red-> n1 -red-> n2 (the goal); blue stays at n0 or goes back to it; no slip, horizon 2."""
    config = GraphNavConfig(n_nodes=3, n_labels=2, slip=0.0, horizon=2, min_distance=1, pockets=0.0, heldout_share=0.0)
    return GraphNav.from_edges(config, [[1, 0], [2, 0], [2, 2]])


def test_values_by_hand() -> None:
    task = line_world()
    start = task.reset(Instance("i", 0, 2))
    policy = NoisyExpert(task, 0.5)
    # Two moves, each the intended red with probability (1 - 0.5) + 0.5 / 2 = 0.75: 0.75^2.
    assert policy.value(start) == pytest.approx(0.5625)
    assert policy.q(start, ["go red", "go red"]) == pytest.approx(0.5625)
    # Planned blue first: kept (0.5) leaves n0 with one move (0); a random move (0.5) is red half the
    # time, which abandons the plan at n1 with one move left (0.75): 0.5 * 0.5 * 0.75.
    assert policy.q(start, ["go blue", "go red"]) == pytest.approx(0.1875)
    # epsilon 0 is the expert: q is Q*.
    assert NoisyExpert(task, 0.0).q(start, ["go blue", "go red"]) == task.q_star(start, ["go blue", "go red"]) == 0.0


@pytest.mark.parametrize("name", ["graph-nav", "kb-search", "countdown"])
def test_epsilon_zero_is_q_star_and_samples_average_to_q(name: str) -> None:
    task = make_task(name, SMOKE.tasks[name])
    episodes = expert_episodes(task, task.splits(0).train, 0)
    expert, noisy = NoisyExpert(task, 0.0), NoisyExpert(task, 0.3)
    for e in episodes:
        for i, state in enumerate(e.states[:-1]):
            for plan in (e.actions[i : i + 2], task.legal_actions(state)[-1:]):
                assert expert.q(state, plan) == pytest.approx(task.q_star(state, plan), abs=1e-12)
    state, plan = episodes[0].states[0], episodes[0].actions[:2]
    rng = np.random.default_rng(0)
    n = 4000
    mean = sum(noisy.sample(state, plan, rng) for _ in range(n)) / n
    q = noisy.q(state, plan)
    assert 0 < q < 1 and abs(mean - q) < 4 * np.sqrt(q * (1 - q) / n)


def test_epsilon_is_solved_to_the_stated_success() -> None:
    task = make_task("countdown", SMOKE.tasks["countdown"])
    train = task.splits(0).train
    eps = solve_epsilon(task, train, 0.5)
    assert 0 < eps < 1 and start_success(task, train, eps) == pytest.approx(0.5, abs=1e-3)
    assert start_success(task, train, eps) >= 0.5  # never overshoots the target
    assert solve_epsilon(task, train, 1.0) == 0.0  # even the expert cannot do better than 1.0
    with pytest.raises(HarnessError, match="reference_success is 1.5"):
        solve_epsilon(task, train, 1.5)
    data = DataSpec(look_k=2, world_episodes=10, reference_success=0.5)
    assert reference_policy(task, data, 0).epsilon == eps


P_BELOW_ONE = 0.8
"""Stated share of D_look's p targets below 1.0 on every task of the default profile (measured: 0.99-1.0)."""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["graph-nav", "kb-search", "countdown"])
def test_default_p_targets_vary(name: str) -> None:
    profile = load_profile("default")
    task = make_task(name, profile.tasks[name])
    stats = corpus_stats(build_corpora(task, profile.data, 0))["p_targets"]
    assert 1 - stats["share_1.0"] >= P_BELOW_ONE
    assert sum(stats["histogram"].values()) == stats["n"] > 0
    assert len([c for c in stats["histogram"].values() if c]) >= 3  # at least three distinct values
