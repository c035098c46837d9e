"""Turns played episodes into the records of episodes.jsonl, and records into a run's metrics.

episodes.jsonl is the single source of truth of a run: every metric, table and comparison is
computed from its records, so anything in a table can be traced to the turns behind it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.agent import AgentEpisode
from harness.core.traces import ForesightBlock, ParseError, ReactTurn
from harness.evaluation import metrics
from harness.training.rewards import actual_observations, fidelity_hits
from tasks.base import NoisyExpert, Task


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
    task: Task,
    index: int,
    episode: AgentEpisode,
    rng: np.random.Generator,
    reference: NoisyExpert,
    candidates: list[dict] | None = None,
    heldout: bool = False,
    p_first: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """Returns one episode as a JSON-ready record, with Q_ref, Q* and the actual observations of every block.

    `heldout`: the instance needs a part of the world no train expert episode shows. `p_first`: what
    the model believed at the p token of its first turn (harness.evaluation.estimates), if it wrote one.
    """
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
            record["q_ref"] = reference.q(turn.state, turn.parsed.plan)
            record["q_star"] = task.q_star(turn.state, turn.parsed.plan)
            record["actual"] = actual_observations(task, episode, i, rng)
        turns.append(record)
    record = {
        "episode": index,
        "instance_id": episode.instance_id,
        "prompt": episode.prompt,
        "success": bool(episode.success),
        "heldout": heldout,
        "p_first": p_first,
        "turns": turns,
        "candidates": candidates or [],
    }
    # Scores a task reports beside success (hotpotqa's answer F1); tasks without them add nothing.
    scores = getattr(task, "episode_scores", None)
    if scores is not None and episode.final_state is not None:
        record["scores"] = scores(episode.final_state)
    return record


def _blocks(records: Sequence[dict], first_only: bool = False) -> list[tuple[dict, float]]:
    """Returns (turn, outcome) for every turn with a parsed foresight block."""
    found = []
    for record in records:
        for turn in record["turns"][:1] if first_only else record["turns"]:
            if turn["parsed"] and "p" in turn["parsed"]:
                found.append((turn, float(record["success"])))
    return found


P_METRICS = ("ece_first", "ece_all", "brier", "auroc", "q_error", "q_error_star", "selection_gain")


@dataclass(frozen=True)
class RecordParts:
    """What the point metrics need from one episode record, extracted once.

    A paired bootstrap recomputes the metrics over thousands of resamples of records; taking
    these parts apart once makes each resample a concatenation, with the very same numbers
    in the very same order as computing from the records themselves.
    """

    success: float
    parsed: list[bool]
    p: list[float]
    outcome: list[float]
    q_ref: list[float]
    q_star: list[float]
    first_p: list[float]
    first_outcome: list[float]
    gain: float | None
    """This record's selection gain (None without candidates)."""
    hits: np.ndarray
    seen: np.ndarray


def record_parts(record: dict, verbal_p: bool, max_k: int) -> RecordParts:
    """Returns the parts of one record that the point metrics read."""
    blocks = _blocks([record]) if verbal_p else []
    first = _blocks([record], first_only=True) if verbal_p else []
    cands = record["candidates"] if verbal_p else []
    hits = [fidelity_hits(t["parsed"]["rollout"], t["actual"]) for t, _ in blocks]
    hit_counts, seen_counts = metrics.fidelity_counts(hits, max_k)
    return RecordParts(
        success=float(record["success"]),
        parsed=[t["parsed"] is not None for t in record["turns"]],
        p=[t["parsed"]["p"] for t, _ in blocks],
        outcome=[o for _, o in blocks],
        q_ref=[t["q_ref"] for t, _ in blocks],
        q_star=[t["q_star"] for t, _ in blocks],
        first_p=[t["parsed"]["p"] for t, _ in first],
        first_outcome=[o for _, o in first],
        gain=metrics.selection_gain([[c["q_star"] for c in cands]], [[c["p"] for c in cands]]) if cands else None,
        hits=hit_counts,
        seen=seen_counts,
    )


