"""Turns played episodes into the records of episodes.jsonl, and records into a run's metrics.

episodes.jsonl is the single source of truth of a run: every metric, table and comparison is
computed from its records, so anything in a table can be traced to the turns behind it.
"""

from __future__ import annotations

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


P_METRICS = (
    "p_coverage",
    "first_p_coverage",
    "ece_first",
    "brier_first",
    "brier_skill_first",
    "auroc_first",
    "reliability_first",
    "resolution_first",
    "uncertainty_first",
    "ece_all",
    "brier",
    "brier_skill_all",
    "auroc",
    "q_error",
    "q_error_star",
    "selection_gain",
    "selection_gain_star",
)
"""The metrics only a method with a verbal p has (None for the others)."""


@dataclass(frozen=True)
class RecordParts:
    """What the point metrics need from one episode record, extracted once."""

    success: float
    parsed: list[bool]
    p: list[float]
    outcome: list[float]
    q_ref: list[float]
    q_star: list[float]
    first_p: list[float]
    first_outcome: list[float]
    gain: float | None
    """This record's selection gain, candidates scored by Q_ref (None without candidates)."""
    gain_star: float | None
    """The same with candidates scored by the expert's Q* (secondary: constant across plans on kb-search)."""
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
        gain=metrics.selection_gain([[c["q_ref"] for c in cands]], [[c["p"] for c in cands]]) if cands else None,
        gain_star=metrics.selection_gain([[c["q_star"] for c in cands]], [[c["p"] for c in cands]]) if cands else None,
        hits=hit_counts,
        seen=seen_counts,
    )


COUNTS = (
    "episodes",
    "success",
    "turns",
    "parsed",
    "turns_t1",
    "parsed_t1",
    "turns_t2",
    "parsed_t2",
    "turns_t3plus",
    "parsed_t3plus",
    "p_turns",
    "first_p",
    "q_error_sum",
    "q_error_star_sum",
    "gain_sum",
    "gain_star_sum",
    "gain_count",
)
"""The scalar sums of one episode; fidelity and per-level calibration counts follow them (see `Sums`)."""


@dataclass(frozen=True)
class Sums:
    """The layout of per-episode sums from which every point metric is a function of their (weighted) total.

    A row holds COUNTS, then fidelity hits and seen per horizon step (max_k each), then the count and
    the successes of first turns at each level of p, then the same over all turns. Summing rows with
    bootstrap counts as weights gives a resample's sums without touching the records again.
    """

    levels: np.ndarray
    """The distinct values p takes in the episodes compared (ascending)."""
    max_k: int

    def span(self, name: str) -> slice:
        """Returns the columns of one block: a COUNTS name, "hits", "seen", "first_n", "first_y", "all_n", "all_y"."""
        if name in COUNTS:
            i = COUNTS.index(name)
            return slice(i, i + 1)
        widths = {
            "hits": self.max_k,
            "seen": self.max_k,
            **dict.fromkeys(("first_n", "first_y", "all_n", "all_y"), len(self.levels)),
        }
        start = len(COUNTS)
        for block, width in widths.items():
            if block == name:
                return slice(start, start + width)
            start += width
        raise KeyError(name)

    @property
    def width(self) -> int:
        """Returns the number of columns of a row."""
        return self.span("all_y").stop

    def row(self, parts: RecordParts) -> np.ndarray:
        """Returns one episode's sums."""
        out = np.zeros(self.width)
        by_turn = [parts.parsed[:1], parts.parsed[1:2], parts.parsed[2:]]
        first = metrics.level_counts(parts.first_p, parts.first_outcome, self.levels)
        every = metrics.level_counts(parts.p, parts.outcome, self.levels)
        scalars = [1.0, parts.success, len(parts.parsed), sum(parts.parsed)]
        scalars += [v for flags in by_turn for v in (len(flags), sum(flags))]
        scalars += [len(parts.p), len(parts.first_p)]
        scalars += [
            float(np.abs(np.subtract(parts.p, parts.q_ref)).sum()),
            float(np.abs(np.subtract(parts.p, parts.q_star)).sum()),
        ]
        scalars += [parts.gain or 0.0, parts.gain_star or 0.0, float(parts.gain is not None)]
        out[: len(COUNTS)] = scalars
        for name, values in zip(
            ("hits", "seen", "first_n", "first_y", "all_n", "all_y"), (parts.hits, parts.seen, *first, *every)
        ):
            out[self.span(name)] = values
        return out

    def matrix(self, parts: Sequence[RecordParts]) -> np.ndarray:
        """Returns the (episodes, width) array of every episode's sums."""
        return np.array([self.row(x) for x in parts]).reshape(len(parts), self.width)


