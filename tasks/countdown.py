"""countdown (math): reach a target from a multiset of numbers with + - * and exact / (knob `ops`).

An action "a op b" replaces a and b by the result, which must be an integer in 1..max_value
(so subtraction is positive and division exact); an op that `ops` leaves out is an illegal
move. The episode succeeds as soon as a result equals the target, and fails when one number is
left or the turns run out. Q* is the solvability of what remains, by exhaustive search with a
cache; the task is deterministic, so Q* is 0 or 1. The parts of the world a transition shows
are the intermediate number multisets. The moves and the solver are `tasks.countdown_rules`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.core.errors import HarnessError
from harness.core.registry import register_task
from harness.core.streams import stream
from tasks.base import (
    EXPLORER_POLICIES,
    Splits,
    Step,
    TaskConfig,
    episode_items,
    expert_episode,
    explore,
    knob,
)
from tasks.countdown_rules import OPS, NumbersGame, operate

# Salts keep the random streams of splits apart while all derive from the split seed.
# splits() plays its own exploration episodes (a stream apart from D_world's) to learn which states
# explorers visit; a held-out state seen PROBE_VISITS times in PROBE_EPISODES is one D_world of a
# similar size almost surely shows (P(missed) ~ exp(-PROBE_VISITS * n_world / PROBE_EPISODES)).
PROBE_EPISODES, PROBE_VISITS = 1000, 3


@dataclass(frozen=True)
class CountdownConfig(TaskConfig):
    """Knobs of countdown."""

    n_numbers: int = knob(3, "start numbers per instance", 2, 6)
    max_number: int = knob(9, "start numbers are drawn from 1..max_number", 1, 100)
    max_value: int = knob(60, "every result must be an integer in 1..max_value, else the move is illegal", 2, 10_000)
    min_target: int = knob(2, "smallest target", 1, 10_000)
    max_target: int = knob(30, "largest target", 1, 10_000)
    extra_turns: int = knob(1, "turns beyond n_numbers - 1 (room for illegal moves)", 0, 10)
    ops: str = knob("+-*/", "the operations allowed, written together (each of + - * / at most once)")

    def problem(self) -> str | None:
        """Returns why the knobs are inconsistent (an empty target range, values out of range), or None."""
        if self.min_target > self.max_target:
            return f"min_target {self.min_target} exceeds max_target {self.max_target}"
        if self.max_target > self.max_value:
            return f"max_target {self.max_target} exceeds max_value {self.max_value}"
        if self.max_number > self.max_value:
            return f"max_number {self.max_number} exceeds max_value {self.max_value}"
        if not self.ops or set(self.ops) - set(OPS) or len(set(self.ops)) != len(self.ops):
            return f"ops {self.ops!r} must name one or more of + - * /, each at most once"
        return None


@dataclass(frozen=True)
class Instance:
    """Start numbers (sorted) and a target."""

    id: str
    numbers: tuple[int, ...]
    target: int

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        """Returns (numbers, target), what makes two instances the same problem."""
        return self.numbers, self.target


@dataclass(frozen=True)
class State:
    """The numbers left (sorted), the target, the turns used and how the episode ended."""

    numbers: tuple[int, ...]
    target: int
    t: int = 0
    done: bool = False
    success: bool = False


def _words(numbers: Sequence[int]) -> str:
    return " ".join(map(str, numbers))


def _instance(numbers: tuple[int, ...], target: int) -> Instance:
    """Returns the instance with an id that names its numbers and target."""
    return Instance(f"countdown-{'-'.join(map(str, numbers))}-to-{target}", numbers, target)


@register_task("countdown")
class Countdown(NumbersGame):
    """The countdown numbers game as a Task."""

    name = "countdown"
    family = "math"
    version = 4
    Config = CountdownConfig

    def __init__(self, config: CountdownConfig) -> None:
        super().__init__(config.ops, config.max_value)
        self.config = config
        self.horizon = config.n_numbers - 1 + config.extra_turns
        self._required: dict[tuple[tuple[int, ...], int], frozenset] = {}
        self._splits: dict[int, Splits] = {}

    # -- dynamics -------------------------------------------------------------------------------

    def legal_actions(self, state: State) -> list[str]:
        """Returns every legal 'a op b' with a >= b, larger numbers first, ops in the order + - * /."""
        return [action for action, _, _ in self._moves(state.numbers)]

    def reset(self, instance: Instance) -> State:
        """Returns the start state of `instance`."""
        return State(tuple(sorted(instance.numbers)), instance.target)

    def step(self, state: State, action: str, rng: np.random.Generator) -> Step:
        """Returns the next state; malformed and illegal actions burn a turn and say so."""
        rng.random()  # countdown is deterministic, but the protocol keeps every task's noise in step
        if state.done:  # the reward was paid on the turn that ended the episode
            return Step(state, f"left {_words(state.numbers)}", True, 0.0)
        t = state.t + 1
        applied = self.apply(state.numbers, action)
        if isinstance(applied, str):
            nxt = State(state.numbers, state.target, t, t >= self.horizon)
            return Step(nxt, applied, nxt.done, 0.0)
        after, value = applied
        success = value == state.target
        nxt = State(after, state.target, t, success or len(after) == 1 or t >= self.horizon, success)
        return Step(nxt, f"left {_words(after)}", nxt.done, float(success))

    # -- oracle ---------------------------------------------------------------------------------

    def outcomes(self, state: State, action: str) -> list[tuple[float, Step]]:
        """Returns the one step `action` leads to: countdown is deterministic."""
        return [(1.0, self.step(state, action, stream(0, "deterministic-step")))]

    def expert(self, state: State) -> str:
        """Returns the first legal action (in legal_actions order) of a shortest solution.

        A move that makes the target wins at once; failing that, the first move after which the
        target is reachable in the fewest further moves. (Until task version 2 the expert took the
        first move that kept the target reachable at all, so on 44% of train instances it played
        two moves where one made the target: `9 * 4`, `36 / 2` for 18 from 2 4 9.)
        """
        moves = self._moves(state.numbers)
        for more in range(self.horizon - state.t):
            for action, value, after in moves:
                if value == state.target or state.target in self.reachable(after, more):
                    return action
        if moves:
            return moves[0][0]
        return f"{state.numbers[0]} + {state.numbers[0]}"  # well-formed, though nothing is legal

    def q_star(self, state: State, plan: Sequence[str]) -> float:
        """Returns 1.0 if executing `plan`, then the expert, reaches the target, else 0.0 (exact)."""
        rng = stream(0, "deterministic-step")  # step draws one number; countdown ignores it
        for action in plan:
            if state.done:
                break
            state = self.step(state, action, rng).state
        if state.done:
            return float(state.success)
        return float(self.solvable(state.numbers, state.target, self.horizon - state.t))

    def items(self, state: State, action: str, nxt: State) -> frozenset:
        """Returns the intermediate number multiset a legal move shows (empty for any other action)."""
        legal = not state.done and len(nxt.numbers) == len(state.numbers) - 1
        return frozenset({nxt.numbers}) if legal else frozenset()

    def required(self, instance: Instance) -> frozenset:
        """Returns the intermediate number multisets along the expert's solution of `instance` (cached)."""
        key = (tuple(sorted(instance.numbers)), instance.target)
        if key not in self._required:
            self._required[key] = episode_items(self, expert_episode(self, instance, stream(0, "deterministic-step")))
        return self._required[key]

    # -- text -----------------------------------------------------------------------------------

    def prompt(self, state: State) -> str:
        """Returns the first text the agent sees: 'target 24 numbers 3 5 8'."""
        return f"target {state.target} numbers {_words(state.numbers)}"

    def describe(self, state: State) -> str:
        """Returns the Markov state: 'target 24 left 3 5 8 turns 2' (turns remaining)."""
        return f"target {state.target} left {_words(state.numbers)} turns {self.horizon - state.t}"

    def thought(self, state: State) -> str:
        """Returns the expert's thought: 'need 24 from 3 5 8'."""
        return f"need {state.target} from {_words(state.numbers)}"

    def vocabulary(self) -> list[str]:
        """Returns the number words 0..max_value (or the horizon, if larger), the ops and the fixed words.

        All four ops, whatever `ops` allows: the suite's tokenizer is the union of the task
        vocabularies, so it (and every task's initial model) does not change with this knob.
        """
        numbers = [str(n) for n in range(max(self.config.max_value, self.horizon) + 1)]
        fixed = ["target", "numbers", "left", "turns", "need", "from", "illegal", "move", "invalid", "action"]
        return numbers + list(OPS) + fixed

    # -- instances ------------------------------------------------------------------------------

    def sample_instance(self, rng: np.random.Generator) -> Instance:
        """Returns a solvable instance with numbers drawn uniformly from 1..max_number and a uniform target."""
        c = self.config
        for _ in range(10_000):
            numbers = tuple(sorted(int(x) for x in rng.integers(1, c.max_number + 1, size=c.n_numbers)))
            target = int(rng.integers(c.min_target, c.max_target + 1))
            if target not in numbers and self.solvable(numbers, target, self.horizon):
                return _instance(numbers, target)
        raise HarnessError(f"countdown knobs {c} give (almost) no solvable instance")

    def _pool(self, rng: np.random.Generator, size: int) -> list[Instance]:
        """Returns up to `size` distinct solvable instances in the order drawn (fewer if the world is small)."""
        pool: dict[tuple[tuple[int, ...], int], Instance] = {}
        for _ in range(20 * size):
            inst = self.sample_instance(rng)
            pool.setdefault(inst.key, inst)
            if len(pool) == size:
                break
        return list(pool.values())

    def _visits(self, seed: int) -> dict[tuple[tuple[int, ...], int], Counter]:
        """Returns, per start (numbers, target), how often its PROBE_EPISODES exploration episodes show each state."""
        visits: dict[tuple[tuple[int, ...], int], Counter] = {}
        for k in range(PROBE_EPISODES):
            policy = EXPLORER_POLICIES[k % len(EXPLORER_POLICIES)]
            episode = explore(self, stream(seed, "countdown-probe", k), policy)
            start = episode.states[0]
            visits.setdefault((start.numbers, start.target), Counter()).update(episode_items(self, episode))
        return visits

    def _sibling(self, inst: Instance, seen: frozenset, taken: set) -> Instance | None:
        """Returns an instance not in `taken` whose expert shows every state `inst` needs beyond `seen`, or None.

        A sibling has the same target and numbers that one move turns into the expert's first
        state of `inst`; if the expert makes that move, both solutions coincide from there on.
        """
        c, need = self.config, self.required(inst)
        first = next(s for s in need if len(s) == len(inst.numbers) - 1)
        pairs = [(a, b) for a in range(1, c.max_number + 1) for b in range(1, a + 1)]
        for i, x in enumerate(first):
            rest = first[:i] + first[i + 1 :]
            for a, b in pairs if max(rest, default=0) <= c.max_number else []:
                if x not in {operate(a, op, b) for op in self.ops}:
                    continue
                sibling = _instance(tuple(sorted((*rest, a, b))), inst.target)
                fresh = sibling.key not in taken and sibling.numbers != inst.numbers
                if fresh and inst.target not in sibling.numbers and need <= seen | self.required(sibling):
                    return sibling
        return None

    def splits(self, seed: int) -> Splits:
        """Returns disjoint train/dev/test; heldout_share of dev and test need states no train expert shows.

        A familiar instance needs only states that train expert episodes show: drawn at random and
        kept if train already covers it, else paired with a sibling that joins train. A held-out
        instance's expert solution passes through a state no train expert episode shows, preferring
        states that exploration visits often (so that D_world shows them). The rest of train is a
        random draw from the world.
        """
        if seed in self._splits:
            return self._splits[seed]
        c = self.config
        ho_test, ho_dev = round(c.heldout_share * c.n_test), round(c.heldout_share * c.n_dev)
        n_fam = c.n_test + c.n_dev - ho_test - ho_dev
        pool = self._pool(stream(seed, "countdown-pool"), 4 * (c.n_train + c.n_dev + c.n_test))
        train, familiar, taken = self._familiar(pool, n_fam)
        spare = [x for x in pool if x.key not in taken]
        n_more = c.n_train - len(train)
        train += spare[:n_more]
        novel = self._novel(seed, spare[n_more:], train, familiar)
        if len(train) < c.n_train or len(familiar) < n_fam or len(novel) < ho_test + ho_dev:
            raise HarnessError(
                f"countdown knobs give too few instances for {c.n_train} train, {n_fam} familiar and "
                f"{ho_test + ho_dev} held-out dev/test instances ({len(train)}, {len(familiar)} and {len(novel)} found)"
            )
        self._splits[seed] = self._deal(seed, train, familiar, novel[: ho_test + ho_dev], ho_test)
        return self._splits[seed]

    def _familiar(self, pool: list[Instance], n_fam: int) -> tuple[list[Instance], list[Instance], set]:
        """Returns (train so far, the familiar eval instances, the keys taken): each familiar instance's
        states are shown by train, a sibling joining train where they are not yet."""
        c = self.config
        train = pool[: max(0, c.n_train - n_fam)]
        taken = {x.key for x in train}
        seen = frozenset().union(*map(self.required, train))
        familiar: list[Instance] = []
        for inst in pool:
            if len(familiar) == n_fam or inst.key in taken:
                continue
            if not self.required(inst) <= seen:
                sibling = self._sibling(inst, seen, taken) if len(train) < c.n_train else None
                if sibling is None:
                    continue
                train.append(sibling)
                taken.add(sibling.key)
                seen |= self.required(sibling)
            familiar.append(inst)
            taken.add(inst.key)
        return train, familiar, taken

    def _novel(
        self, seed: int, spare: list[Instance], train: list[Instance], familiar: list[Instance]
    ) -> list[Instance]:
        """Returns the spare instances that need a state train does not show, those exploration shows most first."""
        seen = frozenset().union(*map(self.required, train))
        by_start = self._visits(seed)
        novel = [x for x in spare if not self.required(x) <= seen]
        # D_world never starts at a dev or test instance, so visits from an instance itself or from a
        # familiar eval instance do not count: those whose unseen states the other starts' exploration
        # visits often come first, else in pool order.
        familiar_keys = {x.key for x in familiar}
        visits = sum((c for start, c in by_start.items() if start not in familiar_keys), Counter())

        def shown(x: Instance) -> float:
            own = by_start.get(x.key, Counter())
            return float(np.mean([visits[s] - own[s] >= PROBE_VISITS for s in self.required(x) - seen]))

        novel.sort(key=lambda x: -shown(x))
        return novel

    def _deal(
        self, seed: int, train: list[Instance], familiar: list[Instance], novel: list[Instance], ho_test: int
    ) -> Splits:
        """Returns the splits, familiar and held-out instances dealt at random between test and dev, each named."""
        order = stream(seed, "countdown-order")

        def named(part: str, insts: list[Instance]) -> tuple[Instance, ...]:
            shuffled = [insts[i] for i in order.permutation(len(insts))]
            return tuple(Instance(f"countdown-s{seed}-{part}-{i}", x.numbers, x.target) for i, x in enumerate(shuffled))

        # Dealt at random, so that dev is drawn as test is: familiar instances found early in the pool
        # more often needed a sibling in train, and the held-out ones are sorted by how often
        # exploration visits their states.
        deal = stream(seed, "countdown-deal")
        familiar = [familiar[i] for i in deal.permutation(len(familiar))]
        novel = [novel[i] for i in deal.permutation(len(novel))]
        fam_test = self.config.n_test - ho_test
        return Splits(
            train=named("train", train),
            dev=named("dev", familiar[fam_test:] + novel[ho_test:]),
            test=named("test", familiar[:fam_test] + novel[:ho_test]),
        )
