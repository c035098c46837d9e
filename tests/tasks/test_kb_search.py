"""kb-search: BM25 retrieval, the oracle (expert, Q*), splits and held-out coverage."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.registry import make_task
from harness.core.traces import RESERVED
from harness.data.recipes import coverage, expert_episodes, world_episodes
from tasks.base import INVALID_ACTION, expert_episode, explore
from tasks.kb_search import RELATIONS, Bm25Index, KbSearch, KbSearchConfig

SMOKE = {"n_people": 12, "n_companies": 3, "n_cities": 4, "n_countries": 2, "n_train": 12, "n_dev": 2, "n_test": 8}


@pytest.fixture(scope="module")
def task() -> KbSearch:
    return KbSearch(KbSearchConfig())


def run(task: KbSearch, state, actions: list[str]):
    """Returns the final state and the observations of `actions` from `state`."""
    rng = np.random.default_rng(0)
    observations = []
    for action in actions:
        result = task.step(state, action, rng)
        state = result.state
        observations.append(result.observation)
    return state, observations


def test_expert_query_ranks_every_fact_document_first(task):
    assert len(task.fact_doc) == 2 * 40 + 8 + 10
    for (head, relation), doc in task.fact_doc.items():
        assert task.index.search([head, relation]) == (doc,)
        scores = task.index.scores([head, relation])
        assert scores[doc] > np.delete(scores, doc).max()
    wide = KbSearch(KbSearchConfig(top_k=3))
    for (head, relation), doc in wide.fact_doc.items():
        hits = wide.index.search([head, relation])
        assert len(hits) == 3 and hits[0] == doc


def test_bm25_ranking_by_hand():
    index = Bm25Index(["a b c", "a d e", "f g h"], top_k=3)
    # Lucene BM25, k1 = 1.5, b = 0.75, all documents of average length 3: a matched word adds
    # idf * 1 / (1 + 1.5) with idf = ln(1 + (N - df + 0.5) / (df + 0.5)), N = 3.
    idf_a, idf_b = math.log(1 + 1.5 / 2.5), math.log(1 + 2.5 / 1.5)
    scores = index.scores(["a", "b"])
    assert scores == pytest.approx([0.4 * (idf_a + idf_b), 0.4 * idf_a, 0.0], rel=1e-6)
    assert index.search(["a", "b"]) == (0, 1)
    assert index.search(["b", "a", "zzz"]) == (0, 1)
    assert index.search(["d", "a"]) == (1, 0)
    assert index.search(["a"]) == (0, 1)  # a tie goes to the lower document index
    assert index.search(["zzz"]) == ()
    # Words are indexed as given: no stemming, no stopwords, "born_in" is one token.
    words = Bm25Index(["x is a y", "born_in q w", "borns in"], top_k=2)
    assert words.search(["is"]) == (0,) and words.search(["a"]) == (0,)
    assert words.search(["born_in"]) == (1,) and words.search(["born"]) == ()


def test_kb_has_one_fact_per_relation_and_valid_names(task):
    names = task.people + task.companies + task.cities + task.countries
    assert len(set(names)) == len(names) == 62
    assert all(re.fullmatch(r"[a-z]{4,6}", n) for n in names)
    assert not set(names) & (set(RESERVED) | {"none", "need", "is", "a", "no"})
    for p in task.people:
        assert task.tail[(p, "born_in")] in task.cities and task.tail[(p, "works_for")] in task.companies
    assert all(task.tail[(c, "based_in")] in task.cities for c in task.companies)
    assert {task.tail[(c, "located_in")] for c in task.cities} == set(task.countries)
    assert len(task.docs) == 98 + 62 and task.docs[-1].endswith(" is a country")


def test_q_star_hand_cases(task):
    question = next(q for q in task.splits(0).test if q.relations == ("born_in", "located_in"))
    state = task.reset(question)
    city = task.tail[(question.entity, "born_in")]
    right = [f"search {question.entity} born_in", f"search {city} located_in", f"answer {question.answer}"]
    assert task.q_star(state, right) == 1.0
    assert task.q_star(state, right[:1]) == 1.0
    assert task.q_star(state, [f"answer {city}"]) == 0.0
    assert task.q_star(state, []) == 1.0
    # 2 hops, extra_turns 1: horizon 2 + 1 + 1 = 4. Two wasted turns leave 2, the expert needs
    # 3 (two searches, one answer), so it runs out; one wasted turn leaves exactly 3.
    assert task.horizon(state) == 4
    assert task.q_star(state, ["search zzz", "plan x act y"]) == 0.0
    assert task.q_star(state, ["search zzz"]) == 1.0
    assert task.q_star(state, [f"search {city} located_in", "search zzz"]) == 1.0
    tight = KbSearch(KbSearchConfig(extra_turns=0))
    assert tight.q_star(tight.reset(question), ["search zzz"]) == 0.0
    end, observations = run(task, state, right)
    assert observations[-1] == "correct" and end.done and end.success
    assert task.q_star(end, ["answer nobody"]) == 1.0


@pytest.mark.parametrize("knobs", [{}, SMOKE, {"top_k": 3, "three_hop_share": 1.0}, {"world_seed": 7}])
def test_expert_solves_every_question(knobs):
    task = make_task("kb-search", knobs)
    splits = task.splits(0)
    for question in splits.train + splits.dev + splits.test:
        episode = expert_episode(task, question, np.random.default_rng(0))
        assert episode.success and episode.observations[-1] == "correct"
        assert len(episode.actions) == len(question.relations) + 1
        assert task.q_star(task.reset(question), []) == 1.0
        assert task.required(question) <= episode.final_state.retrieved


def test_garbage_actions_burn_a_turn_and_draw_once(task):
    state = task.reset(task.splits(0).test[0])
    cases = {
        "": INVALID_ACTION,
        "search": INVALID_ACTION,
        "answer": INVALID_ACTION,
        "plan x act y": INVALID_ACTION,
        "search zzz": "no results",
        "  \t\n": INVALID_ACTION,
        "search \x00 é": "no results",
        "answer nobody": "wrong",
    }
    for action, expected in cases.items():
        rng, twin = np.random.default_rng(3), np.random.default_rng(3)
        result = task.step(state, action, rng)
        twin.random()
        assert rng.random() == twin.random()
        assert result.observation == expected
        assert result.state.t == 1 and result.state.retrieved == frozenset()
        assert result.done == (action == "answer nobody") and result.reward == 0.0
    # Searching for a name matches its documents even without a relation word.
    result = task.step(state, f"search {state.entity}", np.random.default_rng(0))
    assert result.observation.startswith(f"{state.entity} ") and len(result.state.retrieved) == 1


def test_episode_ends_at_horizon(task):
    state = task.reset(task.splits(0).test[0])
    end, observations = run(task, state, ["search zzz"] * task.horizon(state))
    assert end.done and not end.success and observations == ["no results"] * task.horizon(state)


def test_splits_are_deterministic_disjoint_and_seeded():
    a, b = KbSearch(KbSearchConfig()), KbSearch(KbSearchConfig())
    assert a.docs == b.docs
    assert a.splits(0) == b.splits(0)
    for seed in (0, 1, 2):
        splits = a.splits(seed)
        assert (len(splits.train), len(splits.dev), len(splits.test)) == (50, 8, 40)
        keys = [{(q.entity, q.relations) for q in part} for part in (splits.train, splits.dev, splits.test)]
        assert sum(map(len, keys)) == 98
        assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
        assert splits.test[0].id == f"kb-search-s{seed}-test-0"
    assert [(q.entity, q.relations) for q in a.splits(0).test] != [(q.entity, q.relations) for q in a.splits(1).test]
    assert KbSearch(KbSearchConfig(world_seed=1)).docs != a.docs


@pytest.mark.parametrize(
    "knobs",
    [
        {"heldout_share": 0.0},
        {"heldout_share": 0.25},
        {"heldout_share": 1.0},
        # All 3-hop with a city per company: a covered test question often has to swap with its train partner.
        {"heldout_share": 0.0, "three_hop_share": 1.0, "n_cities": 12, "n_companies": 12},
    ],
)
def test_heldout_share_sets_unseen_test_share(knobs):
    task = make_task("kb-search", {**SMOKE, **knobs})
    for seed in range(3):
        splits = task.splits(seed)
        cov = coverage(task, splits, expert_episodes(task, splits.train, seed), [])
        assert cov["test_needs_unseen"] == round(knobs["heldout_share"] * 8) / 8


def test_heldout_coverage_at_default_knobs(task):
    splits = task.splits(0)
    experts = expert_episodes(task, splits.train, 0)
    world = world_episodes(task, 2000, 0)
    cov = coverage(task, splits, experts, world)
    print(f"kb-search held-out coverage (seed 0, 2000 exploration episodes): {cov}")
    assert cov["test_needs_unseen"] >= task.config.heldout_share - 0.1
    assert cov["unseen_in_world"] >= 0.95
    assert cov["test_needs_unseen"] <= task.config.heldout_share + 0.1


def test_knob_validation():
    with pytest.raises(HarnessError, match="top_k"):
        KbSearchConfig.from_knobs("kb-search", {"top_k": 0})
    with pytest.raises(HarnessError, match="unknown key .n_planets. in tasks.kb-search"):
        KbSearchConfig.from_knobs("kb-search", {"n_planets": 3})
    with pytest.raises(HarnessError, match="n_countries"):
        KbSearchConfig.from_knobs("kb-search", {"n_countries": 20})
    with pytest.raises(HarnessError, match="n_people"):
        KbSearchConfig.from_knobs("kb-search", {"n_people": 20})
    with pytest.raises(HarnessError, match="n_train"):
        KbSearchConfig.from_knobs("kb-search", {"n_train": 5})
    assert KbSearchConfig.from_knobs("kb-search", SMOKE).n_people == 12


def test_words_stay_in_vocabulary(task):
    vocabulary = set(task.vocabulary())
    splits = task.splits(0)
    episodes = [expert_episode(task, q, np.random.default_rng(0)) for q in splits.train + splits.test]
    policies = ["random", "epsilon-greedy"] * 100
    episodes += [explore(task, np.random.default_rng([5, i]), p) for i, p in enumerate(policies)]
    for episode in episodes:
        texts = [episode.prompt, *episode.actions, *episode.observations]
        texts += [task.describe(s) for s in episode.states] + [task.thought(s) for s in episode.states]
        for text in texts:
            assert set(text.split()) <= vocabulary, text
        for text in episode.actions + episode.observations:
            assert not set(text.split()) & set(RESERVED), text
        for state in episode.states:
            assert all(a.split()[0] in ("search", "answer") for a in task.legal_actions(state))
    assert {"born_in", "located_in", "|", "no", "results"} <= vocabulary
    assert not set(task.vocabulary()) & set(RESERVED)


def test_legal_actions_and_items(task):
    state = task.reset(task.splits(0).test[0])
    assert task.legal_actions(state) == [f"search {state.entity} {r}" for r in RELATIONS] + [f"answer {state.entity}"]
    result = task.step(state, task.expert(state), np.random.default_rng(0))
    head, _, tail = result.observation.split()
    assert task.items(state, task.expert(state), result.state) == result.state.retrieved
    assert f"answer {tail}" in task.legal_actions(result.state)
    assert task.thought(state) == f"need {state.relations[0]} of {head}"
