"""REPORT.md's "Where the time goes": what each stage kind and each method cost, from the runs' manifests.

Every complete run's manifest.json lists its stages with their stats (stage.json: tokens_seen, steps,
wall_s, and for an SFT-type stage corpus_tokens, the tokens of the rows it read) and its evaluation's
wall time. A stage is trained once and reused by every run whose chain holds its hash, so the table
per stage counts each hash once; the table per method sums the stages of its chains, so a stage that
two methods share counts in both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.config import Profile
from harness.core.registry import method_factory
from harness.core.runs import is_complete, run_dir


@dataclass(frozen=True)
class StageCost:
    """One trained stage (one hash) as a run's manifest records it."""

    kind: str
    name: str
    hash: str
    tokens: int
    corpus_tokens: int | None
    """Tokens of the rows the stage read (SFT-type stages); None for grpo or a stage trained before it was kept."""
    steps: int
    wall_s: float


def complete_manifests(profile: Profile, runs: Path) -> Iterator[dict[str, Any]]:
    """Yields the manifest of each complete run of the profile's methods and ablations, tasks and seeds."""
    for method in dict.fromkeys([*profile.methods, *profile.ablations]):
        seeds = profile.seeds if method in profile.methods else profile.ablation_seeds
        for task in profile.tasks:
            for seed in seeds:
                path = run_dir(runs, profile.name, task, method, seed)
                if is_complete(path) and (path / "manifest.json").is_file():
                    yield {"method": method, **json.loads((path / "manifest.json").read_text())}


def stage_costs(profile: Profile, manifest: dict[str, Any]) -> list[StageCost]:
    """Returns the stages of one run's manifest, each with its kind from the method's stage list."""
    kinds = {spec.name: spec.kind for spec in method_factory(manifest["method"])(profile).stages}
    return [
        StageCost(
            kinds.get(s["name"], "-"),
            s["name"],
            s["hash"],
            int(s.get("tokens_seen") or 0),
            s.get("corpus_tokens"),
            int(s.get("steps") or 0),
            float(s.get("wall_s") or 0.0),
        )
        for s in manifest.get("stages", [])
    ]


def _rate(tokens: int, wall_s: float) -> str:
    return f"{tokens / wall_s:.0f}" if wall_s > 0 else "-"


def stage_table(profile: Profile, manifests: Sequence[dict[str, Any]]) -> list[str]:
    """Returns the markdown rows of the table per stage kind and name: each distinct stage (hash) counted once.

    Epochs: the mean over its stages of tokens seen / tokens of the rows read; a dash where no stage
    recorded its rows' tokens (grpo plays episodes, it reads no corpus).
    """
    distinct: dict[str, StageCost] = {}
    for manifest in manifests:
        for stage in stage_costs(profile, manifest):
            distinct.setdefault(stage.hash, stage)
    groups: dict[tuple[str, str], list[StageCost]] = {}
    for stage in distinct.values():
        groups.setdefault((stage.kind, stage.name), []).append(stage)
    rows = [
        "| kind | stage | stages trained | tokens | epochs of its data | steps | wall s | tokens/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (kind, name), stages in sorted(groups.items()):
        tokens, wall = sum(s.tokens for s in stages), sum(s.wall_s for s in stages)
        epochs = [s.tokens / s.corpus_tokens for s in stages if s.corpus_tokens]
        shown = f"{sum(epochs) / len(epochs):.2f}" if epochs else "-"
        rows.append(
            f"| {kind} | {name} | {len(stages)} | {tokens} | {shown} | {sum(s.steps for s in stages)} "
            f"| {wall:.1f} | {_rate(tokens, wall)} |"
        )
    return rows


def method_table(profile: Profile, manifests: Sequence[dict[str, Any]]) -> list[str]:
    """Returns the markdown rows of the table per method: runs, its chains' stages, their tokens and wall, eval wall.

    A stage shared with another method counts in both; `of them shared` says how many of its stages are.
    """
    users: dict[str, set[str]] = {}
    for manifest in manifests:
        for stage in manifest.get("stages", []):
            users.setdefault(stage["hash"], set()).add(manifest["method"])
    rows = [
        "| method | runs | stages | of them shared | stage tokens | stage wall s | eval wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in dict.fromkeys(m["method"] for m in manifests):
        own = [m for m in manifests if m["method"] == method]
        stages = {s.hash: s for m in own for s in stage_costs(profile, m)}
        shared = sum(1 for h in stages if len(users[h]) > 1)
        tokens, wall = sum(s.tokens for s in stages.values()), sum(s.wall_s for s in stages.values())
        evaluation = sum(float(m.get("wall_s", {}).get("eval") or 0.0) for m in own)
        rows.append(f"| {method} | {len(own)} | {len(stages)} | {shared} | {tokens} | {wall:.1f} | {evaluation:.1f} |")
    return rows


def cost_tables(profile: Profile, runs: Path) -> list[str]:
    """Returns REPORT.md's "Where the time goes" lines: the table per stage kind and name, then per method."""
    lines = ["### Where the time goes", ""]
    manifests = list(complete_manifests(profile, runs))
    if not manifests:
        return [*lines, "No complete run in the store.", ""]
    return [
        *lines,
        "Per stage kind and name, from the complete runs' manifests: each stage trained (one hash) counted once,",
        "however many runs reuse it. Tokens: every non-padding token of its batches; epochs: tokens / the tokens",
        "of the rows it read (for `mixed`, its rows drawn from D_world and D_look up to the budgets, so about 1;",
        "`harness data build` prints its epochs of each corpus); a dash for grpo, which plays episodes. Wall: the",
        "stage's own training time, as recorded when it was trained.",
        "",
        *stage_table(profile, manifests),
        "",
        "Per method, over its runs: the stages of its chains, a stage shared with another method counted in",
        "each method that uses it (`of them shared`), and the wall time of its evaluations.",
        "",
        *method_table(profile, manifests),
        "",
    ]
