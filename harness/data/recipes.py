"""The data recipes (docs/design.md#data-recipes): D_expert, D_look and D_world, and held-out coverage.

Every row has the same schema so that one tokenizer path serves all stages:
`id`, `kind` (expert | look | world), `instance_id`, `texts` (segments), `agent` (one flag per
segment: written by the agent, hence trained on in agentic SFT) and `text` (the segments joined).
WM-AMT trains on `text` with the full language-model loss; sft and fe-sft mask by `agent`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from harness.core import faults
from harness.core.config import DataSpec
from harness.core.errors import HarnessError
from harness.core.store import atomic_dir
from harness.core.streams import stream
from harness.core.traces import (
    P_WORDS,
    ForesightBlock,
    ReactTurn,
    episode_segments,
    render_outcome,
    render_transition,
    round_p,
)
from harness.data.audit import CorpusAudit, audit_corpora, check_clean
from harness.data.reference import reference_policy
from tasks.base import (
    EXPLORER_POLICIES,
    Episode,
    NoisyExpert,
    Splits,
    Task,
    episode_items,
    eval_keys,
    expert_episode,
    explore,
)

COLUMNS = ("id", "kind", "instance_id", "texts", "agent", "text")


@dataclass
class Corpora:
    """The three datasets of one task and seed, with the episodes and coverage behind them."""

    expert: Dataset
    look: Dataset
    world: Dataset
    expert_episodes: list[Episode]
    world_episodes: list[Episode]
    coverage: dict[str, float]
    audit: list[CorpusAudit]
    """The contamination audit of every training corpus (harness.data.audit); build_corpora refuses a dirty one."""


def expert_episodes(task: Task, instances: Sequence[Any], seed: int, name: str = "expert-episodes") -> list[Episode]:
    """Returns the expert's episode on each instance (D_expert before rendering), episode i from stream `name`, i."""
    # One stream per episode: an episode's noise does not depend on how long the episodes before it ran.
    return [expert_episode(task, inst, stream(seed, name, i)) for i, inst in enumerate(instances)]


def expert_shown(task: Task, seed: int) -> frozenset:
    """Returns the parts of the world (transitions, documents, states) that the train split's expert
    episodes show: an instance needing a part outside them is held out (evaluation's `heldout` flag,
    the RL pool's held-out-like prompts)."""
    train = task.splits(seed).train
    return frozenset().union(*(episode_items(task, e) for e in expert_episodes(task, train, seed)))


def world_episodes(task: Task, n: int, seed: int) -> list[Episode]:
    """Returns `n` exploration episodes, explorer policies in turn; none starts at a dev or test instance."""
    policies, exclude = EXPLORER_POLICIES, eval_keys(task, task.splits(seed))
    return [explore(task, stream(seed, "world-episodes", i), policies[i % len(policies)], exclude) for i in range(n)]


def react_row(task: Task, episode: Episode, row_id: str) -> dict[str, Any]:
    """Returns an expert episode rendered in the ReAct format."""
    turns = [ReactTurn(task.thought(s), a) for s, a in zip(episode.states, episode.actions)]
    return _row(row_id, "expert", episode.instance_id, episode_segments(episode.prompt, turns, episode.observations))


def foresight_blocks(task: Task, episode: Episode, k: int, reference: NoisyExpert) -> list[ForesightBlock]:
    """Returns a look-ahead block per turn: the next k actions, their true observations, and
    p = the probability that the plan, then the reference policy, succeeds (harness.data.reference)."""
    blocks = []
    for i, state in enumerate(episode.states[:-1]):
        plan = tuple(episode.actions[i : i + k])
        rollout = tuple(episode.observations[i : i + k])
        blocks.append(ForesightBlock(plan, rollout, round_p(reference.q(state, plan)), plan[0], task.thought(state)))
    return blocks


def look_row(task: Task, episode: Episode, k: int, row_id: str, reference: NoisyExpert) -> dict[str, Any]:
    """Returns an expert episode with a foresight block at each turn (a D_look row)."""
    blocks = foresight_blocks(task, episode, k, reference)
    return _row(row_id, "look", episode.instance_id, episode_segments(episode.prompt, blocks, episode.observations))