def sums_for(parts: Sequence[RecordParts], max_k: int) -> Sums:
    """Returns the layout whose levels are the distinct values p takes in `parts`."""
    found = [v for x in parts for v in x.p]
    return Sums(np.unique(np.asarray(found, dtype=float)), max_k)


def metrics_from_sums(sums: np.ndarray, layout: Sums, verbal_p: bool) -> dict[str, np.ndarray]:
    """Returns every point metric from summed rows (last axis = the layout's columns), NaN where undefined.

    Leading axes are kept, so (B, width) sums of B bootstrap resamples give B values of each metric.
    """

    def col(name: str) -> np.ndarray:
        return sums[..., layout.span(name)]

    def one(name: str) -> np.ndarray:
        return col(name)[..., 0]

    ratio = metrics.safe_ratio
    out = {
        "success": ratio(one("success"), one("episodes")),
        "format_rate": ratio(one("parsed"), one("turns")),
        **{f"format_rate_{t}": ratio(one(f"parsed_{t}"), one(f"turns_{t}")) for t in ("t1", "t2", "t3plus")},
    }
    nan = np.full(sums.shape[:-1], np.nan)
    if not verbal_p:
        out.update(dict.fromkeys(P_METRICS, nan))
        out.update({f"fidelity@{k + 1}": nan for k in range(layout.max_k)})
        return out
    levels = layout.levels
    first = (levels, col("first_n"), col("first_y"))
    every = (levels, col("all_n"), col("all_y"))
    rel, res, unc = metrics.murphy_from_levels(*first)
    out.update(
        p_coverage=ratio(one("p_turns"), one("turns")),
        first_p_coverage=ratio(one("first_p"), one("episodes")),
        ece_first=metrics.ece_from_levels(*first),
        brier_first=metrics.brier_from_levels(*first),
        brier_skill_first=metrics.brier_skill_from_levels(*first),
        auroc_first=metrics.auroc_from_levels(*first),
        reliability_first=rel,
        resolution_first=res,
        uncertainty_first=unc,
        ece_all=metrics.ece_from_levels(*every),
        brier=metrics.brier_from_levels(*every),
        brier_skill_all=metrics.brier_skill_from_levels(*every),
        auroc=metrics.auroc_from_levels(*every),
        q_error=ratio(one("q_error_sum"), one("p_turns")),
        q_error_star=ratio(one("q_error_star_sum"), one("p_turns")),
        selection_gain=ratio(one("gain_sum"), one("gain_count")),
        selection_gain_star=ratio(one("gain_star_sum"), one("gain_count")),
    )
    fidelity = ratio(col("hits"), col("seen"))
    out.update({f"fidelity@{k + 1}": fidelity[..., k] for k in range(layout.max_k)})
    return out


def point_metrics(records: Sequence[dict], verbal_p: bool, max_k: int) -> dict[str, float | None]:
    """Returns each scalar metric (docs/design.md#metrics) over `records` (None where undefined):
    `metrics_from_sums` of the total of their rows of sums.

    Methods without a verbal p get None in the p columns (shown as a dash, never a zero).
    """
    parts = [record_parts(r, verbal_p, max_k) for r in records]
    layout = sums_for(parts, max_k)
    values = metrics_from_sums(layout.matrix(parts).sum(axis=0), layout, verbal_p)
    return {key: None if np.isnan(v) else float(v) for key, v in values.items()}


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
    """Returns a run's metrics: the point metrics, success with its bootstrap CI, beliefs at p, and the
    reliability bins of all turns (`reliability`) and of first turns (`reliability_bins_first`)."""
    every = _blocks(records) if verbal_p else []
    first = _blocks(records, first_only=True) if verbal_p else []
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
        "reliability_bins_first": metrics.reliability_bins([t["parsed"]["p"] for t, _ in first], [o for _, o in first])
        if verbal_p
        else None,
    }
