"""gsm8k: the calculator, the solution parser, hand-written records in the official schema, splits."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.registry import make_task
from tasks.base import NoisyExpert, expert_episode
from tasks.gsm8k import CalcError, evaluate, parse_solution, read_number, show
from tests.synth_data import synth_folder

# Hand-written records in the schema of the official jsonl files (not taken from GSM8K).
HAND = [
    {
        "question": "Tova has 48 beads and uses half of them. She then buys 30 more. How many beads does she have?",
        "answer": "She uses 48/2=<<48/2=24>>24 beads.\nShe has 24+30=<<24+30=54>>54 beads.\n#### 54",
    },
    {
        "question": "A box holds 1,200 pins. 3 boxes are shared by 8 people. How many pins each?",
        "answer": "There are 1,200*3=<<1,200*3=3,600>>3,600 pins.\nEach gets 3600/8=<<3600/8=450>>450.\n#### 450",
    },
    {
        "question": "Ren splits 10 litres into 3 jugs. How much is in each jug, to two decimals?",
        # A rounded annotation (inexact), a malformed one (no '='), and one never closed.
        "answer": "Each jug holds 10/3=<<10/3=3.33>>3.33 litres <<oops>> and <<3+.\n#### 3.33",
    },
]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_calculator_is_exact_and_refuses_anything_else() -> None:
    assert evaluate("48/2") == 24
    assert evaluate("(1+2)*3") == 9
    assert evaluate("-3+5") == 2
    assert evaluate("2*-3") == -6
    assert evaluate("1,000*2") == 2000
    assert evaluate("0.1+0.2") == Fraction(3, 10)
    assert evaluate("10 - 4 - 3") == 3  # left associative
    assert evaluate("24/4/2") == 3
    assert show(evaluate("10/4")) == "2.5"
    assert show(evaluate("1/3")) == "1/3"
    assert show(evaluate("-7/8")) == "-0.875"
    assert show(Fraction(-5, 2)) == "-2.5"
    for bad in ("2**3", "__import__('os')", "1/0", "(1+2", "1+2)", "", "3 4", "a+1", "1" * 300):
        with pytest.raises(CalcError):
            evaluate(bad)
    assert read_number("$1,234.") == 1234
    assert read_number("twelve") is None


def test_solution_parser_counts_malformed_annotations() -> None:
    calls, values, gold, unparsed, inexact = parse_solution(HAND[0]["answer"], "x")
    assert (calls, values, gold, unparsed, inexact) == (["48/2", "24+30"], ["24", "54"], "54", 0, 0)
    calls, values, gold, unparsed, inexact = parse_solution(HAND[1]["answer"], "x")
    assert (calls, values, gold) == (["1200*3", "3600/8"], ["3600", "450"], "450")
    calls, values, gold, unparsed, inexact = parse_solution(HAND[2]["answer"], "x")
    assert (calls, values, gold, unparsed, inexact) == (["10/3"], ["10/3"], "3.33", 2, 1)
    with pytest.raises(HarnessError, match="f.jsonl:3: the answer has no final"):
        parse_solution("2+2=<<2+2=4>>4", "f.jsonl:3")


def test_hand_records_play_to_success_and_report_annotations(tmp_path: Path) -> None:
    # Four variants of each record (start keys must differ: a repeated question is dropped from train).
    path = write_jsonl(
        tmp_path / "hand.jsonl", [dict(r, question=f"{r['question']} Case {i}.") for i in range(4) for r in HAND]
    )
    task = make_task("gsm8k", {"data": str(path), "n_train": 6, "n_dev": 1, "n_test": 2})
    assert task.annotation_report() == {
        "records": 12,
        "annotations": 4 * 5,
        "unparsed_annotations": 4 * 2,
        "inexact_annotations": 4,
    }
    problem = next(p for p in task.pools.train if p.gold == "54")
    episode = expert_episode(task, problem, np.random.default_rng(0))
    assert episode.actions == ["calc 48/2", "calc 24+30", "answer 54"]
    assert episode.observations == ["24", "54", "correct"]
    assert episode.success
    start = task.reset(problem)
    assert task.q_star(start, []) == 1.0
    assert task.q_star(start, ["answer 53"]) == 0.0
    assert task.q_star(start, ["answer 54.0"]) == 1.0
    assert task.q_star(start, ["calc 1+1"]) == 1.0  # horizon 2 calls + answer + 1 slack turn: room for one detour
    assert task.q_star(start, ["calc 1+1", "calc 1+1"]) == 0.0
    assert task.step(start, "calc 2**3", np.random.default_rng(0)).observation == "error"
    # The rounded gold (3.33) is what the record says; 10/3 exactly is not it.
    rounded = next(p for p in task.pools.train + task.pools.dev + task.pools.test if p.gold == "3.33")
    assert task.q_star(task.reset(rounded), ["calc 10/3", "answer 10/3"]) == 0.0


def test_bad_record_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(HAND[0]) + "\n\n" + json.dumps({"question": "q", "answer": "no final line"}) + "\n")
    with pytest.raises(HarnessError, match=r"bad.jsonl:3: the answer has no final '#### <number>' line"):
        make_task("gsm8k", {"data": str(path)}).splits(0)
    path.write_text(json.dumps(HAND[0]) + "\n{not json\n")
    with pytest.raises(HarnessError, match=r"bad.jsonl:2: not valid JSON"):
        make_task("gsm8k", {"data": str(path)}).splits(0)
    path.write_text(json.dumps({"question": "", "answer": "#### 1"}) + "\n")
    with pytest.raises(HarnessError, match=r"bad.jsonl:1: 'question'"):
        make_task("gsm8k", {"data": str(path)}).splits(0)


def test_splits_keep_the_files_test_and_never_leak() -> None:
    folder = synth_folder("gsm8k")
    task = make_task("gsm8k", {"data": str(folder), "n_train": 30, "n_dev": 5, "n_test": 10})
    s0, s1 = task.splits(0), task.splits(1)
    test_questions = {json.loads(line)["question"] for line in (folder / "test.jsonl").read_text().splitlines()}
    assert {p.question for p in s0.test} <= test_questions and len(s0.test) == 10
    assert s0.test == s1.test and s0.dev == s1.dev  # a standard benchmark's dev and test are fixed
    assert s0.train != s1.train  # the seed draws the train instances
    for s in (s0, s1):
        train_ids = {p.id for p in s.train}
        assert not train_ids & {p.id for p in s.dev + s.test}
    rng = np.random.default_rng(0)
    explored = {task.sample_instance(rng).id for _ in range(300)}
    assert not explored & {p.id for p in s0.dev + s0.test}
    assert explored <= {p.id for p in task.pools.train}


def counting_records(n: int) -> list[dict[str, str]]:
    """Returns n gsm8k records with distinct questions, each solved by one annotation."""
    return [
        {"question": f"Ana has {i} pens and buys 1 more. How many?", "answer": f"<<{i}+1={i + 1}>>\n#### {i + 1}"}
        for i in range(n)
    ]


def test_a_file_without_records_or_too_small_for_its_pools_is_refused_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(HarnessError) as info:
        make_task("gsm8k", {"data": str(empty)}).splits(0)
    assert str(info.value) == f"task gsm8k: data {empty} holds no records"
    # 20 records, no test file: test takes 20 // 5 = 4; dev takes min(n_dev 20, 16 - 1) = 15; train keeps 1.
    path = write_jsonl(tmp_path / "small.jsonl", counting_records(20))
    with pytest.raises(HarnessError) as info:
        make_task("gsm8k", {"data": str(path)}).splits(0)
    assert str(info.value) == (
        f"task gsm8k: data {path} gives a train pool smaller than its dev pool (train 1, dev 15, test 4 from 20 "
        "records): too small to train on; lower n_dev (now 20) or give more records"
    )
    task = make_task("gsm8k", {"data": str(path), "n_dev": 3})
    assert task.record_report() == {"train_pool": 13, "dev_pool": 3, "test_pool": 4, "duplicates_dropped": 0}


def test_no_data_and_no_cache_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    with pytest.raises(HarnessError, match=r"task gsm8k has no data: give --data PATH") as info:
        make_task("gsm8k", {}).splits(0)
    assert "\n" not in str(info.value)


def test_a_bad_record_on_the_command_line_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path: Path) -> None:
    from tests.cli_inprocess import run

    path = write_jsonl(tmp_path / "train.jsonl", [HAND[0], {"question": "q", "answer": "4"}])
    code, out, err = run(monkeypatch, capsys, "data", "build", "--task", "gsm8k", "--data", str(path), "--out", "d")
    assert code == 2 and out == ""
    assert err == f"error: {path}:2: the answer has no final '#### <number>' line\n"


def one_call_task(tmp_path: Path):
    """Returns gsm8k over one test problem, "2+3=<<2+3=5>>5 #### 5" (horizon 3), and its start state."""
    tiny = {"question": "Ana has 2 pens and buys 3 more. How many pens?", "answer": "2+3=<<2+3=5>>5\n#### 5"}
    other = {"question": "Bo has 4 cups and 1 more. How many?", "answer": "4+1=<<4+1=5>>5\n#### 5"}
    write_jsonl(tmp_path / "train.jsonl", [other])
    write_jsonl(tmp_path / "test.jsonl", [tiny])
    task = make_task("gsm8k", {"data": str(tmp_path), "n_train": 1, "n_dev": 0, "n_test": 1})
    return task, task.reset(task.pools.test[0])


def test_outcomes_and_the_canonical_state(tmp_path: Path) -> None:
    task, start = one_call_task(tmp_path)
    rng = np.random.default_rng(0)
    for action in ("calc 2+3", "answer 5", "calc 1/0", "dance"):
        [(prob, step)] = task.outcomes(start, action)
        assert prob == 1.0 and step == task.step(start, action, rng)
    # The results are a set in increasing order: the order of the calls does not make another state.
    a = task.step(task.step(start, "calc 2*3", rng).state, "calc 1+1", rng).state
    b = task.step(task.step(start, "calc 1+1", rng).state, "calc 2*3", rng).state
    assert a == b and a.results == ("2", "6") and task.describe(a).endswith("results 2 | 6 turns 1")
    again = task.step(a, "calc 3+3", rng)
    assert again.observation == "6" and again.state.results == ("2", "6")  # returned once, kept once
    # A result equal to the next annotation's value counts as its replay: after "calc 5", the answer.
    assert task.expert(task.step(start, "calc 5", rng).state) == "answer 5"
    assert task.expert(task.step(start, "calc 1+1", rng).state) == "calc 2+3"


def test_reference_policy_values_by_hand(tmp_path: Path) -> None:
    """The epsilon-noisy expert (D_look's p) on a one-call problem, computed by hand.

    Legal at the start: calc 2+3, answer 2, answer 3; once 5 is held: calc 2+3, answer 5, 2, 3.
    Horizon 3. With epsilon e, holding 5 at t=2: v2 = (1 - e) + e/4 (only 'answer 5' succeeds);
    at t=1: v1 = (1 - e) + e (1/4 + v2/4); at the start: v0 = (1 - e) v1 + e v1/3.
    """
    task, start = one_call_task(tmp_path)
    e = 0.5
    v2 = (1 - e) + e / 4
    v1 = (1 - e) + e * (1 / 4 + v2 / 4)
    v0 = (1 - e) * v1 + e * v1 / 3
    policy = NoisyExpert(task, e)
    assert policy.value(start) == pytest.approx(v0) == pytest.approx(0.46875)
    # Planned 'answer 5' at once: it succeeds when kept; a random move instead is worth v1/3.
    assert policy.q(start, ["answer 5"]) == pytest.approx((1 - e) + e * v1 / 3)
    assert NoisyExpert(task, 1.0).value(start) == pytest.approx(5 / 48)  # uniformly random moves
    assert NoisyExpert(task, 0.0).q(start, ["answer 4"]) == task.q_star(start, ["answer 4"]) == 0.0
