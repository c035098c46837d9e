"""Human-readable descriptions of tasks for `harness tasks show`."""

from __future__ import annotations

import numpy as np

from harness.config import Profile
from harness.data import SALT_EXPERT, foresight_blocks
from harness.registry import make_task
from harness.traces import ReactTurn, episode_segments
from tasks.base import expert_episode


def describe_task(name: str, profile: Profile) -> str:
    """Returns the knobs, sizes and an example expert episode (ReAct and foresight) of a task."""
    task = make_task(name, profile.tasks.get(name))
    splits = task.splits(profile.seeds[0])
    lines = [f"{name} ({task.family}) at profile {profile.name}", "", "knobs:"]
    lines += [f"  {knob:<16} {value!s:<8} {help}" for knob, value, help in task.config.describe()]
    lines += [
        "",
        f"vocabulary: {len(task.vocabulary())} words",
        f"splits (seed {profile.seeds[0]}): train={len(splits.train)} dev={len(splits.dev)} test={len(splits.test)}",
    ]
    episode = expert_episode(task, splits.train[0], np.random.default_rng([profile.seeds[0], SALT_EXPERT, 0]))
    react = [ReactTurn(task.thought(s), a) for s, a in zip(episode.states, episode.actions)]
    look = foresight_blocks(task, episode, profile.data.look_k)
    for title, turns in (("ReAct", react), ("foresight", look)):
        lines += ["", f"example expert episode ({title}, success={episode.success}):"]
        text = "".join(t for t, _ in episode_segments(episode.prompt, turns, episode.observations))
        lines += ["  " + line for line in text.rstrip("\n").split("\n")]
    return "\n".join(lines)
