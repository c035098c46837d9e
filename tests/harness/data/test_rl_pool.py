"""The RL prompt pool (harness.data.rl_pool): train instances plus held-out-like ones, never dev or test."""

from __future__ import annotations

import pytest

from harness.agent import AgentEpisode
from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.registry import make_task
from harness.data.recipes import expert_episodes
from harness.data.rl_pool import rl_pool
from harness.training.grpo import RolloutStats
from harness.training.stages import StageSpec, settings_for, stage_hash
from tasks.base import episode_items, eval_keys, match_key, start_key


def task_of(profile: str, name: str):
    return make_task(name, load_profile(profile).tasks[name])


def test_share_zero_is_the_train_split_and_the_prompt_set_grpo_always_had() -> None:
    task = task_of("smoke", "graph-nav")
    pool = rl_pool(task, 0, 0.0)
    train = task.splits(0).train
    assert pool.instances == tuple(train) and pool.heldout_like == () and pool.wanted == 0
    # graph-nav's 40 smoke train instances have 7 distinct prompts: one row each, as before the pool existed
    assert pool.prompt_rows(task) == sorted({task.prompt(task.reset(i)) for i in train})
    assert len(pool.prompt_rows(task)) == 7


@pytest.mark.parametrize("name", ["graph-nav", "kb-search", "countdown"])
def test_heldout_like_instances_are_outside_every_split_and_need_a_part_no_expert_shows(name: str) -> None:
    task = task_of("smoke", name)
    splits = task.splits(0)
    pool = rl_pool(task, 0, 0.5)
    assert pool.heldout_like, name
    shown = frozenset().union(*(episode_items(task, e) for e in expert_episodes(task, splits.train, 0)))
    train_keys = {match_key(task, i) for i in splits.train}
    keys = [match_key(task, i) for i in pool.heldout_like]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & (eval_keys(task, splits) | train_keys)
    assert all(task.required(i) - shown for i in pool.heldout_like)
    assert pool.train == tuple(splits.train)
    assert rl_pool(task, 0, 0.5) == pool  # seeded by the split seed alone
    assert rl_pool(task, 1, 0.5).heldout_like != pool.heldout_like


def test_the_share_counts_rows_and_few_found_instances_are_repeated_to_keep_it() -> None:
    # kb-search smoke: 12 distinct train questions, share 0.5 -> 12 held-out-like, found in full, once each
    kb = task_of("smoke", "kb-search")
    pool = rl_pool(kb, 0, 0.5)
    assert (pool.wanted, len(pool.heldout_like), pool.copies) == (12, 12, 1)
    assert len(pool.prompt_rows(kb)) == 24
    assert rl_pool(kb, 0, 0.25).wanted == 4  # round(12 * 0.25 / 0.75)
    # graph-nav default: 292 distinct train prompts, but only 21 start-goal pairs outside dev and test
    # need an edge no train expert walks (the held-out pockets): each is repeated round(292 / 21) = 14 times.
    # Both counts from enumerating all 24 * 23 start-goal pairs (not the pool's draws), under the named streams.
    nav = task_of("default", "graph-nav")
    pool = rl_pool(nav, 0, 0.5)
    assert (pool.wanted, len(pool.heldout_like), pool.copies) == (292, 21, 14)
    rows = pool.prompt_rows(nav)
    held = {start_key(nav, i) for i in pool.heldout_like}
    assert sum(r in held for r in rows) == 21 * 14 and len(rows) == 292 + 294
    assert pool.summary() == {"train_instances": 1000, "heldout_like": 21, "heldout_like_wanted": 292,
                              "heldout_like_copies": 14}  # fmt: skip


def test_a_share_outside_zero_to_one_is_refused_and_zero_keeps_old_stage_hashes() -> None:
    for bad in (1.0, -0.1):
        with pytest.raises(HarnessError, match="heldout_like_share must be in"):
            settings_for("grpo", {"heldout_like_share": bad}, "stages.fc-rl")

    def key(values: dict) -> str:
        return stage_hash(StageSpec("fc-rl", "grpo", "rl", "foresight", settings_for("grpo", values, "x")), "in", "d")

    assert key({"heldout_like_share": 0.0}) == key({})
    assert key({"heldout_like_share": 0.5}) != key({})


def test_rollout_stats_give_each_kind_its_own_success() -> None:
    def episode(instance_id: str, success: bool) -> AgentEpisode:
        return AgentEpisode(instance_id=instance_id, prompt="", success=success)

    stats = RolloutStats(frozenset({"h1", "h2"}))
    stats.add([episode("a", True), episode("b", True), episode("c", False), episode("h1", False), episode("h2", True)])
    found = stats.pop()
    assert found["train/success"] == 0.6
    assert found["train/success_plain"] == pytest.approx(2 / 3, abs=1e-6)
    assert found["train/success_heldout_like"] == 0.5
    plain = RolloutStats()
    plain.add([episode("a", True)])
    assert "train/success_plain" not in plain.pop()


def test_rollout_stats_score_the_first_turn_p_as_the_calibration_reward_does() -> None:
    from harness.agent import Turn
    from harness.core.traces import ForesightBlock, ParseError

    def episode(instance_id: str, p: float | None, success: bool) -> AgentEpisode:
        parsed = ForesightBlock(("a",), ("o",), p, "a") if p is not None else ParseError("no block", "")
        turn = Turn(state=None, output="", parsed=parsed, action="a", observation="o")
        return AgentEpisode(instance_id, "", turns=[turn], success=success)

    stats = RolloutStats(frozenset({"h"}))
    stats.add([episode("a", 1.0, True), episode("b", 0.8, False), episode("h", 0.2, False), episode("c", None, True)])
    found = stats.pop()
    # first turns parsed in a, b, h: (0)^2, (0.8)^2, (0.2)^2 -> 0.68 / 3; their success 1 of 3
    assert found["train/p_first_brier"] == pytest.approx(0.68 / 3, abs=1e-6)
    assert found["train/p_first_success"] == pytest.approx(1 / 3, abs=1e-6)
    assert found["train/p_first_mean"] == pytest.approx(2.0 / 3, abs=1e-6)
    assert found["train/p_first_mean_plain"] == 0.9 and found["train/p_first_mean_heldout_like"] == 0.2