def point_metrics(records: Sequence[dict], verbal_p: bool, max_k: int) -> dict[str, float | None]:
    """Returns each scalar metric (docs/design.md#metrics) over `records` (None where undefined).

    Methods without a verbal p get None in the p columns (shown as a dash, never a zero).
    """
    return parts_metrics([record_parts(r, verbal_p, max_k) for r in records], verbal_p, max_k)


def parts_metrics(parts: Sequence[RecordParts], verbal_p: bool, max_k: int) -> dict[str, float | None]:
    """Returns the point metrics over records given by their parts (see `point_metrics`)."""

    def joined(field: str) -> list:
        return list(itertools.chain.from_iterable(getattr(x, field) for x in parts))

    out: dict[str, float | None] = {
        "success": metrics.mean_or_none([x.success for x in parts]),
        "format_rate": metrics.format_rate(joined("parsed")),
    }
    fidelity: list[float | None] = [None] * max_k
    if verbal_p:
        p_all, o_all = joined("p"), joined("outcome")
        gains = [x.gain for x in parts if x.gain is not None]
        out.update(
            ece_first=metrics.ece(joined("first_p"), joined("first_outcome")),
            ece_all=metrics.ece(p_all, o_all),
            brier=metrics.brier(p_all, o_all),
            auroc=metrics.auroc(p_all, o_all),
            q_error=metrics.q_error(p_all, joined("q_ref")),
            q_error_star=metrics.q_error(p_all, joined("q_star")),
            selection_gain=metrics.mean_or_none(gains) if gains else None,
        )
        hits = np.sum([x.hits for x in parts], axis=0) if parts else np.zeros(max_k)
        seen = np.sum([x.seen for x in parts], axis=0) if parts else np.zeros(max_k)
        fidelity = metrics.fidelity_from_counts(hits, seen)
    else:
        out.update({key: None for key in P_METRICS})
    out.update({f"fidelity@{k + 1}": value for k, value in enumerate(fidelity)})
    return out


def belief_metrics(records: Sequence[dict], verbal_p: bool) -> dict[str, float | None]:
    """Returns how much room RL has at the first turn's p: the written p's mean, the model's entropy
    at the p token (bits) and expected p there, each a mean over the records that wrote a first p.

    `overconfidence` = mean_p - success: how far the estimates sit above what the agent achieves.
    """
    if not verbal_p:
        return {"mean_p": None, "overconfidence": None, "p_entropy": None, "expected_p": None}
    first = _blocks(records, first_only=True)
    mean_p = metrics.mean_or_none([t["parsed"]["p"] for t, _ in first])
    beliefs = [r["p_first"] for r in records if r.get("p_first")]
    expected = [b["expected_p"] for b in beliefs if b["expected_p"] is not None]
    success = metrics.mean_or_none([float(r["success"]) for r in records])
    return {
        "mean_p": mean_p,
        "overconfidence": None if mean_p is None or success is None else mean_p - success,
        "p_entropy": metrics.mean_or_none([b["entropy_bits"] for b in beliefs]),
        "expected_p": metrics.mean_or_none(expected),
    }


def run_metrics(records: Sequence[dict], verbal_p: bool, seed: int, max_k: int) -> dict[str, Any]:
    """Returns a run's metrics: the point metrics, success with its bootstrap CI, beliefs at p, reliability bins."""
    every = _blocks(records) if verbal_p else []
    extra = {}
    if records and all("scores" in r for r in records):
        extra["task_scores"] = {
            k: metrics.mean_or_none([r["scores"][k] for r in records]) for k in records[0]["scores"]
        }
    return {
        **extra,
        **point_metrics(records, verbal_p, max_k),
        **belief_metrics(records, verbal_p),
        "n_episodes": len(records),
        "success_ci": metrics.success_summary([float(r["success"]) for r in records], seed),
        "turns_per_episode": metrics.mean_or_none([len(r["turns"]) for r in records]),
        "reliability": metrics.reliability_bins([t["parsed"]["p"] for t, _ in every], [o for _, o in every])
        if verbal_p
        else None,
    }
