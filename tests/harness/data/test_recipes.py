"""The data recipes (docs/design.md#data-recipes), checked against the oracle row by row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.config import DataSpec
from harness.core.registry import make_task
from harness.core.traces import ForesightBlock, ReactTurn, parse_turn, round_p
from harness.data.recipes import build_corpora, corpus_stats, count_tokens, mixed_rows, save_corpora
from harness.data.reference import reference_policy

SMOKE = {"n_nodes": 8, "horizon": 6, "n_train": 20, "n_dev": 4, "n_test": 12}
DATA = DataSpec(look_k=2, world_episodes=40, outcome_every=2, expert_share=0.2)


@pytest.fixture(scope="module")
def task():
    return make_task("graph-nav", SMOKE)


@pytest.fixture(scope="module")
def corpora(task):
    return build_corpora(task, DATA, seed=0)


def test_d_expert_is_react_and_masks_agent_segments(corpora) -> None:
    row = corpora.expert[0]
    assert row["agent"][0] is False and row["agent"][1::2] == [True] * (len(row["texts"]) // 2)
    for text in row["texts"][1::2]:
        assert isinstance(parse_turn(text, "react"), ReactTurn)
    for text in row["texts"][2::2]:
        assert text.startswith("obs ")


def test_d_look_blocks_are_the_truth(task, corpora) -> None:
    assert len(corpora.look) == len(corpora.expert) == len(corpora.expert_episodes)
    for row, episode in zip(corpora.look, corpora.expert_episodes):
        blocks = [parse_turn(t, "foresight") for t in row["texts"][1::2]]
        assert len(blocks) == len(episode.actions)
        for i, block in enumerate(blocks):
            assert isinstance(block, ForesightBlock)
            assert block.plan == tuple(episode.actions[i : i + 2])
            assert block.rollout == tuple(episode.observations[i : i + 2])
            assert block.p == round_p(reference_policy(task, DATA, 0).q(episode.states[i], block.plan))
            assert block.action == episode.actions[i]


def test_d_world_lines_and_expert_share(corpora) -> None:
    world_rows = [r for r in corpora.world if r["id"].startswith("world-") and not r["id"].startswith("world-expert")]
    expert_rows = [r for r in corpora.world if r["id"].startswith("world-expert")]
    assert len(world_rows) == DATA.world_episodes
    for row in world_rows:
        for line in row["text"].strip().split("\n"):
            assert line.startswith("world ") and " -> " in line
    world_tokens = sum(count_tokens(r["text"]) for r in world_rows)
    expert_tokens = sum(count_tokens(r["text"]) for r in expert_rows)
    longest = max(count_tokens(r["text"]) for r in expert_rows)
    # Expert rows are added until their share reaches 0.2; the last row may overshoot by one row.
    assert expert_tokens >= 0.2 / 0.8 * world_tokens
    assert expert_tokens - longest < 0.2 / 0.8 * world_tokens


def test_same_seed_same_data_other_seed_other_data(task, corpora) -> None:
    again = build_corpora(task, DATA, seed=0)
    other = build_corpora(task, DATA, seed=1)
    assert again.look.to_dict() == corpora.look.to_dict()
    assert again.world.to_dict() == corpora.world.to_dict()
    assert other.look.to_dict() != corpora.look.to_dict()


def test_stats_and_atomic_save(tmp_path: Path, corpora) -> None:
    stats = corpus_stats(corpora)
    assert stats["D_look"]["rows"] == len(corpora.look)
    assert stats["D_look"]["agent_tokens"] < stats["D_look"]["tokens"]
    assert 0.0 <= stats["coverage"]["test_needs_unseen"] <= 1.0
    out = save_corpora(corpora, tmp_path / "data", stats)
    assert sorted(p.name for p in out.iterdir()) == ["D_expert.jsonl", "D_look.jsonl", "D_world.jsonl", "stats.json"]
    assert json.loads((out / "stats.json").read_text())["D_look"]["rows"] == len(corpora.look)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_mixed_rows_draw_each_corpus_to_its_budget_with_its_loss(corpora) -> None:
    """foresight-no-order's stage: D_world rows to one budget at the full LM loss, D_look rows to another at
    the agent-token loss, drawn in a seed-drawn order (cycled when a budget exceeds its corpus)."""
    world_budget, look_budget = 300, 10_000
    rows = mixed_rows(corpora, world_budget, look_budget, seed=0)
    world = [r for r in rows if r["kind"] == "world"]
    look = [r for r in rows if r["kind"] == "look"]
    assert len(world) + len(look) == len(rows)
    world_tokens = sum(count_tokens(r["text"]) for r in world)
    look_tokens = sum(count_tokens(r["text"]) for r in look)
    # Rows are added until the budget is reached: the last one may overshoot by one row.
    assert world_budget <= world_tokens < world_budget + max(count_tokens(r["text"]) for r in world)
    assert look_budget <= look_tokens < look_budget + max(count_tokens(r["text"]) for r in look)
    assert len(look) > len(corpora.look)  # the look budget is larger than D_look: cycled
    assert all(all(r["agent"]) for r in world)  # every world token is a target
    look_by_id = {r["id"]: r for r in corpora.look}
    assert all(r["agent"] == look_by_id[r["id"]]["agent"] for r in look)  # fe-sft's masks kept
    world_ids = {r["id"] for r in corpora.world}
    assert {r["id"] for r in world} <= world_ids
    assert mixed_rows(corpora, world_budget, look_budget, seed=0).to_dict() == rows.to_dict()
    assert mixed_rows(corpora, world_budget, look_budget, seed=1)["id"] != rows["id"]
