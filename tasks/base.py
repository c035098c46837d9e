"""The Task protocol every world implements, its knobs, episodes, and the explorers all tasks share.

A task is a world (built deterministically from its knobs), an oracle (the next observation for
any state and action, the expert action, and Q*(state, plan)) and a way to split instances into
train/dev/test. States are immutable and hashable so that oracles can cache them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from harness.core.errors import HarnessError
from harness.core.fields import build_dataclass, doc

INVALID_ACTION = "invalid action"
"""Observation for an action that does not parse for the task (never an exception)."""

EXPLORER_POLICIES = ("random", "epsilon-greedy", "noisy-expert")
"""Exploration policies every task supports; their expert shares are task knobs."""


def knob(default: Any, help: str, lo: float | None = None, hi: float | None = None) -> Any:
    """Returns a dataclass field for a difficulty knob, with its help text and inclusive range [lo, hi].

    A knob is a profile field like any other: `doc(default, help, ge=lo, le=hi)`, checked by `build_dataclass`.
    """
    return doc(default, help, ge=lo, le=hi)


@dataclass(frozen=True)
class TaskConfig:
    """Knobs every task has: split sizes, held-out share, exploration."""

    n_train: int = knob(200, "train instances (expert episodes are played on these)", 1, 100_000)
    n_dev: int = knob(20, "dev instances (for model selection; never the test split)", 0, 100_000)
    n_test: int = knob(100, "test instances (evaluation only)", 1, 100_000)
    heldout_share: float = knob(
        0.5, "share of test instances that need parts of the world no train expert episode shows", 0.0, 1.0
    )
    epsilon: float = knob(0.5, "random-action share of the epsilon-greedy explorer", 0.0, 1.0)
    noise: float = knob(0.15, "random-action share of the noisy-expert explorer", 0.0, 1.0)

    @classmethod
    def from_knobs(cls, task: str, knobs: Any):
        """Returns the config with `knobs` (a mapping, or a config of this class as it is) applied, or raises
        HarnessError naming the bad knob (`build_dataclass`: type, range, the closest known name)."""
        if isinstance(knobs, cls):
            return knobs
        return build_dataclass(cls, {} if knobs is None else knobs, f"tasks.{task}")

    def problem(self) -> str | None:
        """Returns why this combination of knobs is inconsistent, or None; subclasses extend it."""
        return None

    def describe(self) -> list[tuple[str, Any, str]]:
        """Returns (name, value, help) for every knob."""
        return [(f.name, getattr(self, f.name), f.metadata.get("help", "")) for f in dataclasses.fields(self)]


@dataclass(frozen=True)
class Step:
    """What the world returns for one action."""

    state: Hashable
    observation: str
    done: bool
    reward: float
    """1.0 when the episode ends in success, else 0.0."""


@dataclass(frozen=True)
class Splits:
    """Instances of one seed's split; disjoint by construction."""

    train: tuple
    dev: tuple
    test: tuple


@dataclass
class Episode:
    """One played episode: the states before each action, the actions and what the world said."""

    instance_id: str
    prompt: str
    states: list[Hashable] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    success: bool = False
    policy: str = "expert"

    @property
    def final_state(self) -> Hashable:
        """Returns the state after the last action (or the start state of an empty episode)."""
        return self.states[-1]


@runtime_checkable
class Task(Protocol):
    """A world with an oracle. Implementations register with `@register_task(name)`."""

    name: ClassVar[str]
    family: ClassVar[str]  # "search" | "math"
    version: ClassVar[int]
    """Raised whenever the task's dynamics, expert or splits change, so that no cached stage trained
    on the old data is reused (it is part of every stage's data hash; knobs are hashed anyway)."""
    Config: ClassVar[type[TaskConfig]]
    config: TaskConfig

    def splits(self, seed: int) -> Splits:
        """Returns deterministic, disjoint train/dev/test instances for `seed`."""

    def sample_instance(self, rng: np.random.Generator) -> Any:
        """Returns an instance drawn from the whole world; exploration starts from those outside dev and test."""

    def reset(self, instance: Any) -> Hashable:
        """Returns the start state of `instance`."""

    def prompt(self, state: Hashable) -> str:
        """Returns the text the agent sees first (goal, question or numbers)."""

    def describe(self, state: Hashable) -> str:
        """Returns the Markov state as text, for world-model lines of D_world; its last word is the turns left.

        The contamination audit relies on that last word: it matches a start state at any turn count.
        """

    def thought(self, state: Hashable) -> str:
        """Returns the expert's ReAct thought for `state` (a short restatement of what is needed)."""

    def step(self, state: Hashable, action: str, rng: np.random.Generator) -> Step:
        """Returns the next state; a malformed or illegal action is an observation saying so.

        Draws exactly one uniform number from `rng` per call, whatever the action, so that the
        same episode seed gives the same noise at the same turn for every method.
        """

    def outcomes(self, state: Hashable, action: str) -> list[tuple[float, Step]]:
        """Returns every (probability, step) that `action` can lead to from `state`; probabilities sum to 1."""

    def legal_actions(self, state: Hashable) -> list[str]:
        """Returns the actions that are legal in `state`, in a fixed order."""

    def expert(self, state: Hashable) -> str:
        """Returns the expert's action (optimal where the task allows)."""

    def q_star(self, state: Hashable, plan: Sequence[str]) -> float:
        """Returns the probability that executing `plan`, then the expert, succeeds."""

    def items(self, state: Hashable, action: str, nxt: Hashable) -> frozenset:
        """Returns the parts of the world one transition shows (edges, documents or states)."""

    def required(self, instance: Any) -> frozenset:
        """Returns the parts of the world the expert's nominal solution of `instance` needs."""

    def vocabulary(self) -> list[str]:
        """Returns every word that prompts, actions and observations of this task can contain."""


