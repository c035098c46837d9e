"""The reference policy whose success probability D_look's p states (docs/design.md#data-recipes).

A Q-value belongs to a policy. Q* of the expert's own plan is 1.0 on every deterministic world, so
as a target it teaches "always write 1.0" and leaves FC-RL nothing to move. The reference policy
is instead an epsilon-noisy expert (`tasks.base.NoisyExpert`): in each state a uniformly drawn
legal action with probability epsilon, else the expert's. Epsilon is solved per task and seed so
that the policy's mean success from the *train* instances' start states equals
`data.reference_success` (about the trained agents' success on dev), by bisection on the exact
values: no model in the loop, deterministic and cheap. p of a block = the probability that its plan,
then the reference policy, succeeds; Q-error compares the agent's p with the same value.
"""

from __future__ import annotations

import numpy as np

from harness.core.config import DataSpec
from harness.core.errors import HarnessError
from tasks.base import NoisyExpert, Task, WorldCache

BISECTIONS = 16
"""Halvings of [0, 1] when solving for epsilon (a width of 1.5e-5)."""

_POLICIES: dict[tuple, NoisyExpert] = {}
"""The reference policy last solved in this process, by (task, version, knobs, seed, target)."""


def start_success(task: Task, instances: tuple, epsilon: float, world: WorldCache | None = None) -> float:
    """Returns the mean success probability of the epsilon-noisy expert from the instances' start states."""
    policy = NoisyExpert(task, epsilon, world)
    return float(np.mean([policy.value(task.reset(inst)) for inst in instances]))


def solve_epsilon(task: Task, instances: tuple, target: float) -> float:
    """Returns the epsilon whose noisy expert succeeds `target` of the time from `instances` (0: the expert can't).

    Success falls as epsilon grows (more random moves); bisection keeps the larger half-width
    end where success is still at least the target, so the answer never overshoots it.
    """
    if not 0.0 <= target <= 1.0:
        raise HarnessError(f"data.reference_success is {target}, outside [0, 1]")
    world = WorldCache(task)
    if start_success(task, instances, 0.0, world) <= target:
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(BISECTIONS):
        mid = (low + high) / 2
        low, high = (mid, high) if start_success(task, instances, mid, world) >= target else (low, mid)
    return low


def reference_policy(task: Task, data: DataSpec, seed: int) -> NoisyExpert:
    """Returns the reference policy of `task` and `seed` (solved once per process)."""
    key = (task.name, task.version, task.config, seed, data.reference_success)
    if key not in _POLICIES:
        epsilon = solve_epsilon(task, task.splits(seed).train, data.reference_success)
        _POLICIES.clear()  # one task and seed at a time: reproduce runs them in a row
        _POLICIES[key] = NoisyExpert(task, epsilon, WorldCache(task))
    return _POLICIES[key]
