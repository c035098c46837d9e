"""graph-nav: exact Q* on a hand-built world and by Monte Carlo, robust steps, splits and held-out coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.registry import make_task
from harness.core.streams import stream
from harness.core.traces import RESERVED
from tasks.base import (
    EXPLORER_POLICIES,
    INVALID_ACTION,
    episode_items,
    eval_keys,
    expert_episode,
    explore,
    play,
    simulate,
)
from tasks.graph_nav import GraphNav, GraphNavConfig, Instance, State, find_pockets

# Node 3 is the goal; red = label 0, blue = label 1.
#   0: red -> 1, blue -> 2      1: red -> 3, blue -> 0
#   2: red -> 0, blue -> 1      3: red -> 0, blue -> 1
HAND_EDGES = [[1, 2], [3, 0], [0, 1], [0, 1]]


@pytest.fixture(scope="module")
def hand() -> GraphNav:
    config = GraphNavConfig(n_nodes=4, n_labels=2, slip=0.2, horizon=3, min_distance=1, heldout_share=0.0)
    return GraphNav.from_edges(config, HAND_EDGES)


@pytest.fixture(scope="module")
def task() -> GraphNav:
    return GraphNav(GraphNavConfig())


class FixedDraws:
    """Stands in for a Generator whose uniform draws are given in advance."""

    def __init__(self, *draws: float) -> None:
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


def test_q_star_by_hand(hand: GraphNav) -> None:
    # slip 0.2 with two labels: a move goes where meant with 0.8, along the other edge with 0.2.
    # V1: n1 0.8 (red), n2 0 (no edge to n3), n0 0.
    # V2: n1 = 0.8 + 0.2 * V1(n0) = 0.8; n2 = max(red 0.8*V1(n0) + 0.2*V1(n1), blue 0.8*V1(n1) + 0.2*V1(n0))
    #     = max(0.16, 0.64) = 0.64; n0 = max(red 0.8*0.8 + 0.2*0, blue 0.8*0 + 0.2*0.8) = 0.64.
    # V3(n0): red 0.8*V2(n1) + 0.2*V2(n2) = 0.64 + 0.128 = 0.768; blue 0.8*0.64 + 0.2*0.8 = 0.672.
    start = hand.reset(Instance("hand", 0, 3))
    assert hand.q_star(start, []) == pytest.approx(0.768)
    assert hand.q_star(start, ["go red"]) == pytest.approx(0.768)
    assert hand.q_star(start, ["go blue"]) == pytest.approx(0.672)
    # blue, blue: reach n3 at once via n1 with 0.2 * 0.2 = 0.04; else n1 with 0.64 (then V1 = 0.8), n0 with 0.32.
    assert hand.q_star(start, ["go blue", "go blue"]) == pytest.approx(0.04 + 0.64 * 0.8)
    # An illegal action burns a turn in place: then red from n0 with two turns left gives V2(n0).
    assert hand.q_star(start, ["fly to moon", "go red"]) == pytest.approx(0.64)
    assert hand.q_star(start, ["go pink"]) == pytest.approx(0.64)
    # red x3 ends with the horizon; steps past it are ignored: 0.64 + (0.8*0.2 * 0 + 0.2*0.2) * 0.8 = 0.672.
    assert hand.q_star(start, ["go red"] * 5) == pytest.approx(0.672)
    assert hand.expert(start) == "go red"
    assert hand.value(start) == pytest.approx(0.768)
    at_n2 = State(node=2, goal=3, t=1)
    assert hand.expert(at_n2) == "go blue"
    assert hand.q_star(at_n2, [hand.expert(at_n2)]) == pytest.approx(hand.value(at_n2)) == pytest.approx(0.64)
    assert hand.q_star(State(node=3, goal=3, t=2, done=True, success=True), ["go red"]) == 1.0
    assert hand.q_star(State(node=0, goal=3, t=3, done=True), []) == 0.0


def test_q_star_of_the_expert_is_the_best_value(task: GraphNav) -> None:
    rng = np.random.default_rng([7, 1])
    for _ in range(200):
        goal, node, t = (int(x) for x in rng.integers([task.config.n_nodes, task.config.n_nodes, 8]))
        state = State(node=node, goal=goal, t=t, done=node == goal, success=node == goal)
        best = task.q_star(state, [task.expert(state)])
        assert best == pytest.approx(task.value(state))
        assert all(task.q_star(state, [a]) <= best + 1e-12 for a in task.legal_actions(state))


def test_q_star_matches_monte_carlo() -> None:
    task = GraphNav(GraphNavConfig(slip=0.3, horizon=6))
    instance = task.splits(0).test[0]
    state = task.reset(instance)
    # The plan (with an illegal step) whose Q* is nearest 0.5, where Monte Carlo is least precise.
    legal = task.legal_actions(state)
    plans = [[a, b, "go nowhere"] for a in legal for b in legal]
    plan = min(plans, key=lambda p: abs(task.q_star(state, p) - 0.5))
    q = task.q_star(state, plan)
    n = 2000
    wins = 0
    for i in range(n):
        rng = np.random.default_rng([11, i])
        steps = simulate(task, state, plan, rng)
        end = steps[-1].state if steps else state
        while not end.done:
            end = task.step(end, task.expert(end), rng).state
        wins += end.success
    se = math.sqrt(q * (1 - q) / n)
    print(f"Q* {q:.4f}, Monte Carlo {wins / n:.4f} over {n} runs (se {se:.4f})")
    assert 0.05 < q < 0.95
    assert abs(wins / n - q) < 3 * se


def test_step_rejects_bad_actions_without_raising(hand: GraphNav) -> None:
    state = hand.reset(Instance("hand", 0, 3))
    rng = np.random.default_rng(0)
    for action in ["", "go", "fly to moon", "go red red", "plan x act y", "GO RED", "go\u00e9"]:
        result = hand.step(state, action, rng)
        assert result.observation == INVALID_ACTION
        assert (result.state.node, result.state.t, result.done, result.reward) == (0, 1, False, 0.0)
    result = hand.step(state, "go pink", rng)
    assert (result.observation, result.state.node, result.state.t) == ("no such edge", 0, 1)
    assert hand.items(state, "go pink", result.state) == frozenset()
    # Out of turns at the last step: a failure, and stepping a finished state changes nothing.
    last = hand.step(State(node=0, goal=3, t=2), "go blue", FixedDraws(0.5))
    assert (last.state.node, last.done, last.reward, last.state.success) == (2, True, 0.0, False)
    assert hand.step(last.state, "go red", rng).state == last.state


def test_step_slips_and_draws_once(hand: GraphNav) -> None:
    state = hand.reset(Instance("hand", 0, 3))
    assert hand.step(state, "go red", FixedDraws(0.5)).observation == "at n1"
    assert hand.step(state, "go red", FixedDraws(0.1)).observation == "at n2"  # u < slip: the other label
    win = hand.step(State(node=1, goal=3, t=0), "go red", FixedDraws(0.9))
    assert (win.observation, win.done, win.reward, win.state.success) == ("at n3", True, 1.0, True)
    assert hand.items(state, "go red", hand.step(state, "go red", FixedDraws(0.1)).state) == {("n0", "red", "n2")}
    for action in ["go red", "go pink", "", "fly to moon"]:
        used, fresh = np.random.default_rng(3), np.random.default_rng(3)
        hand.step(state, action, used)
        fresh.random()
        assert used.random() == fresh.random()


def test_slip_frequencies_are_uniform_over_other_labels() -> None:
    task = GraphNav(GraphNavConfig(n_labels=4, slip=0.3))
    state = State(node=0, goal=1)
    rng = np.random.default_rng(5)
    landed = [task.step(state, "go blue", rng).state.node for _ in range(20_000)]
    for label, target in enumerate(task.succ[0]):
        share = float(np.mean([n == target for n in landed]))
        expected = sum(0.7 if lab == 1 else 0.1 for lab, t in enumerate(task.succ[0]) if t == target)
        assert share == pytest.approx(expected, abs=0.015), label


def test_world_is_strongly_connected_with_pockets(task: GraphNav) -> None:
    n = task.config.n_nodes
    assert (task.dist <= n - 1).all()
    assert not (task.succ == np.arange(n)[:, None]).any()
    assert len(task.pockets) == task.config.n_pockets == 6
    assert find_pockets(np.array(HAND_EDGES)) == ()


def test_determinism(task: GraphNav) -> None:
    again = GraphNav(GraphNavConfig())
    assert (again.succ == task.succ).all()
    assert again.splits(0) == task.splits(0) and repr(again.splits(3)) == repr(task.splits(3))
    assert task.splits(0) != task.splits(1)
    assert task.heldout_goals(0) != task.heldout_goals(1)
    assert not (GraphNav(GraphNavConfig(world_seed=1)).succ == task.succ).all()
    assert make_task("graph-nav", {"world_seed": 0}).splits(2) == task.splits(2)


@pytest.mark.parametrize("seed", [0, 1])
def test_split_shape(task: GraphNav, seed: int) -> None:
    c, splits = task.config, task.splits(seed)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (c.n_train, c.n_dev, c.n_test)
    train_pairs = {(i.start, i.goal) for i in splits.train}
    held = task.heldout_goals(seed)
    assert held and held <= set(task.pockets)
    for inst in splits.dev + splits.test:
        assert (inst.start, inst.goal) not in train_pairs
        assert inst.heldout == (inst.goal in held)
    for inst in splits.train + splits.dev + splits.test:
        assert c.min_distance <= task.dist[inst.start, inst.goal] <= c.horizon
        assert inst.id.startswith(f"graph-nav-s{seed}-")
    assert not {g for _, g in train_pairs} & held
    assert sum(i.heldout for i in splits.test) == round(c.n_test * c.heldout_share)
    assert len({i.id for i in splits.train + splits.dev + splits.test}) == c.n_train + c.n_dev + c.n_test


@pytest.mark.parametrize("seed", [0, 1])
def test_heldout_coverage(task: GraphNav, seed: int) -> None:
    splits = task.splits(seed)
    experts = [expert_episode(task, inst, stream(seed, "expert-episodes", i)) for i, inst in enumerate(splits.train)]
    shown = frozenset().union(*(episode_items(task, e) for e in experts))
    policies = EXPLORER_POLICIES
    banned = eval_keys(task, splits)  # as D_world: exploration never starts at a dev or test instance
    world = [explore(task, stream(seed, "world-episodes", i), policies[i % 3], banned) for i in range(2000)]
    explored = frozenset().union(*(episode_items(task, e) for e in world))
    unseen = [task.required(inst) - shown for inst in splits.test]
    needs = float(np.mean([bool(u) for u in unseen]))
    missing = frozenset().union(*unseen)
    found = len(missing & explored) / len(missing)
    familiar_unseen = np.mean([bool(u) for u, inst in zip(unseen, splits.test) if not inst.heldout])
    print(
        f"seed {seed}: test needing unseen moves {needs:.2f} (heldout_share {task.config.heldout_share}); "
        f"{len(missing)} unseen moves, {found:.0%} of them explored; "
        f"familiar test needing unseen {familiar_unseen:.2f}; "
        f"train expert success {np.mean([e.success for e in experts]):.3f}"
    )
    assert needs >= task.config.heldout_share - 0.1
    assert found >= 0.95
    assert familiar_unseen <= 0.1


def test_expert_quality(task: GraphNav) -> None:
    # The expert is optimal, so its expected success on an instance is V*(start); at slip 0.1 a
    # pocket goal can be entered by one edge only (a slip there costs the move), which puts the
    # mean V* of the test split near 0.94 (world 0, seed 0), not near 1.
    splits = task.splits(0)
    wins = [expert_episode(task, inst, np.random.default_rng([9, i])).success for i, inst in enumerate(splits.test)]
    expected = np.mean([task.value(task.reset(inst)) for inst in splits.test])
    print(f"expert success on test {np.mean(wins):.2f}, mean V* {expected:.3f}")
    assert np.mean(wins) >= 0.8
    assert expected >= 0.85


def test_slip_free_expert_walks_shortest_paths() -> None:
    task = GraphNav(GraphNavConfig(slip=0.0))
    for inst in task.splits(0).test:
        episode = expert_episode(task, inst, np.random.default_rng(0))
        assert episode.success and len(episode.actions) == task.dist[inst.start, inst.goal]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"n_nodes": 2}, "n_nodes"),
        ({"colour": 3}, "unknown key .colour. in tasks.graph-nav"),
        ({"min_distance": 9}, "exceeds horizon"),
        ({"slip": "high"}, "slip"),
        ({"pockets": 0.0}, "pockets"),
    ],
)
def test_knob_validation(knobs: dict, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        GraphNavConfig.from_knobs("graph-nav", knobs)


def test_from_edges_rejects_bad_graphs() -> None:
    with pytest.raises(HarnessError):
        GraphNav.from_edges(GraphNavConfig(n_nodes=4, n_labels=2), [[1, 2], [3, 0], [0, 4], [0, 1]])


@pytest.mark.parametrize("knobs", [{}, {"n_nodes": 8, "horizon": 6, "n_train": 40, "n_dev": 4, "n_test": 12}])
def test_words_are_in_vocabulary_and_never_reserved(knobs: dict) -> None:
    task = make_task("graph-nav", knobs)
    vocabulary = set(task.vocabulary())
    assert not vocabulary & set(RESERVED)
    rng = np.random.default_rng(4)
    splits = task.splits(0)
    episodes = [expert_episode(task, inst, rng) for inst in splits.test[:5]]
    episodes += [explore(task, rng, policy) for policy in EXPLORER_POLICIES]
    garbage = ["go pink", "hop", ""]
    bad = play(task, splits.dev[0], lambda s, r: garbage[int(r.integers(3))], rng)
    assert "no such edge" in bad.observations and INVALID_ACTION in bad.observations
    for episode in [*episodes, bad]:
        texts = [episode.prompt, *episode.observations] + ([] if episode is bad else episode.actions)
        texts += [f(s) for s in episode.states for f in (task.describe, task.thought, task.prompt)]
        for text in texts:
            assert set(text.split()) <= vocabulary, text
