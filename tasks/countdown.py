"""countdown (math): reach a target from a multiset of numbers with + - * and exact /.

An action "a op b" replaces a and b by the result, which must be an integer in 1..max_value
(so subtraction is positive and division exact). The episode succeeds as soon as a result
equals the target, and fails when one number is left or the turns run out. Q* is the
solvability of what remains, by exhaustive search with a cache; the task is deterministic, so
Q* is 0 or 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from harness.registry import register_task
from tasks.base import INVALID_ACTION, Splits, Step, TaskConfig, knob

ILLEGAL = "illegal move"
OPS = ("+", "-", "*", "/")
_ACTION = re.compile(r"^(\d{1,6}) ([+\-*/]) (\d{1,6})$")


@dataclass(frozen=True)
class CountdownConfig(TaskConfig):
    """Knobs of countdown."""

    n_numbers: int = knob(3, "start numbers per instance", 2, 6)
    max_number: int = knob(7, "start numbers are drawn from 1..max_number", 1, 100)
    max_value: int = knob(30, "every result must be an integer in 1..max_value", 2, 10_000)
    min_target: int = knob(2, "smallest target", 1, 10_000)
    max_target: int = knob(20, "largest target", 1, 10_000)
    extra_turns: int = knob(1, "turns beyond n_numbers - 1 (room for one illegal move)", 0, 10)

    def problem(self) -> str | None:
        if self.min_target > self.max_target:
            return f"min_target {self.min_target} exceeds max_target {self.max_target}"
        if self.max_target > self.max_value:
            return f"max_target {self.max_target} exceeds max_value {self.max_value}"
        if self.max_number > self.max_value:
            return f"max_number {self.max_number} exceeds max_value {self.max_value}"
        return None


@dataclass(frozen=True)
class Instance:
    """Numbers (sorted) and a target."""

    id: str
    numbers: tuple[int, ...]
    target: int


@dataclass(frozen=True)
class State:
    """The numbers left, the target and the turns used."""

    numbers: tuple[int, ...]
    target: int
    t: int
    horizon: int
    done: bool = False
    success: bool = False


def _words(numbers: Sequence[int]) -> str:
    return " ".join(map(str, numbers))


def _value(action: str) -> int:
    """Returns the result of a well-formed 'a op b' (0 for an inexact division)."""
    a, op, b = action.split()
    x, y = int(a), int(b)
    return {"+": x + y, "-": x - y, "*": x * y}.get(op, x // y if y and x % y == 0 else 0)


@register_task("countdown")
class Countdown:
    """The countdown numbers game as a Task."""

    name = "countdown"
    family = "math"
    Config = CountdownConfig

    def __init__(self, config: CountdownConfig) -> None:
        self.config = config
        self.horizon = config.n_numbers - 1 + config.extra_turns
        self._solvable = lru_cache(maxsize=None)(self._search)
        self.universe = self._enumerate()

    # -- dynamics -------------------------------------------------------------------------------

    def apply(self, numbers: tuple[int, ...], action: str) -> tuple[int, ...] | None | str:
        """Returns the numbers after a legal action, ILLEGAL for an illegal one, None if malformed."""
        match = _ACTION.match(action)
        if not match:
            return None
        a, op, b = int(match[1]), match[2], int(match[3])
        rest = list(numbers)
        for x in (a, b):
            if x not in rest:
                return ILLEGAL
            rest.remove(x)
        result = _value(f"{a} {op} {b}")
        if not 1 <= result <= self.config.max_value:
            return ILLEGAL
        return tuple(sorted([*rest, result]))

    def legal_actions(self, state: State) -> list[str]:
        """Returns every legal 'a op b' (a >= b), in a fixed order."""
        found: list[str] = []
        nums = sorted(state.numbers, reverse=True)
        for i, a in enumerate(nums):
            for b in nums[i + 1 :]:
                for op in OPS:
                    action = f"{a} {op} {b}"
                    if action not in found and isinstance(self.apply(state.numbers, action), tuple):
                        found.append(action)
        return found

    def _search(self, numbers: tuple[int, ...], target: int, turns: int) -> bool:
        if turns <= 0 or len(numbers) < 2:
            return False
        probe = State(numbers, target, 0, turns)
        for action in self.legal_actions(probe):
            after = self.apply(numbers, action)
            assert isinstance(after, tuple)
            if _value(action) == target or self._solvable(after, target, turns - 1):
                return True
        return False

    def solvable(self, numbers: tuple[int, ...], target: int, turns: int) -> bool:
        """Returns whether some legal operations reach `target` within `turns` (cached search)."""
        return self._solvable(tuple(sorted(numbers)), target, turns)

    def reset(self, instance: Instance) -> State:
        """Returns the start state of `instance`."""
        return State(instance.numbers, instance.target, 0, self.horizon)

    def step(self, state: State, action: str, rng: np.random.Generator) -> Step:
        """Returns the next state; malformed and illegal actions burn a turn and say so."""
        rng.random()  # one draw per step, as the protocol asks, though countdown is deterministic
        if state.done:
            return Step(state, f"left {_words(state.numbers)}", True, float(state.success))
        after = self.apply(state.numbers, " ".join(action.split()))
        t = state.t + 1
        if not isinstance(after, tuple):
            observation = INVALID_ACTION if after is None else ILLEGAL
            nxt = replace(state, t=t, done=t >= state.horizon)
            return Step(nxt, observation, nxt.done, 0.0)
        success = _value(" ".join(action.split())) == state.target
        done = success or len(after) == 1 or t >= state.horizon
        nxt = State(after, state.target, t, state.horizon, done, success)
        return Step(nxt, f"left {_words(after)}", done, 1.0 if success else 0.0)

    # -- oracle ---------------------------------------------------------------------------------

    def expert(self, state: State) -> str:
        """Returns the first legal action that reaches the target or keeps it reachable."""
        legal = self.legal_actions(state)
        turns_left = state.horizon - state.t
        for action in legal:
            result = self.step(state, action, np.random.default_rng(0))
            if result.state.success or self.solvable(result.state.numbers, state.target, turns_left - 1):
                return action
        return legal[0] if legal else f"{state.numbers[0]} + {state.numbers[0]}"

    def q_star(self, state: State, plan: Sequence[str]) -> float:
        """Returns 1.0 if the plan (then the expert) reaches the target, else 0.0 (exact)."""
        rng = np.random.default_rng(0)
        for action in plan:
            if state.done:
                break
            state = self.step(state, action, rng).state
        if state.done:
            return 1.0 if state.success else 0.0
        return 1.0 if self.solvable(state.numbers, state.target, state.horizon - state.t) else 0.0

    def items(self, state: State, action: str, nxt: State) -> frozenset:
        """Returns the intermediate number multiset a legal move shows."""
        return frozenset({nxt.numbers}) if nxt.numbers != state.numbers else frozenset()

    def required(self, instance: Instance) -> frozenset:
        """Returns the intermediate states along the expert's solution of `instance`."""
        state, rng, found = self.reset(instance), np.random.default_rng(0), set()
        while not state.done:
            nxt = self.step(state, self.expert(state), rng).state
            found |= self.items(state, "", nxt)
            state = nxt
        return frozenset(found)

    # -- text -----------------------------------------------------------------------------------

    def prompt(self, state: State) -> str:
        return f"target {state.target} numbers {_words(state.numbers)}"

    def describe(self, state: State) -> str:
        return f"target {state.target} left {_words(state.numbers)} turns {state.horizon - state.t}"

    def thought(self, state: State) -> str:
        return f"need {state.target} from {_words(state.numbers)}"

    def vocabulary(self) -> list[str]:
        words = [str(n) for n in range(self.config.max_value + 1)] + list(OPS)
        return words + ["target", "numbers", "left", "turns", "need", "from", "illegal", "move", "invalid", "action"]

    # -- instances ------------------------------------------------------------------------------

    def _enumerate(self) -> tuple[Instance, ...]:
        """Returns every solvable (numbers, target) pair of the knobs, in a fixed order."""
        c = self.config
        found = []

        def multisets(k: int, low: int) -> list[tuple[int, ...]]:
            if k == 0:
                return [()]
            return [(x, *rest) for x in range(low, c.max_number + 1) for rest in multisets(k - 1, x)]

        for numbers in multisets(c.n_numbers, 1):
            for target in range(c.min_target, c.max_target + 1):
                if target not in numbers and self.solvable(numbers, target, self.horizon):
                    found.append(Instance(f"countdown-{_words(numbers)}-{target}", numbers, target))
        return tuple(found)

    def sample_instance(self, rng: np.random.Generator) -> Instance:
        """Returns a uniformly drawn solvable instance (exploration covers the whole world)."""
        return self.universe[int(rng.integers(len(self.universe)))]

    def splits(self, seed: int) -> Splits:
        """Returns disjoint train/dev/test; about heldout_share of test needs states train never shows."""
        c = self.config
        order = np.random.default_rng([seed, 17]).permutation(len(self.universe))
        pool = [self.universe[i] for i in order]
        train = pool[: c.n_train]
        seen = frozenset().union(*(self.required(i) for i in train))
        rest = pool[c.n_train :]
        novel = [i for i in rest if not self.required(i) <= seen]
        familiar = [i for i in rest if self.required(i) <= seen]

        def take(n_total: int) -> list[Instance]:
            n_novel = min(len(novel), round(c.heldout_share * n_total))
            chosen = [novel.pop(0) for _ in range(n_novel)]
            chosen += [familiar.pop(0) for _ in range(min(len(familiar), n_total - n_novel))]
            chosen += [novel.pop(0) for _ in range(min(len(novel), n_total - len(chosen)))]
            return chosen

        test, dev = take(c.n_test), take(c.n_dev)

        def named(items: list[Instance], split: str) -> tuple[Instance, ...]:
            return tuple(replace(inst, id=f"countdown-s{seed}-{split}-{i}") for i, inst in enumerate(items))

        return Splits(named(train, "train"), named(dev, "dev"), named(test, "test"))
