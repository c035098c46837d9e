"""The probe items: world-model questions on states of the test split, in D_world's line format.

Each test instance is played once by an explorer (the policies cycle as in D_world, so states
off the expert's path are asked about too). Every state of that episode gives one next-observation
item (the action the explorer took and the observation the world returned) and one calibration
item (the explorer's next k actions as the plan, one sampled outcome of that plan followed by the
reference policy of D_look's p (harness.data.reference), that policy's exact value of the plan
and Q* of the plan). The rows are what `harness data build` writes as
probe_next_obs.jsonl and probe_calibration.jsonl.
"""

from __future__ import annotations

import json
from typing import Any

from harness.core.config import DataSpec
from harness.core.streams import stream
from harness.core.traces import render_outcome, render_transition
from harness.data.reference import reference_policy
from tasks.base import EXPLORER_POLICIES, Task, explorer, play

PROBE_FILES = {"next_obs": "probe_next_obs.jsonl", "calibration": "probe_calibration.jsonl"}
"""Probe name -> the jsonl file that holds its items."""
CHOICES = ("success", "failure")
"""The calibration probe's two continuations, in the order of its `label` index."""


def jsonl_text(rows: list[dict[str, Any]]) -> str:
    """Returns `rows` as jsonl text, keys sorted (the files are compared by digest)."""
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)


def _split_last(line: str, answer: str) -> str:
    """Returns `line` without its final ' <answer>' (the context the model continues)."""
    suffix = " " + answer
    if not line.endswith(suffix):
        raise ValueError(f"rendered line {line!r} does not end in {suffix!r}")
    return line[: -len(suffix)]


def probe_items(task: Task, data: DataSpec, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Returns the rows of both probes for the test split of `seed`, keyed as PROBE_FILES.

    next_obs rows: id, instance_id, policy, turn, context ("world <state> act <action> ->"),
    target (the observation). calibration rows: id, instance_id, policy, turn, context
    ("world <state> plan <a1> ; <a2> ->"), plan, outcome (0/1, one sampled run of the plan then
    the reference policy), label (index into CHOICES of the outcome), q_ref (that policy's value of
    the plan) and q_star.
    """
    reference = reference_policy(task, data, seed)
    next_obs: list[dict[str, Any]] = []
    calibration: list[dict[str, Any]] = []
    for i, instance in enumerate(task.splits(seed).test):
        policy = EXPLORER_POLICIES[i % len(EXPLORER_POLICIES)]
        episode = play(task, instance, explorer(task, policy), stream(seed, "probe-items", i), policy=policy)
        outcome_rng = stream(seed, "probe-outcomes", i)
        for t, (state, action, observation) in enumerate(zip(episode.states, episode.actions, episode.observations)):
            described = task.describe(state)
            common = {"instance_id": episode.instance_id, "policy": policy, "turn": t}
            line = render_transition(described, action, observation)
            next_obs.append(
                {"id": f"obs-{i}-{t}", **common, "context": _split_last(line, observation), "target": observation}
            )
            plan = episode.actions[t : t + data.look_k]
            success = reference.sample(state, plan, outcome_rng)
            word = CHOICES[0] if success else CHOICES[1]
            calibration.append(
                {
                    "id": f"cal-{i}-{t}",
                    **common,
                    "context": _split_last(render_outcome(described, plan, success), word),
                    "plan": list(plan),
                    "outcome": int(success),
                    "label": CHOICES.index(word),
                    "q_ref": float(reference.q(state, plan)),
                    "q_star": float(task.q_star(state, plan)),
                }
            )
    return {"next_obs": next_obs, "calibration": calibration}