def is_done(task: Task, state: Hashable) -> bool:
    """Returns whether `state` is terminal (tasks expose it as `state.done`)."""
    return bool(state.done)


def play(
    task: Task,
    instance: Any,
    choose: Callable[[Hashable, np.random.Generator], str],
    rng: np.random.Generator,
    policy: str = "expert",
) -> Episode:
    """Returns the episode `choose` plays on `instance` until the world says done."""
    state = task.reset(instance)
    episode = Episode(instance_id=instance.id, prompt=task.prompt(state), states=[state], policy=policy)
    while not is_done(task, state):
        action = choose(state, rng)
        result = task.step(state, action, rng)
        episode.actions.append(action)
        episode.observations.append(result.observation)
        episode.states.append(result.state)
        episode.success = result.reward > 0
        state = result.state
    return episode


def expert_episode(task: Task, instance: Any, rng: np.random.Generator) -> Episode:
    """Returns the expert's episode on `instance`."""
    return play(task, instance, lambda s, _: task.expert(s), rng)


def explorer(task: Task, policy: str) -> Callable[[Hashable, np.random.Generator], str]:
    """Returns the choose-function of an exploration policy (see EXPLORER_POLICIES)."""
    random_share = {"random": 1.0, "epsilon-greedy": task.config.epsilon, "noisy-expert": task.config.noise}
    if policy not in random_share:
        raise HarnessError(f"unknown explorer {policy!r} (known: {', '.join(EXPLORER_POLICIES)})")
    share = random_share[policy]

    def choose(state: Hashable, rng: np.random.Generator) -> str:
        if rng.random() < share:
            legal = task.legal_actions(state)
            return legal[int(rng.integers(len(legal)))]
        return task.expert(state)

    return choose


def start_key(task: Task, instance: Any) -> str:
    """Returns what identifies an instance to the agent: the text it sees at reset (its prompt)."""
    return task.prompt(task.reset(instance))


_NUMBER_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")
_MATCH_TOKENS = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+|[-+*/×÷=<>%$]")


def normalized_text(text: str) -> str:
    """Returns `text` as the contamination checks compare it: case folded, punctuation and spacing dropped.

    Words, numbers (1,000 as 1000) and arithmetic signs are kept in order, so "What is 3 + 4?" and
    "what is 3 + 4 ?" match while "what is 3 - 4?" does not.
    """
    return " ".join(_MATCH_TOKENS.findall(_NUMBER_COMMA.sub("", text.casefold())))


def match_key(task: Task, instance: Any) -> str:
    """Returns an instance's start key as matching compares it: a surface variant of a question matches it."""
    return normalized_text(start_key(task, instance))


def eval_keys(task: Task, splits: Splits) -> frozenset[str]:
    """Returns the match keys of the dev and test instances: no training episode may start at one."""
    return frozenset(match_key(task, inst) for inst in (*splits.dev, *splits.test))


EXPLORE_TRIES = 10_000
"""Draws `explore` makes before it gives up finding an instance outside the excluded ones."""


def explore(task: Task, rng: np.random.Generator, policy: str, exclude: frozenset[str] = frozenset()) -> Episode:
    """Returns one exploration episode from an instance of the world whose match key is not in `exclude`.

    Instances are drawn until one is outside `exclude` (the dev and test instances, for training
    data): exploration shows the world's parts, never an evaluation instance itself.
    """
    for _ in range(EXPLORE_TRIES):
        instance = task.sample_instance(rng)
        if match_key(task, instance) not in exclude:
            return play(task, instance, explorer(task, policy), rng, policy=policy)
    raise HarnessError(
        f"{task.name}: no instance outside dev and test in {EXPLORE_TRIES} draws; the world is too small"
    )