def world_text(
    task: Task, episode: Episode, k: int, outcome_every: int, rng: np.random.Generator, reference: NoisyExpert
) -> str:
    """Returns an exploration episode as world-model lines: transitions, then sampled plan outcomes.

    An outcome line's plan is the explorer's next k actions and its outcome one sampled run of
    that plan carried out by the reference policy, then continued by it (`NoisyExpert.sample`), so
    the lines' mean outcome is the value D_look's p states for that plan.
    """
    lines = []
    for i, (state, action, obs) in enumerate(zip(episode.states, episode.actions, episode.observations)):
        lines.append(render_transition(task.describe(state), action, obs))
        if i % outcome_every == 0:
            plan = episode.actions[i : i + k]
            outcome = reference.sample(state, plan, rng)
            lines.append(render_outcome(task.describe(state), plan, outcome))
    return "\n".join(lines) + "\n"


def _row(row_id: str, kind: str, instance_id: str, segments: list[tuple[str, bool]]) -> dict[str, Any]:
    texts = [t for t, _ in segments]
    return {
        "id": row_id,
        "kind": kind,
        "instance_id": instance_id,
        "texts": texts,
        "agent": [a for _, a in segments],
        "text": "".join(texts),
    }


def rows_dataset(rows: list[dict[str, Any]]) -> Dataset:
    """Returns rows of the common schema (COLUMNS) as a Dataset."""
    return Dataset.from_dict({c: [r[c] for r in rows] for c in COLUMNS})


def mixed_rows(corpora: Corpora, world_tokens: int, look_tokens: int, seed: int) -> Dataset:
    """Returns one dataset of D_world rows up to `world_tokens` and D_look rows up to `look_tokens`.

    Each corpus's rows are taken in a seed-drawn order, cycled if the budget exceeds the corpus.
    D_world rows (the D_expert episodes mixed into it too) become kind `world` with every segment a
    target, so they train with the full language-model loss as in wm-amt; D_look rows keep their
    agent flags (loss on the agent's tokens, as in fe-sft). The sft stage shuffles them together.
    """
    rng = stream(seed, "mixed-rows")

    def drawn(ds: Dataset, tokens: int) -> list[dict[str, Any]]:
        rows, total, order = [], 0, rng.permutation(len(ds))
        while total < tokens and len(ds):
            row = ds[int(order[len(rows) % len(ds)])]
            rows.append(row)
            total += count_tokens(row["text"])
        return rows

    world = [dict(r, kind="world", agent=[True] * len(r["texts"])) for r in drawn(corpora.world, world_tokens)]
    return rows_dataset(world + drawn(corpora.look, look_tokens))


def count_tokens(text: str) -> int:
    """Returns the number of tokens of `text` for the tiny WordLevel tokenizer (words + newlines)."""
    return len(text.split()) + text.count("\n")


def coverage(task: Task, splits: Splits, expert: list[Episode], world: list[Episode]) -> dict[str, float]:
    """Returns held-out coverage: how much of the test split needs what only D_world shows.

    - `test_needs_unseen`: share of test instances whose required parts (transitions, documents
      or states) include one that no train expert episode shows.
    - `unseen_in_world`: share of those unseen parts that the exploration episodes show.
    """
    seen_by_expert = frozenset().union(*(episode_items(task, e) for e in expert))
    seen_by_world = frozenset().union(*(episode_items(task, e) for e in world))
    unseen = [task.required(inst) - seen_by_expert for inst in splits.test]
    novel = frozenset().union(*unseen)
    return {
        "test_needs_unseen": float(np.mean([bool(u) for u in unseen])) if unseen else 0.0,
        "unseen_parts": float(len(novel)),
        "unseen_in_world": len(novel & seen_by_world) / len(novel) if novel else 1.0,
        "expert_parts": float(len(seen_by_expert)),
        "world_parts": float(len(seen_by_world)),
    }


