"""countdown: hand-checked oracle cases, an independent brute force, splits and held-out coverage."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from harness.data import coverage, expert_episodes, world_episodes
from harness.errors import HarnessError
from harness.registry import make_task
from harness.traces import RESERVED
from tasks.base import INVALID_ACTION, expert_episode
from tasks.countdown import ILLEGAL, CountdownConfig, Instance


@pytest.fixture(scope="module")
def task():
    return make_task("countdown", {})


def start(task, numbers, target):
    return task.reset(Instance("hand", tuple(sorted(numbers)), target))


def test_hand_case_2_3_7_to_20(task) -> None:
    s = start(task, (2, 3, 7), 20)
    # (7 + 3) * 2 = 20 is the only way: every other first move leaves a pair that cannot make 20
    # with max_value 30 (e.g. 7 * 3 = 21 leaves 2, 21: 23, 19, 42 > 30, 21 / 2 inexact).
    assert task.q_star(s, ["7 + 3"]) == 1.0
    assert task.q_star(s, ["7 + 3", "10 * 2"]) == 1.0
    for bad in ("7 * 3", "7 - 2", "3 - 2", "7 * 2", "3 + 2", "7 + 2", "3 * 2"):
        assert task.q_star(s, [bad]) == 0.0, bad
    assert task.q_star(s, []) == 1.0
    assert task.expert(s) == "7 + 3"
    rng = np.random.default_rng(0)
    step = task.step(s, "7 + 3", rng)
    assert step.observation == "left 2 10" and not step.done
    final = task.step(step.state, "10 * 2", rng)
    assert final.done and final.reward == 1.0 and final.observation == "left 20"


def test_unsolvable_pair() -> None:
    small = make_task("countdown", {"n_numbers": 2, "min_target": 2, "max_target": 20})
    s = small.reset(Instance("hand", (1, 1), 5))
    # 1 + 1 = 2, 1 * 1 = 1, 1 / 1 = 1, 1 - 1 = 0 (illegal): 5 is out of reach.
    assert small.q_star(s, []) == 0.0
    assert small.legal_actions(s) == ["1 + 1", "1 * 1", "1 / 1"]


def test_illegal_and_malformed_actions_burn_a_turn(task) -> None:
    s = start(task, (2, 3, 7), 20)
    for action, observation in [
        ("7 / 2", ILLEGAL),
        ("2 - 7", ILLEGAL),
        ("9 + 1", ILLEGAL),
        ("7 * 7", ILLEGAL),
        ("", INVALID_ACTION),
        ("3 +", INVALID_ACTION),
        ("a + b", INVALID_ACTION),
        ("3 % 4", INVALID_ACTION),
        ("plan x act y", INVALID_ACTION),
        ("99999999999999999999 + 1", INVALID_ACTION),
    ]:
        rng = np.random.default_rng(5)
        result = task.step(s, action, rng)
        assert result.observation == observation, action
        assert result.state.t == 1 and result.state.numbers == s.numbers
        # exactly one draw per step: the generator is where a fresh one is after one draw
        check = np.random.default_rng(5)
        check.random()
        assert rng.random() == check.random()


def brute_force(numbers, target, max_value) -> bool:
    """Independent check: any order of pairwise operations over exact fractions reaches target."""

    def rec(nums):
        for i, j in itertools.permutations(range(len(nums)), 2):
            a, b = nums[i], nums[j]
            rest = [nums[k] for k in range(len(nums)) if k not in (i, j)]
            for value in (a + b, a - b, a * b, a / b if b else None):
                if value is None or value != int(value) or not 1 <= value <= max_value:
                    continue
                if value == target or (rest and rec([*rest, value])):
                    return True
        return False

    return rec([Fraction(n) for n in numbers])


def test_solvability_matches_brute_force() -> None:
    task = make_task("countdown", {"extra_turns": 0})
    rng = np.random.default_rng(3)
    for _ in range(200):
        numbers = tuple(sorted(int(x) for x in rng.integers(1, 8, size=3)))
        target = int(rng.integers(2, 21))
        if target in numbers:
            continue
        assert task.solvable(numbers, target, 2) == brute_force(numbers, target, 30), (numbers, target)


def test_expert_solves_every_test_instance(task) -> None:
    test = task.splits(0).test
    assert len(test) == 100
    assert all(expert_episode(task, inst, np.random.default_rng(i)).success for i, inst in enumerate(test))


def test_splits_deterministic_disjoint_seeded(task) -> None:
    a, b, other = task.splits(0), make_task("countdown", {}).splits(0), task.splits(1)
    assert [i.id for i in a.test] == [i.id for i in b.test]
    key = lambda inst: (inst.numbers, inst.target)  # noqa: E731
    train, dev, test = ({key(i) for i in part} for part in (a.train, a.dev, a.test))
    assert not (train & dev or train & test or dev & test)
    assert [key(i) for i in other.test] != [key(i) for i in a.test]


def test_held_out_coverage(task) -> None:
    splits = task.splits(0)
    cov = coverage(task, splits, expert_episodes(task, splits.train, 0), world_episodes(task, 2000, 0))
    print(cov)
    assert cov["test_needs_unseen"] >= task.config.heldout_share - 0.1
    assert cov["unseen_in_world"] >= 0.95


def test_knobs_are_validated() -> None:
    for knobs, message in [
        ({"n_numbers": 1}, "outside"),
        ({"colour": 1}, "unknown knob"),
        ({"min_target": 30, "max_target": 10}, "exceeds max_target"),
        ({"max_target": 50}, "exceeds max_value"),
    ]:
        with pytest.raises(HarnessError, match=message):
            CountdownConfig.from_knobs("countdown", knobs)


def test_vocabulary_covers_every_word(task) -> None:
    vocab = set(task.vocabulary())
    rng = np.random.default_rng(0)
    for inst in task.splits(0).train[:30]:
        episode = expert_episode(task, inst, rng)
        words = episode.prompt.split()
        for state, action, obs in zip(episode.states, episode.actions, episode.observations):
            words += task.describe(state).split() + task.thought(state).split() + action.split() + obs.split()
            assert not set(action.split() + obs.split()) & set(RESERVED)
        assert set(words) <= vocab