def simulate(task: Task, state: Hashable, plan: Iterable[str], rng: np.random.Generator) -> list[Step]:
    """Returns the steps of executing `plan` from `state`, stopping early if the episode ends."""
    steps = []
    for action in plan:
        if is_done(task, state):
            break
        result = task.step(state, action, rng)
        steps.append(result)
        state = result.state
    return steps


class WorldCache:
    """A task's outcomes, legal actions and expert actions, memoised: what every epsilon's values share."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._outcomes: dict[tuple[Hashable, str], list[tuple[float, Step]]] = {}
        self._legal: dict[Hashable, list[str]] = {}
        self._expert: dict[Hashable, str] = {}

    def outcomes(self, state: Hashable, action: str) -> list[tuple[float, Step]]:
        """Returns `task.outcomes(state, action)` (memoised)."""
        key = (state, action)
        if key not in self._outcomes:
            self._outcomes[key] = self.task.outcomes(state, action)
        return self._outcomes[key]

    def legal_actions(self, state: Hashable) -> list[str]:
        """Returns `task.legal_actions(state)` (memoised)."""
        if state not in self._legal:
            self._legal[state] = self.task.legal_actions(state)
        return self._legal[state]

    def expert(self, state: Hashable) -> str:
        """Returns `task.expert(state)` (memoised)."""
        if state not in self._expert:
            self._expert[state] = self.task.expert(state)
        return self._expert[state]


class NoisyExpert:
    """The epsilon-noisy expert as a reference policy, with its exact values (memoised per state).

    In every state it plays its intended action with probability 1 - epsilon, else a uniformly drawn
    legal action (which may be the intended one). Without a plan it intends the expert's action,
    as the `noisy-expert` explorer does. Given a plan, it intends the plan's steps in turn (open
    loop: a slip does not change them), and a random action in their place abandons the rest of
    the plan. `q(state, plan)` is the probability that it succeeds carrying out `plan`, then
    continuing: the reference value that D_look's success estimates state (docs/design.md#data-recipes).
    Values are expectations over the world's `outcomes`: exact, deterministic, no model needed.
    With epsilon 0 it is the expert and `q` is Q*.
    """

    def __init__(self, task: Task, epsilon: float, world: WorldCache | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise HarnessError(f"reference epsilon {epsilon} outside [0, 1]")
        self.task, self.epsilon = task, epsilon
        self.world = world or WorldCache(task)
        self._values: dict[Hashable, float] = {}
        self._noise: dict[Hashable, float] = {}

    def value(self, state: Hashable) -> float:
        """Returns the probability that the policy succeeds from `state`."""
        if is_done(self.task, state):
            return float(state.success)
        if state not in self._values:
            self._values[state] = self._intend(state, self.world.expert(state), ())
        return self._values[state]

    def q(self, state: Hashable, plan: Sequence[str]) -> float:
        """Returns the probability that the policy succeeds carrying out `plan` from `state`, then continuing."""
        if is_done(self.task, state) or not plan:
            return self.value(state)
        return self._intend(state, plan[0], tuple(plan[1:]))

    def _intend(self, state: Hashable, action: str, rest: tuple[str, ...]) -> float:
        """Returns the success probability when `action` is intended in `state` and `rest` of the plan after it."""
        planned = sum(prob * self.q(step.state, rest) for prob, step in self.world.outcomes(state, action))
        if self.epsilon == 0.0:
            return planned
        return (1.0 - self.epsilon) * planned + self.epsilon * self._random(state)

    def _random(self, state: Hashable) -> float:
        """Returns the success probability after a uniformly drawn legal action from `state`, then the policy."""
        if state not in self._noise:
            legal = self.world.legal_actions(state)
            self._noise[state] = sum(self.action_value(state, a) for a in legal) / len(legal)
        return self._noise[state]

    def action_value(self, state: Hashable, action: str) -> float:
        """Returns the probability of success after `action` from `state`, then the policy."""
        return sum(prob * self.value(step.state) for prob, step in self.world.outcomes(state, action))

    def sample(self, state: Hashable, plan: Sequence[str], rng: np.random.Generator) -> bool:
        """Returns one sampled outcome of carrying out `plan` from `state`, then the policy (mean: `q`)."""
        left = list(plan)
        while not is_done(self.task, state):
            if rng.random() < self.epsilon:
                legal = self.task.legal_actions(state)
                action, left = legal[int(rng.integers(len(legal)))], []
            else:
                action = left.pop(0) if left else self.task.expert(state)
            state = self.task.step(state, action, rng).state
        return bool(state.success)


def episode_items(task: Task, episode: Episode) -> frozenset:
    """Returns the parts of the world that `episode` shows."""
    found: set = set()
    for before, action, after in zip(episode.states, episode.actions, episode.states[1:]):
        found |= task.items(before, action, after)
    return frozenset(found)
