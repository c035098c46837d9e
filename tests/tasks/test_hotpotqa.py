"""hotpotqa: both official layouts, answer normalization and F1, search, the expert, bad records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core.errors import HarnessError
from harness.core.registry import make_task
from harness.data.synth import _hub_layout
from tasks.base import NoisyExpert, expert_episode
from tasks.hotpotqa import answer_f1, exact_match, normalize_answer, parse_record

# Hand-written records in the original HotpotQA JSON layout (not taken from HotpotQA).
HAND = [
    {
        "_id": "h1",
        "question": "Which river runs through the town where the painter Ilsa Varn was born?",
        "answer": "the Marrow River",
        "type": "bridge",
        "level": "medium",
        "supporting_facts": [["Ilsa Varn", 1], ["Oskby", 0]],
        "context": [
            ["Harbor Museum", ["The Harbor Museum shows ships.", "It opened in 1990."]],
            ["Ilsa Varn", ["Ilsa Varn is a painter.", "She was born in Oskby.", "She paints rivers."]],
            ["Oskby", ["Oskby is a town on the Marrow River.", "It has a bridge."]],
            ["Marrow Dam", ["The Marrow Dam holds the Marrow River back near Oskby."]],
        ],
    },
    {
        "_id": "h2",
        "question": "Are Oskby and Tarn both towns?",
        "answer": "yes",
        "type": "comparison",
        "level": "easy",
        "supporting_facts": [["Oskby", 0], ["Tarn", 0]],
        "context": [
            ["Tarn", ["Tarn is a town in the hills.", "act p ; -> plan words from real text."]],
            ["Oskby", ["Oskby is a town on the Marrow River."]],
            ["Harbor Museum", ["The Harbor Museum shows ships."]],
        ],
    },
]


def write_original(path: Path, records: list) -> Path:
    """Writes a pretty-printed JSON list, like the original hotpot_*_v1.1.json files."""
    path.write_text(json.dumps(records, indent=2))
    return path


def test_normalization_exact_match_and_f1_against_hand_values() -> None:
    assert normalize_answer("The  Marrow-River!") == "marrowriver"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert exact_match("marrow river", "the Marrow River")
    assert not exact_match("Marrow", "the Marrow River")
    assert answer_f1("the Eiffel tower", "Eiffel Tower") == 1.0
    assert answer_f1("big red barn", "red barn") == pytest.approx(0.8)  # p 2/3, r 1
    assert answer_f1("red", "red barn") == pytest.approx(2 / 3)  # p 1, r 1/2
    assert answer_f1("yes", "no") == 0.0
    assert answer_f1("no way", "no") == 0.0  # yes/no answers must match exactly
    assert answer_f1("cat", "dog") == 0.0


def test_both_layouts_and_parquet_give_the_same_questions(tmp_path: Path) -> None:
    original = [parse_record(r, "x") for r in HAND]
    hub = [parse_record(_hub_layout(r), "x") for r in HAND]
    assert [dataclass_fields(q) for q in original] == [dataclass_fields(q) for q in hub]
    folder = tmp_path / "data"
    folder.mkdir()
    # The train file: three variants of each record, and the two records themselves, whose questions
    # repeat the validation file's and are dropped from the train side (no question in two pools).
    variants = [dict(r, _id=f"{r['_id']}-{i}", question=f"{r['question']} ({i})") for i in range(3) for r in HAND]
    write_original(folder / "hotpot_train_v1.1.json", variants + HAND)
    pq.write_table(pa.Table.from_pylist([_hub_layout(r) for r in HAND]), folder / "validation-00000.parquet")
    task = make_task("hotpotqa", {"data": str(folder), "n_train": 4, "n_dev": 1, "n_test": 2})
    splits = task.splits(0)
    assert [q.question for q in splits.test] == [r["question"] for r in HAND]  # validation is the test pool
    assert len(splits.train) == 4 and len(splits.dev) == 1
    assert task.record_report() == {"train_pool": 5, "dev_pool": 1, "test_pool": 2, "duplicates_dropped": 2}
    test_questions = {q.question for q in splits.test}
    assert not test_questions & {q.question for q in task.pools.train + task.pools.dev}


def dataclass_fields(question) -> tuple:
    return (question.question, question.answer, question.type, question.level, question.paragraphs, question.support)


def test_search_expert_and_scores(tmp_path: Path) -> None:
    task = make_task("hotpotqa", {"data": str(write_original(tmp_path / "h.json", HAND * 3)), "sentences": 2})
    question = parse_record(HAND[0], "x")
    # An exact title wins even where BM25 alone would prefer another paragraph.
    assert question.paragraphs[task.search(question, "Oskby")][0] == "Oskby"
    assert question.paragraphs[task.search(question, "ships museum")][0] == "Harbor Museum"
    assert task.search(question, "zebra") is None
    rng = np.random.default_rng(0)
    episode = expert_episode(task, question, rng)
    assert episode.actions == ["search Ilsa Varn", "search Oskby", "answer the Marrow River"]
    assert episode.observations[0] == "Ilsa Varn : Ilsa Varn is a painter. She was born in Oskby."
    assert episode.observations[2] == "correct" and episode.success
    start = task.reset(question)
    assert task.q_star(start, []) == 1.0
    assert task.q_star(start, ["answer Oskby"]) == 0.0
    end = task.step(start, "answer Marrow", rng).state
    assert end.done and not end.success
    assert task.episode_scores(end) == {"f1": pytest.approx(2 * 0.5 * 1 / 1.5)}  # "marrow" against "marrow river"
    assert task.step(start, "search zebra", rng).observation == "no results"


def test_reserved_words_in_real_text_cannot_break_the_format(tmp_path: Path) -> None:
    question = parse_record(HAND[1], "x")
    text = " ".join(s for _, sentences in question.paragraphs for s in sentences)
    assert "Act P , - Plan" in text
    for word in ("act", "p", ";", "->", "plan"):
        assert word not in text.split()


def test_bad_records_name_file_and_line(tmp_path: Path) -> None:
    bad = dict(HAND[1], supporting_facts=[["Nowhere", 0]])
    path = write_original(tmp_path / "bad.json", [HAND[0], bad])
    # json.dumps(indent=2) puts the second record's opening brace on the line after the first record.
    line = path.read_text().splitlines().index("  {", 2) + 1
    with pytest.raises(HarnessError, match=rf"bad.json:{line}: supporting fact title 'Nowhere' is not among"):
        make_task("hotpotqa", {"data": str(path)}).splits(0)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(HAND[0]) + "\n" + json.dumps(dict(HAND[0], context=[["only a title"]])) + "\n")
    with pytest.raises(HarnessError, match=r"bad.jsonl:2: 'context' must be a list of \[title, sentences\] pairs"):
        make_task("hotpotqa", {"data": str(path)}).splits(0)
    path.write_text(json.dumps({k: v for k, v in HAND[0].items() if k != "answer"}) + "\n")
    with pytest.raises(HarnessError, match=r"bad.jsonl:1: 'answer' is missing"):
        make_task("hotpotqa", {"data": str(path)}).splits(0)


def test_a_repeated_id_or_a_sentence_id_past_its_paragraph_is_refused_naming_the_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [HAND[0], HAND[1], dict(HAND[1], question="Other?")]))
    with pytest.raises(HarnessError) as info:
        make_task("hotpotqa", {"data": str(path)}).splits(0)
    assert str(info.value) == f"{path}:3: id 'hotpotqa-h2' is also the id of another record, at {path}:2"
    # 'Ilsa Varn' has sentences 0, 1, 2; the hub layout counts the same way.
    for sent_id in (3, -1):
        facts = [["Ilsa Varn", sent_id], ["Oskby", 0]]
        for record in (dict(HAND[0], supporting_facts=facts), _hub_layout(dict(HAND[0], supporting_facts=facts))):
            with pytest.raises(HarnessError) as info:
                parse_record(record, "f.json:7")
            expected = f"f.json:7: supporting fact ('Ilsa Varn', {sent_id}) names no sentence: that paragraph has 3"
            assert str(info.value) == expected
    assert parse_record(dict(HAND[0], supporting_facts=[["Ilsa Varn", 2]]), "x").support == ("Ilsa Varn",)


def test_outcomes_canonical_found_and_reference_values_by_hand(tmp_path: Path) -> None:
    """HAND[1]: paragraphs Tarn, Oskby, Harbor Museum; support Oskby then Tarn; gold 'yes'; horizon 4."""
    task = make_task("hotpotqa", {"data": str(write_original(tmp_path / "h.json", HAND)), "n_dev": 0})
    question = parse_record(HAND[1], "x")
    start, rng = task.reset(question), np.random.default_rng(0)
    [(prob, step)] = task.outcomes(start, "search Tarn")
    assert prob == 1.0 and step == task.step(start, "search Tarn", rng)
    a = task.step(task.step(start, "search Tarn", rng).state, "search Oskby", rng).state
    b = task.step(task.step(start, "search Oskby", rng).state, "search Tarn", rng).state
    assert a == b and a.found == ("Tarn", "Oskby")  # the paragraphs' order, whatever the search order
    assert task.legal_actions(a) == [
        "search Tarn", "search Oskby", "search Harbor Museum", "answer Tarn", "answer Oskby", "answer yes", "answer no",
    ]  # fmt: skip
    # With epsilon e, from `a` (t=2): the expert answers yes; a random move is one of the 7 above.
    # At t=3 only 'answer yes' succeeds: v3 = (1 - e) + e/7 with the same titles found, and
    # (1 - e) + e/8 once Harbor Museum is found too (8 legal moves).
    e = 0.5
    v3, v3_more = (1 - e) + e / 7, (1 - e) + e / 8
    v2 = (1 - e) + e * (1 + 2 * v3 + v3_more) / 7
    policy = NoisyExpert(task, e)
    assert policy.value(a) == pytest.approx(v2) == pytest.approx(0.6932397959)
    assert policy.q(a, ["search Tarn", "answer yes"]) == pytest.approx((1 - e) * v3 + e * (1 + 2 * v3 + v3_more) / 7)
    assert NoisyExpert(task, 0.0).value(start) == task.q_star(start, []) == 1.0
