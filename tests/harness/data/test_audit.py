"""The contamination audit (harness.data.audit): no dev or test instance starts a training episode."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.data import recipes
from harness.data.audit import _share_in_text, counter_free_pattern, wider_matches
from harness.data.recipes import build_corpora
from harness.training import train as train_module
from tasks.base import EXPLORER_POLICIES, Splits, eval_keys, explore, explorer, normalized_text, play
from tests.cli_inprocess import run

PROFILES = ("smoke", "default", "paper")


@pytest.mark.slow
@pytest.mark.parametrize("profile_name", PROFILES)
def test_no_eval_instance_starts_a_training_episode(profile_name: str) -> None:
    profile = load_profile(profile_name)
    for name in profile.tasks:
        if hasattr(profile.tasks[name], "data"):
            continue  # gsm8k and hotpotqa read files no test has; audited on generated sets in tests/tasks
        task = make_task(name, profile.tasks[name])
        for seed in (0, 1, 2):
            audits = build_corpora(task, profile.data, seed).audit
            assert [a.corpus for a in audits] == ["D_expert", "D_look", "D_world", "rl-prompts", "few-shot"]
            assert [a.eval_starts for a in audits] == [0] * 5, (profile_name, name, seed)
            assert all(a.episodes > 0 for a in audits)


def test_exploration_never_starts_at_an_excluded_instance() -> None:
    task = make_task("kb-search", load_profile("smoke").tasks["kb-search"])
    banned = eval_keys(task, task.splits(0))
    starts = [normalized_text(explore(task, np.random.default_rng(i), "random", banned).prompt) for i in range(300)]
    assert not set(starts) & banned
    # Without the exclusion, the same draws do start at evaluation instances: the check has teeth.
    unbanned = {normalized_text(explore(task, np.random.default_rng(i), "random").prompt) for i in range(300)}
    assert unbanned & banned


def test_share_of_eval_states_in_text_by_hand() -> None:
    task = make_task("graph-nav", load_profile("smoke").tasks["graph-nav"])
    splits = task.splits(0)
    evals = (*splits.dev, *splits.test)
    start = task.reset(evals[0])
    first, described = task.prompt(start), task.describe(start)
    share = pytest.approx(1 / len(evals))
    # The prompt counts as a whole line; inside a longer line (another instance whose text starts
    # the same way, as a kb-search question extended by one more relation) it does not.
    assert _share_in_text([f"x\n{first}\nthink"], task, splits) == share
    assert _share_in_text([f"x {first} left 3"], task, splits) == 0.0
    # The description counts as whole words, glued to another word it does not.
    assert _share_in_text([f"world {described} act go"], task, splits) == share
    assert _share_in_text([f"world {described}9"], task, splits) == 0.0


def test_a_start_state_matches_whatever_its_turn_counter_says() -> None:
    pattern = counter_free_pattern("goal n7 at n3 left 5")
    assert re.search(pattern, "x goal n7 at n3 left 2 act go a")
    assert re.search(pattern, "goal n7 at n3 left 5")
    assert not re.search(pattern, "goal n7 at n3 left 2x")  # glued to another word
    assert not re.search(pattern, "goal n7 at n33 left 2")  # another node
    assert not re.search(pattern, "agoal n7 at n3 left 2")


@pytest.mark.parametrize("name", ["graph-nav", "kb-search", "countdown"])
def test_a_description_ends_with_the_turns_left(name: str) -> None:
    """The audit's counter-free match relies on it (the Task protocol's describe)."""
    task = make_task(name, load_profile("smoke").tasks[name])
    state = task.reset(task.splits(0).test[0])
    first = task.describe(state).rsplit(" ", 1)
    after = task.step(state, task.legal_actions(state)[0], np.random.default_rng(0)).state
    assert int(task.describe(after).rsplit(" ", 1)[1]) == int(first[1]) - 1


def test_graph_nav_counts_a_start_state_met_at_another_turn_count() -> None:
    task = make_task("graph-nav", load_profile("smoke").tasks["graph-nav"])
    one = task.splits(0).test[0]
    described = task.describe(task.reset(one))
    elsewhere = described.rsplit(" ", 1)[0] + " 1"
    splits = Splits((), (), (one,))
    assert wider_matches([f"world {elsewhere} act go"], task, splits) == (1, 0)
    assert wider_matches([f"world {described} act go"], task, splits) == (1, 0)
    assert wider_matches(["world goal n0 at n0 left 1"], task, Splits((), (), ())) == (0, 0)
    # The exact measure (b) sees only the first text: the turn counter hid the second.
    assert _share_in_text([f"world {elsewhere} act go"], task, splits) == 0.0


def test_kb_search_counts_a_question_inside_a_longer_one_and_its_sub_questions() -> None:
    task = make_task("kb-search", load_profile("smoke").tasks["kb-search"])
    two_hop = next(q for q in task.splits(0).test if len(q.relations) == 2)
    e, (r1, r2) = two_hop.entity, two_hop.relations
    t = task.tail[(e, r1)]
    splits = Splits((), (), (two_hop,))
    assert wider_matches([f"question {e} {r1} {r2} located_in facts none turns 5"], task, splits) == (0, 1)
    assert wider_matches([f"question {e} {r1}"], task, splits) == (0, 1)  # its one-hop prefix asked
    assert wider_matches([f"x question {t} {r2} facts none turns 3"], task, splits) == (0, 1)  # from the middle
    assert wider_matches([f"question {t} {r1}"], task, splits) == (0, 0)  # another chain
    assert wider_matches([f"question {e} {r1}x"], task, splits) == (0, 0)
    # The question itself at another turn count is the counter-free match, and holds its sub-questions too.
    start = task.describe(task.reset(two_hop)).rsplit(" ", 1)[0]
    assert wider_matches([f"{start} 1"], task, splits) == (1, 1)


def test_a_planted_test_instance_is_refused(monkeypatch, capsys, tmp_path: Path) -> None:
    """One exploration episode that starts at a test instance: build_corpora, and so train, refuse it."""
    real = recipes.world_episodes

    def planted(task, n, seed):
        instance = task.splits(seed).test[0]
        rng = np.random.default_rng(0)
        return real(task, n - 1, seed) + [play(task, instance, explorer(task, EXPLORER_POLICIES[0]), rng)]

    monkeypatch.setattr(recipes, "world_episodes", planted)
    monkeypatch.setattr(train_module, "_LAST_CORPORA", {})
    code, out, err = run(
        monkeypatch, capsys, "train", "--method", "react", "--task", "graph-nav", "--profile", "smoke",
        "--cache", str(tmp_path / "cache"),
    )  # fmt: skip
    assert code == 2
    assert err.strip() == (
        "error: contamination: D_world of graph-nav seed 0 starts 1 training episode(s) at dev/test instances; "
        "no evaluation instance may reach a training corpus"
    )
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