def build_corpora(task: Task, data: DataSpec, seed: int) -> Corpora:
    """Returns D_expert, D_look and D_world of `task` for `seed`."""
    splits = task.splits(seed)
    experts = expert_episodes(task, splits.train, seed)
    expert_rows = [react_row(task, e, f"expert-{i}") for i, e in enumerate(experts)]
    reference = reference_policy(task, data, seed)
    look_rows = [look_row(task, e, data.look_k, f"look-{i}", reference) for i, e in enumerate(experts)]
    faults.point("data")
    explored = world_episodes(task, data.world_episodes, seed)
    outcome_rng = stream(seed, "world-outcomes")
    world_rows = []
    for i, episode in enumerate(explored):
        text = world_text(task, episode, data.look_k, data.outcome_every, outcome_rng, reference)
        world_rows.append(_row(f"world-{i}", "world", episode.instance_id, [(text, True)]))
    mixed = _expert_mix(expert_rows, world_rows, data.expert_share)
    world_rows += mixed
    texts = {"D_expert": expert_rows, "D_look": look_rows, "D_world": world_rows}
    audits = audit_corpora(
        task,
        splits,
        experts,
        explored,
        {name: [r["text"] for r in rows] for name, rows in texts.items()},
        [r["instance_id"] for r in mixed],
    )
    check_clean(task, seed, audits)
    return Corpora(
        expert=rows_dataset(expert_rows),
        look=rows_dataset(look_rows),
        world=rows_dataset(world_rows),
        expert_episodes=experts,
        world_episodes=explored,
        coverage=coverage(task, splits, experts, explored),
        audit=audits,
    )


def _expert_mix(expert_rows: list[dict], world_rows: list[dict], share: float) -> list[dict]:
    """Returns D_expert rows (cycled) whose tokens make up `share` of the mixed corpus."""
    if share <= 0 or not expert_rows:
        return []
    world_tokens = sum(count_tokens(r["text"]) for r in world_rows)
    wanted = share / (1 - share) * world_tokens if share < 1 else world_tokens
    mixed, tokens = [], 0
    for i in itertools.count():
        if tokens >= wanted:
            break
        row = dict(expert_rows[i % len(expert_rows)], id=f"world-expert-{i}")
        mixed.append(row)
        tokens += count_tokens(row["text"])
    return mixed


def corpus_stats(corpora: Corpora) -> dict[str, Any]:
    """Returns rows and tokens of each dataset and the coverage numbers, for printing and manifests."""
    stats: dict[str, Any] = {}
    for name in ("expert", "look", "world"):
        ds: Dataset = getattr(corpora, name)
        agent_tokens = sum(
            count_tokens(t) for texts, flags in zip(ds["texts"], ds["agent"]) for t, a in zip(texts, flags) if a
        )
        stats[f"D_{name}"] = {
            "rows": len(ds),
            "tokens": sum(count_tokens(t) for t in ds["text"]),
            "agent_tokens": agent_tokens,
        }
    stats["coverage"] = corpora.coverage
    stats["audit"] = [dataclasses.asdict(a) for a in corpora.audit]
    stats["p_targets"] = p_target_stats(corpora.look)
    stats["expert_success"] = float(np.mean([e.success for e in corpora.expert_episodes]))
    return stats


def p_target_stats(look: Dataset) -> dict[str, Any]:
    """Returns the distribution of D_look's success estimates: count, mean, share at 1.0, histogram over 0.0 ... 1.0."""
    ps = [float(m) for text in look["text"] for m in re.findall(r" p (\S+) act ", text)]
    counts = [sum(1 for p in ps if f"{p:.1f}" == word) for word in P_WORDS]
    return {
        "n": len(ps),
        "mean": float(np.mean(ps)) if ps else None,
        "share_1.0": counts[-1] / len(ps) if ps else None,
        "histogram": dict(zip(P_WORDS, counts)),
    }


def check_out_dir(out: Path) -> None:
    """Raises HarnessError unless `out` is free or an earlier data build's folder (which a build replaces whole)."""
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "stats.json").is_file():
        raise HarnessError(
            f"--out {out} holds files that were not written by `harness data build`; choose an empty or new folder"
        )


def save_corpora(corpora: Corpora, out: Path, stats: dict[str, Any], extra: dict[str, str] | None = None) -> Path:
    """Writes the three datasets (jsonl), `extra` files (name -> text) and stats.json to `out`
    atomically; returns `out`."""
    check_out_dir(out)
    with atomic_dir(out) as tmp:
        for name in ("expert", "look", "world"):
            getattr(corpora, name).to_json(tmp / f"D_{name}.jsonl", lines=True)
        for filename, text in (extra or {}).items():
            (tmp / filename).write_text(text)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    return out
