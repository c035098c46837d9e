"""Held-out coverage of the shipped default profile, with exploration kept off dev and test instances.

Each task's test split needs parts of the world (graph-nav moves, kb-search documents, countdown
states) that no train expert episode shows; D_world must show them, without ever starting at an
evaluation instance. The floors are the measured values at seeds 0-2 rounded down; countdown's
+ and - world is small enough that 7-23% of those states are reached only from evaluation
instances themselves, which exploration may not start at (README, known limitations).
"""

from __future__ import annotations

import pytest

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.data.recipes import coverage, expert_episodes, world_episodes

FLOORS = {"graph-nav": 1.0, "kb-search": 1.0, "countdown": 0.6}
"""Least share of the unseen parts that D_world shows, per task (measured: 1.0, 1.0, 0.77-0.93)."""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_default_profile_held_out_parts_are_shown(name: str) -> None:
    profile = load_profile("default")
    task = make_task(name, profile.tasks[name])
    for seed in (0, 1, 2):
        splits = task.splits(seed)
        experts = expert_episodes(task, splits.train, seed)
        cov = coverage(task, splits, experts, world_episodes(task, profile.data.world_episodes, seed))
        print(f"{name} seed {seed}: {cov}")
        assert cov["test_needs_unseen"] >= 0.4  # the held-out half (graph-nav: 0.4) is really held out
        assert cov["unseen_in_world"] >= FLOORS[name]
