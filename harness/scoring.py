"""Turns played episodes into the records of episodes.jsonl, and records into a run's metrics.

episodes.jsonl is the single source of truth of a run: every metric, table and comparison is
computed from its records, so anything in a table can be traced to the turns behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness import metrics
from harness.agent import AgentEpisode
from harness.rewards import actual_observations, fidelity_hits
from harness.traces import ForesightBlock, ParseError, ReactTurn
from tasks.base import Task


def _parsed(turn_parsed: Any) -> dict[str, Any] | None:
    if isinstance(turn_parsed, ForesightBlock):
        return {
            "thought": turn_parsed.thought,
            "plan": list(turn_parsed.plan),
            "rollout": list(turn_parsed.rollout),
            "p": turn_parsed.p,
        }
    if isinstance(turn_parsed, ReactTurn):
        return {"thought": turn_parsed.thought}
    return None


def episode_record(
    task: Task, index: int, episode: AgentEpisode, rng: np.random.Generator, candidates: list[dict] | None = None
) -> dict[str, Any]:
    """Returns one episode as a JSON-ready record, with Q* and the actual observations of every block."""
    turns = []
    for i, turn in enumerate(episode.turns):
        record: dict[str, Any] = {
            "output": turn.output,
            "parsed": _parsed(turn.parsed),
            "error": turn.parsed.reason if isinstance(turn.parsed, ParseError) else None,
            "action": turn.action,
            "observation": turn.observation,
        }
        if isinstance(turn.parsed, ForesightBlock):
            record["q_star"] = task.q_star(turn.state, turn.parsed.plan)
            record["actual"] = actual_observations(task, episode, i, rng)
        turns.append(record)
    return {
        "episode": index,
        "instance_id": episode.instance_id,
        "prompt": episode.prompt,
        "success": bool(episode.success),
        "turns": turns,
        "candidates": candidates or [],
    }


def _blocks(records: Sequence[dict], first_only: bool = False) -> list[tuple[dict, float]]:
    """Returns (turn, outcome) for every turn with a parsed foresight block."""
    found = []
    for record in records:
        for turn in record["turns"][:1] if first_only else record["turns"]:
            if turn["parsed"] and "p" in turn["parsed"]:
                found.append((turn, float(record["success"])))
    return found


P_METRICS = ("ece_first", "ece_all", "brier", "auroc", "q_error", "selection_gain")


def point_metrics(records: Sequence[dict], verbal_p: bool, max_k: int) -> dict[str, float | None]:
    """Returns each scalar metric of DESIGN.md section 7 over `records` (None where undefined).

    Methods without a verbal p get None in the p columns (shown as a dash, never a zero).
    """
    turns = [t for r in records for t in r["turns"]]
    out: dict[str, float | None] = {
        "success": metrics.mean_or_none([float(r["success"]) for r in records]),
        "format_rate": metrics.format_rate([t["parsed"] is not None for t in turns]),
    }
    fidelity: list[float | None] = [None] * max_k
    if verbal_p:
        every = _blocks(records)
        first = _blocks(records, first_only=True)
        p_all = [t["parsed"]["p"] for t, _ in every]
        o_all = [o for _, o in every]
        sets = [r["candidates"] for r in records if r["candidates"]]
        out.update(
            ece_first=metrics.ece([t["parsed"]["p"] for t, _ in first], [o for _, o in first]),
            ece_all=metrics.ece(p_all, o_all),
            brier=metrics.brier(p_all, o_all),
            auroc=metrics.auroc(p_all, o_all),
            q_error=metrics.q_error(p_all, [t["q_star"] for t, _ in every]),
            selection_gain=metrics.selection_gain(
                [[c["q_star"] for c in cs] for cs in sets], [[c["p"] for c in cs] for cs in sets]
            )
            if sets
            else None,
        )
        hits = [fidelity_hits(t["parsed"]["rollout"], t["actual"])[: len(t["actual"])] for t, _ in every]
        fidelity = metrics.fidelity_by_step(hits, max_k)
    else:
        out.update({key: None for key in P_METRICS})
    out.update({f"fidelity@{k + 1}": value for k, value in enumerate(fidelity)})
    return out


def run_metrics(records: Sequence[dict], verbal_p: bool, seed: int, max_k: int) -> dict[str, Any]:
    """Returns a run's metrics: the point metrics, success with its bootstrap CI, reliability bins."""
    every = _blocks(records) if verbal_p else []
    return {
        **point_metrics(records, verbal_p, max_k),
        "n_episodes": len(records),
        "success_ci": metrics.success_summary([float(r["success"]) for r in records], seed),
        "turns_per_episode": metrics.mean_or_none([len(r["turns"]) for r in records]),
        "reliability": metrics.reliability_bins([t["parsed"]["p"] for t, _ in every], [o for _, o in every])
        if verbal_p
        else None,
    }
