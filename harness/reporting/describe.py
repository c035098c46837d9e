"""Human-readable descriptions of tasks for `harness tasks show`."""

from __future__ import annotations

from harness.core.config import Profile
from harness.core.registry import make_task
from harness.data.recipes import expert_episodes, look_row, react_row
from harness.data.reference import reference_policy


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
    episode = expert_episodes(task, splits.train[:1], profile.seeds[0])[0]
    rows = {
        "ReAct": react_row(task, episode, "show"),
        "foresight": look_row(
            task, episode, profile.data.look_k, "show", reference_policy(task, profile.data, profile.seeds[0])
        ),
    }
    for title, row in rows.items():
        lines += ["", f"example expert episode ({title}, success={episode.success}):"]
        lines += ["  " + line for line in row["text"].rstrip("\n").split("\n")]
    return "\n".join(lines)
