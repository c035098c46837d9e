"""graph-nav: reach a goal node of a hidden labelled digraph whose moves slip; Q* by dynamic programming.

Every node has one outgoing edge per label. `go <label>` follows that edge, except that with
probability `slip` it follows one of the other labels' edges instead (uniformly). The episode ends
at the goal (success) or when the horizon's turns are used up (failure). Q*(state, plan) is exact:
an expectation over slip outcomes for the plan, then the optimal values V(node, steps left).

Held-out coverage (docs/design.md#data-recipes): the world has pockets, detour nodes entered by a single
edge that no optimal route to another node uses. Each split seed holds out some pockets: train
instances never aim at one, so that single edge is on no train expert's path even after slips
(which make an expert wander; a random goal node would not stay unseen), while about
`heldout_share` of test instances aim at a held-out pocket. Exploration starts anywhere, so it
shows those edges. This holds while slip <= (n_labels - 1) / n_labels; past that the expert
aims away from where it wants to go, and the nominal-path filter in `splits` is what remains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.core.errors import HarnessError
from harness.core.registry import register_task
from harness.core.streams import stream
from tasks.base import INVALID_ACTION, Splits, Step, TaskConfig, knob
from tasks.labelled_graphs import find_pockets, random_graph, shortest_distances

LABELS = ("red", "blue", "green", "gold", "gray", "pink", "teal", "tan")
NO_EDGE = "no such edge"
TIE = 1e-12
"""Success probabilities this close count as equal, so the expert falls back to the shorter route."""


@dataclass(frozen=True)
class GraphNavConfig(TaskConfig):
    """Knobs of graph-nav: graph size, labels, slip, horizon and instance difficulty."""

    n_nodes: int = knob(24, "nodes of the hidden graph", 4, 200)
    n_labels: int = knob(3, "edge labels, hence outgoing edges per node and legal actions", 2, 8)
    slip: float = knob(0.1, "probability that a move follows another label's edge instead", 0.0, 0.9)
    horizon: int = knob(8, "turns before the episode fails", 1, 64)
    min_distance: int = knob(2, "fewest no-slip moves from start to goal of a split instance", 1, 64)
    pockets: float = knob(
        0.25, "share of nodes that are dead-end detours; held-out goals are drawn from them", 0.0, 0.5
    )
    world_seed: int = knob(0, "seed of the hidden graph (splits use the run seed)", 0, 2**31)

    @property
    def n_pockets(self) -> int:
        """Returns how many nodes are pockets (at most half, so the core keeps two nodes)."""
        return min(round(self.pockets * self.n_nodes), self.n_nodes // 2)

    def problem(self) -> str | None:
        """Returns why these knobs cannot give instances, or None."""
        if self.min_distance > self.horizon:
            return f"min_distance {self.min_distance} exceeds horizon {self.horizon}"
        if self.min_distance >= self.n_nodes:
            return f"min_distance {self.min_distance} needs more than n_nodes {self.n_nodes} nodes"
        if self.heldout_share > 0 and self.n_pockets == 0:
            return f"heldout_share {self.heldout_share} needs pockets to hold out (pockets {self.pockets})"
        return None


@dataclass(frozen=True)
class Instance:
    """A start and goal node; `heldout` marks a test or dev instance aiming at a held-out goal."""

    id: str
    start: int
    goal: int
    heldout: bool = False


@dataclass(frozen=True, slots=True)
class State:
    """Where the agent is, what it aims at and how many turns it has used."""

    node: int
    goal: int
    t: int = 0
    done: bool = False
    success: bool = False


@register_task("graph-nav")
class GraphNav:
    """A hidden labelled digraph with slipping moves; the oracle solves it exactly."""

    name: ClassVar[str] = "graph-nav"
    family: ClassVar[str] = "search"
    version: ClassVar[int] = 2
    Config: ClassVar[type[TaskConfig]] = GraphNavConfig

    def __init__(self, config: GraphNavConfig) -> None:
        rng = stream(config.world_seed, "graph-nav-world")
        succ = random_graph(config.n_nodes, config.n_labels, config.n_pockets, rng)
        self._build(config, succ)

    @classmethod
    def from_edges(cls, config: GraphNavConfig, edges: Sequence[Sequence[int]]) -> GraphNav:
        """Returns the task over an explicit graph: edges[n][l] is where label l leads from node n."""
        succ = np.asarray(edges, dtype=np.int64)
        if succ.shape != (config.n_nodes, config.n_labels) or succ.min() < 0 or succ.max() >= config.n_nodes:
            raise HarnessError(f"graph-nav edges must be {config.n_nodes} rows of {config.n_labels} node indices")
        task = cls.__new__(cls)
        task._build(config, succ)
        return task

    def _build(self, config: GraphNavConfig, succ: np.ndarray) -> None:
        self.config = config
        self.succ = succ
        self._succ_rows = succ.tolist()  # plain ints: step() and q_star() index them per move
        self.dist = shortest_distances(succ)
        self.pockets = find_pockets(succ)
        self.labels = LABELS[: config.n_labels]
        self.node_names = tuple(f"n{i}" for i in range(config.n_nodes))
        self._actions = tuple(f"go {label}" for label in self.labels)
        self._label_index = {label: i for i, label in enumerate(self.labels)}
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._splits: dict[int, Splits] = {}
        self._heldout: dict[int, frozenset[int]] = {}

    def reset(self, instance: Instance) -> State:
        """Returns the start state of `instance`."""
        reached = instance.start == instance.goal
        return State(instance.start, instance.goal, 0, reached, reached)

    def parse(self, action: str) -> int | str:
        """Returns the label index `action` moves along, or the observation saying why it does not move."""
        words = action.split()
        if len(words) != 2 or words[0] != "go":
            return INVALID_ACTION
        return self._label_index.get(words[1], NO_EDGE)

    def step(self, state: State, action: str, rng: np.random.Generator) -> Step:
        """Returns the next state; draws exactly one uniform number whatever the action."""
        u = rng.random()
        if state.done:
            return Step(state, f"at {self.node_names[state.node]}", True, float(state.success))
        label = self.parse(action)
        node = state.node
        if isinstance(label, int):
            node = self._succ_rows[node][self._slipped(label, u)]
            observation = f"at {self.node_names[node]}"
        else:
            observation = label
        t = state.t + 1
        success = node == state.goal
        done = success or t >= self.config.horizon
        return Step(State(node, state.goal, t, done, success), observation, done, float(success))

    def outcomes(self, state: State, action: str) -> list[tuple[float, Step]]:
        """Returns each step `action` can lead to with its probability (a slip follows another label's edge)."""
        label = self.parse(action)
        if state.done or not isinstance(label, int):
            return [(1.0, self.step(state, action, stream(0, "deterministic-step")))]
        slip, n = self.config.slip, self.config.n_labels
        found: dict[int, float] = {}
        for other, nxt in enumerate(self._succ_rows[state.node]):
            prob = 1.0 - slip if other == label else slip / (n - 1)
            if prob > 0.0:
                found[nxt] = found.get(nxt, 0.0) + prob
        t = state.t + 1
        steps = []
        for node, prob in found.items():
            success = node == state.goal
            nxt_state = State(node, state.goal, t, success or t >= self.config.horizon, success)
            steps.append((prob, Step(nxt_state, f"at {self.node_names[node]}", nxt_state.done, float(success))))
        return steps

    def _slipped(self, label: int, u: float) -> int:
        """Returns the label actually followed when `label` is intended and the draw is `u`."""
        slip, n = self.config.slip, self.config.n_labels
        if u >= slip:
            return label
        other = min(int(u / slip * (n - 1)), n - 2)
        return other + (other >= label)

    def prompt(self, state: State) -> str:
        """Returns the goal and start, e.g. 'goal n7 at n3'."""
        return f"goal {self.node_names[state.goal]} at {self.node_names[state.node]}"

    def describe(self, state: State) -> str:
        """Returns the Markov state, e.g. 'goal n7 at n3 left 5'."""
        return f"{self.prompt(state)} left {max(self.config.horizon - state.t, 0)}"

    def thought(self, state: State) -> str:
        """Returns the expert's thought, e.g. 'need n7 from n3'."""
        return f"need {self.node_names[state.goal]} from {self.node_names[state.node]}"

    def legal_actions(self, state: State) -> list[str]:
        """Returns 'go <label>' for every label, in label order."""
        return list(self._actions)

    def vocabulary(self) -> list[str]:
        """Returns every word of prompts, actions, observations, descriptions and thoughts."""
        words = ["go", "at", "goal", "need", "from", "left", *NO_EDGE.split(), *INVALID_ACTION.split()]
        words += list(self.labels) + list(self.node_names)
        return words + [str(k) for k in range(self.config.horizon + 1)]

    def _solve(self, goal: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns V[k, n] (best success probability with k moves left) and the expert's label per (k, n)."""
        if goal in self._tables:
            return self._tables[goal]
        slip, n_labels, horizon = self.config.slip, self.config.n_labels, self.config.horizon
        other = slip / (n_labels - 1)
        # Among (near) equal success probabilities the expert takes the edge nearest the goal, so
        # that with slip 0 it walks a shortest path rather than whichever label comes first.
        nearness = self.dist[self.succ, goal].astype(float)
        values = np.zeros((horizon + 1, len(self.succ)))
        values[:, goal] = 1.0
        policy = np.zeros((horizon + 1, len(self.succ)), dtype=np.int64)
        policy[0] = nearness.argmin(axis=1)
        for k in range(1, horizon + 1):
            ahead = values[k - 1][self.succ]
            q = (1.0 - slip - other) * ahead + other * ahead.sum(axis=1, keepdims=True)
            best = q.max(axis=1, keepdims=True)
            policy[k] = np.where(q >= best - TIE, nearness, np.inf).argmin(axis=1)
            values[k] = best[:, 0]
            values[k, goal] = 1.0
        self._tables[goal] = (values, policy)
        return values, policy

    def value(self, state: State) -> float:
        """Returns V*(state): the success probability of the expert from `state`."""
        if state.done:
            return float(state.success)
        values, _ = self._solve(state.goal)
        return float(values[self.config.horizon - state.t, state.node])

    def expert(self, state: State) -> str:
        """Returns the optimal action; ties go to the edge nearest the goal, then to label order."""
        _, policy = self._solve(state.goal)
        left = min(max(self.config.horizon - state.t, 0), self.config.horizon)
        return self._actions[policy[left, state.node]]

    def q_star(self, state: State, plan: Sequence[str]) -> float:
        """Returns the exact probability that `plan` (open loop), then the expert, reaches the goal in time."""
        if state.done:
            return float(state.success)
        values, _ = self._solve(state.goal)
        slip, n_labels, horizon = self.config.slip, self.config.n_labels, self.config.horizon
        mass, reached, t = {state.node: 1.0}, 0.0, state.t
        for action in plan:
            if t >= horizon or not mass:
                break
            label = self.parse(action)
            if isinstance(label, int):
                moved: dict[int, float] = {}
                for node, m in mass.items():
                    for other, nxt in enumerate(self._succ_rows[node]):
                        p = 1.0 - slip if other == label else slip / (n_labels - 1)
                        if p > 0.0:
                            moved[nxt] = moved.get(nxt, 0.0) + m * p
                mass = moved
            t += 1
            reached += mass.pop(state.goal, 0.0)
        left = horizon - t
        return reached + sum(m * values[left, node] for node, m in mass.items())

    def nominal_path(self, start: int, goal: int) -> list[tuple[int, int, int]]:
        """Returns the (node, label, next) moves of the expert from `start` when nothing slips."""
        _, policy = self._solve(goal)
        path, node = [], start
        for t in range(self.config.horizon):
            if node == goal:
                break
            label = int(policy[self.config.horizon - t, node])
            nxt = self._succ_rows[node][label]
            path.append((node, label, nxt))
            node = nxt
        return path

    def items(self, state: State, action: str, nxt: State) -> frozenset:
        """Returns {(node, label, next node)} that a legal move shows, else nothing."""
        label = self.parse(action)
        if state.done or not isinstance(label, int):
            return frozenset()
        return frozenset({(self.node_names[state.node], self.labels[label], self.node_names[nxt.node])})

    def required(self, instance: Instance) -> frozenset:
        """Returns the (node, label, next node) moves of the expert's no-slip path for `instance`."""
        names = self.node_names
        return frozenset(
            (names[a], self.labels[lab], names[b]) for a, lab, b in self.nominal_path(instance.start, instance.goal)
        )

    def sample_instance(self, rng: np.random.Generator) -> Instance:
        """Returns a uniform (start, goal) pair of distinct nodes from the whole world."""
        n = self.config.n_nodes
        start = int(rng.integers(n))
        goal = (start + 1 + int(rng.integers(n - 1))) % n
        return Instance(f"graph-nav-explore-{start}-{goal}", start, goal)

    def heldout_goals(self, seed: int) -> frozenset[int]:
        """Returns the pockets split `seed` holds out of train (empty when heldout_share is 0)."""
        self.splits(seed)
        return self._heldout[seed]

    def splits(self, seed: int) -> Splits:
        """Returns train/dev/test instances; held-out test and dev instances aim at held-out pockets."""
        if seed in self._splits:
            return self._splits[seed]
        c = self.config
        rng = stream(c.world_seed, "graph-nav-split", seed)
        ho_test, ho_dev = round(c.n_test * c.heldout_share), round(c.n_dev * c.heldout_share)
        fam_test, fam_dev = c.n_test - ho_test, c.n_dev - ho_dev
        n = c.n_nodes
        pairs = [
            (s, g) for s in range(n) for g in range(n) if s != g and c.min_distance <= self.dist[s, g] <= c.horizon
        ]
        # Half the pockets are held out, more if they have too few instances; the others may be train goals.
        pockets = [int(p) for p in rng.permutation(self.pockets)] if ho_test + ho_dev else []
        k = math.ceil(len(pockets) / 2)
        while k < len(pockets) and sum(g in pockets[:k] for _, g in pairs) < ho_test + ho_dev:
            k += 1
        held = frozenset(pockets[:k])
        heldout = [pairs[i] for i in rng.permutation(len(pairs)) if pairs[i][1] in held]
        familiar = [(s, g) for s, g in pairs if not held & {s, g, *(b for _, _, b in self.nominal_path(s, g))}]
        familiar = [familiar[i] for i in rng.permutation(len(familiar))]
        # Train keeps at least half the familiar pairs (repeating them if it needs more); the rest
        # are kept apart for familiar dev and test instances.
        n_train_pairs = min(c.n_train, max(len(familiar) - fam_test - fam_dev, math.ceil(len(familiar) / 2)))
        train, spare = familiar[:n_train_pairs], familiar[n_train_pairs:]
        if not train or (fam_test + fam_dev and not spare) or (ho_test + ho_dev and not heldout):
            raise HarnessError(
                f"graph-nav world {c.world_seed} has too few pairs {c.min_distance}-{c.horizon} moves apart "
                f"(or pockets, {len(self.pockets)}) for train, dev and test with heldout_share {c.heldout_share}"
            )
        seen = {move for pair in train for move in self.nominal_path(*pair)}
        spare.sort(key=lambda pair: not seen.issuperset(self.nominal_path(*pair)))  # familiar ones first

        def instances(part: str, fam: list, ho: list) -> tuple[Instance, ...]:
            tagged = [(pair, False) for pair in fam] + [(pair, True) for pair in ho]
            tagged = [tagged[i] for i in rng.permutation(len(tagged))]
            return tuple(Instance(f"graph-nav-s{seed}-{part}-{i}", s, g, h) for i, ((s, g), h) in enumerate(tagged))

        # The familiar eval pairs are dealt at random between test and dev, so that dev is drawn as
        # test is (the sort above puts the fully seen ones first).
        chosen = _cycle(spare, fam_test + fam_dev)
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        self._heldout[seed] = held
        self._splits[seed] = Splits(
            train=instances("train", _cycle(train, c.n_train), []),
            dev=instances("dev", chosen[fam_test:], _cycle(heldout, ho_dev, ho_test)),
            test=instances("test", chosen[:fam_test], _cycle(heldout, ho_test)),
        )
        return self._splits[seed]


def _cycle(pool: list, n: int, offset: int = 0) -> list:
    """Returns n items of `pool` from `offset` on, wrapping around (repeating only a small pool)."""
    return [pool[(offset + i) % len(pool)] for i in range(n)] if pool else []
