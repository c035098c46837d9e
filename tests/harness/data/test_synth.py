"""harness data synth: generated GSM8K- and HotpotQA-schema records are correct, seeded and loadable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.registry import make_task
from harness.data.synth import gsm8k_records, hotpotqa_records, synth
from tasks.base import expert_episode
from tasks.gsm8k import evaluate, parse_solution, show
from tests.cli_inprocess import run


def test_gsm8k_annotations_are_correct_and_the_gold_follows_from_them() -> None:
    records = gsm8k_records(50, seed=3)
    assert len({r["question"] for r in records}) == 50
    for r in records:
        calls, values, gold, unparsed, inexact = parse_solution(r["answer"], "x")
        assert (unparsed, inexact) == (0, 0) and len(calls) >= 2
        assert values[-1] == gold  # the last computation is the answer
        assert all(show(evaluate(c)) == v for c, v in zip(calls, values))


def test_hotpotqa_records_are_grounded_in_their_paragraphs() -> None:
    records = hotpotqa_records(40, seed=5)
    for r in records:
        titles = [t for t, _ in r["context"]]
        support = [t for t, _ in r["supporting_facts"]]
        assert len(titles) == 2 + 8 and set(support) <= set(titles) and len(set(support)) == 2
        sentences = dict(r["context"])
        facts = [sentences[t][i] for t, i in r["supporting_facts"]]
        if r["type"] == "bridge":
            assert r["answer"] in facts[1] and support[1] in facts[0]  # hop 1 names hop 2, hop 2 holds the answer
        else:
            same = facts[0].split()[-1] == facts[1].split()[-1]
            assert r["answer"] == ("yes" if same else "no")


def test_same_seed_same_bytes_and_folders_split_disjointly(tmp_path: Path) -> None:
    for schema in ("gsm8k", "hotpotqa"):
        a = synth(schema, 30, 7, tmp_path / f"a-{schema}.jsonl")[0].read_bytes()
        b = synth(schema, 30, 7, tmp_path / f"b-{schema}.jsonl")[0].read_bytes()
        c = synth(schema, 30, 8, tmp_path / f"c-{schema}.jsonl")[0].read_bytes()
        assert a == b and a != c
        train, test = synth(schema, 30, 7, tmp_path / schema)
        questions = [{json.loads(x)["question"] for x in f.read_text().splitlines()} for f in (train, test)]
        assert len(questions[1]) == 6 and len(questions[0]) == 24 and not questions[0] & questions[1]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_every_generated_file_loads_and_the_expert_solves_it(tmp_path: Path, suffix: str) -> None:
    for schema in ("gsm8k", "hotpotqa"):
        layout = "hub" if suffix == ".parquet" else "original"
        if schema == "gsm8k" and suffix == ".parquet":
            layout = "original"
        path = synth(schema, 25, 1, tmp_path / f"{schema}{suffix}", layout)[0]
        task = make_task(schema, {"data": str(path), "n_train": 15, "n_dev": 2, "n_test": 5})
        splits = task.splits(0)
        for i, instance in enumerate(splits.train + splits.test):
            assert expert_episode(task, instance, np.random.default_rng(i)).success


def test_parquet_needs_the_hub_layout_and_bad_arguments_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(HarnessError, match="parquet holds the hub layout only"):
        synth("hotpotqa", 5, 0, tmp_path / "x.parquet")
    code, out, err = run(monkeypatch, capsys, "data", "synth", "--schema", "gsm8k", "--n", "0", "--out", "x.jsonl")
    assert code == 2 and err == "error: --n must be at least 1, got 0\n"
    out_file = tmp_path / "g.jsonl"
    code, out, err = run(monkeypatch, capsys, "data", "synth", "--schema", "gsm8k", "--n", "3", "--out", str(out_file))
    assert code == 0 and out == f"wrote {out_file}\n"
    assert len(out_file.read_text().splitlines()) == 3
