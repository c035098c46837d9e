"""The lm-eval probes: items from the test split, the calibration metric, and lm-eval's glue with the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.evaluation.probes.items import CHOICES, PROBE_FILES, probe_items
from harness.evaluation.probes.runner import run_probes
from harness.evaluation.probes.scoring import (
    brier_of_pairs,
    calibration_results,
    ece_of_pairs,
    q_error_of_pairs,
    success_probability,
)
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer, save_checkpoint
from harness.training.train import suite_vocabulary
from tests.cli_inprocess import run

SMOKE = load_profile("smoke")


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny model over the smoke vocabulary (what every method starts from)."""
    tokenizer = build_tokenizer(suite_vocabulary(SMOKE))
    return build_tiny_model(ModelConfig(32, 2, 2, 64, 512), tokenizer, 0).eval(), tokenizer


def test_success_probability_normalizes_the_two_words() -> None:
    assert success_probability(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert success_probability(math.log(0.1), math.log(0.3)) == pytest.approx(0.25)
    assert success_probability(0.0, -1000.0) == 1.0  # no overflow either way
    assert success_probability(-1000.0, 0.0) == pytest.approx(0.0, abs=1e-300)


def test_calibration_metric_against_hand_computed_values() -> None:
    # p = 0.75, 0.25, 0.9, 0.5: each item's two words share a probability mass of 0.5.
    ps, outcomes, q_refs = [0.75, 0.25, 0.9, 0.5], [1, 0, 0, 1], [0.8, 0.2, 0.5, 0.5]
    items = [
        calibration_results(
            {"outcome": y, "q_ref": q, "q_star": 1.0}, [(math.log(p * 0.5), False), (math.log((1 - p) * 0.5), False)]
        )
        for p, y, q in zip(ps, outcomes, q_refs)
    ]
    assert [i["mean_p"] for i in items] == pytest.approx(ps)
    assert [i["choice_mass"] for i in items] == pytest.approx([0.5] * 4)
    # Brier: (0.25^2 + 0.25^2 + 0.9^2 + 0.5^2) / 4 = (0.0625 + 0.0625 + 0.81 + 0.25) / 4
    assert brier_of_pairs([i["brier"] for i in items]) == pytest.approx(0.29625)
    # ECE: one item per bin (2, 5, 7, 9): (0.25 + 0.5 + 0.25 + 0.9) / 4
    assert ece_of_pairs([i["ece"] for i in items]) == pytest.approx(0.475)
    # Q-error against Q_ref (never Q*): (0.05 + 0.05 + 0.4 + 0) / 4
    assert q_error_of_pairs([i["q_error"] for i in items]) == pytest.approx(0.125)


@pytest.mark.parametrize("task_name", ["graph-nav", "kb-search", "countdown"])
def test_probe_items_ask_about_test_states(task_name: str) -> None:
    task = make_task(task_name, SMOKE.tasks[task_name])
    items = probe_items(task, SMOKE.data, 0)
    assert items == probe_items(task, SMOKE.data, 0)
    test_ids = {inst.id for inst in task.splits(0).test}
    train_ids = {inst.id for inst in task.splits(0).train}
    assert len(items["next_obs"]) == len(items["calibration"]) > len(test_ids)
    for row in items["next_obs"]:
        assert row["instance_id"] in test_ids and row["instance_id"] not in train_ids
        assert row["context"].startswith("world ") and " act " in row["context"] and row["context"].endswith(" ->")
        assert row["target"] and "\n" not in row["target"]
    for row in items["calibration"]:
        assert row["context"].endswith(" ->") and " plan " in row["context"]
        assert 1 <= len(row["plan"]) <= SMOKE.data.look_k and 0.0 <= row["q_star"] <= 1.0
        assert 0.0 <= row["q_ref"] <= 1.0
        assert CHOICES[row["label"]] == ("success" if row["outcome"] else "failure")
        if task_name != "graph-nav":
            assert row["q_star"] in (0.0, 1.0)  # deterministic worlds


@pytest.mark.parametrize("task_name", ["graph-nav", "kb-search", "countdown"])
def test_probe_outcomes_are_sampled_around_q_ref(task_name: str) -> None:
    task = make_task(task_name, SMOKE.tasks[task_name])
    rows = probe_items(task, SMOKE.data, 0)["calibration"] + probe_items(task, SMOKE.data, 1)["calibration"]
    mean_outcome = sum(r["outcome"] for r in rows) / len(rows)
    mean_q = sum(r["q_ref"] for r in rows) / len(rows)
    assert 0 < mean_q < 1 and abs(mean_outcome - mean_q) < 3 * math.sqrt(0.25 / len(rows))


def _log_likelihood(model, tokenizer, context: str, word: str) -> float:
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    word_ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([context_ids + word_ids])).logits[0].log_softmax(-1)
    return float(sum(logits[len(context_ids) - 1 + i, w] for i, w in enumerate(word_ids)))


def _greedy_answer(model, tokenizer, context: str) -> str:
    ids = torch.tensor([tokenizer(context, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=32, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return " ".join(tokenizer.decode(out[0, ids.shape[1] :]).split("\n")[0].split())


def test_lm_eval_glue_matches_direct_computation(tiny) -> None:
    """lm-eval's numbers through HFLM equal those computed straight from the model's logits."""
    model, tokenizer = tiny
    task = make_task("graph-nav", SMOKE.tasks["graph-nav"])
    items = probe_items(task, SMOKE.data, 0)
    n = 12
    calibration = items["calibration"][:n]
    ps = [
        success_probability(*(_log_likelihood(model, tokenizer, r["context"], w) for w in CHOICES)) for r in calibration
    ]
    # The model's own greedy continuation is the target of the first half, a wrong one of the rest:
    # exact match must then be exactly one half, whatever the untrained model writes.
    next_obs = [dict(r) for r in items["next_obs"][:n]]
    for i, row in enumerate(next_obs):
        answer = _greedy_answer(model, tokenizer, row["context"])
        row["target"] = answer if i < n // 2 else answer + " n0"
    results = run_probes(model, tokenizer, {"next_obs": next_obs, "calibration": calibration}, limit=None, batch_size=5)
    assert results["next_obs"]["exact_match"] == pytest.approx(0.5)
    assert results["next_obs"]["items"] == n
    cal = results["calibration"]
    outcomes = [r["outcome"] for r in calibration]
    assert cal["mean_p"] == pytest.approx(sum(ps) / n, abs=1e-6)
    assert cal["brier"] == pytest.approx(sum((p - y) ** 2 for p, y in zip(ps, outcomes)) / n, abs=1e-6)
    assert cal["q_error"] == pytest.approx(sum(abs(p - r["q_ref"]) for p, r in zip(ps, calibration)) / n, abs=1e-6)
    assert 0 <= cal["ece"] <= 1 and 0 < cal["choice_mass"] < 1


def test_probe_cli_writes_probes_json(monkeypatch, capsys, tmp_path: Path, tiny) -> None:
    model, tokenizer = tiny
    checkpoint = save_checkpoint(model, tokenizer, tmp_path / "tiny")
    code, out, _ = run(
        monkeypatch, capsys, "probe", "--model", str(checkpoint), "--task", "countdown", "--profile", "smoke",
        "--limit", "5", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 0 and "exact_match=" in out and "brier=" in out
    report = json.loads((tmp_path / "out" / "probes.json").read_text())
    assert report["profile"] == "smoke" and report["limit"] == 5 and list(report["tasks"]) == ["countdown"]
    found = report["tasks"]["countdown"]
    assert set(found) == set(PROBE_FILES)
    assert found["next_obs"]["items"] == found["calibration"]["items"] == 5
    for metric in ("exact_match",):
        assert 0 <= found["next_obs"][metric] <= 1
    for metric in ("brier", "ece", "q_error", "mean_p", "choice_mass"):
        assert 0 <= found["calibration"][metric] <= 1


def test_data_build_writes_the_probe_files(monkeypatch, capsys, tmp_path: Path) -> None:
    code, out, _ = run(
        monkeypatch, capsys, "data", "build", "--task", "countdown", "--profile", "smoke", "--out", str(tmp_path / "d")
    )
    assert code == 0 and "probe_next_obs.jsonl=" in out
    task = make_task("countdown", SMOKE.tasks["countdown"])
    expected = probe_items(task, SMOKE.data, 0)
    for name, filename in PROBE_FILES.items():
        rows = [json.loads(line) for line in (tmp_path / "d" / filename).read_text().splitlines()]
        assert rows == expected[name]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["probe", "--profile", "smoke"], "give --model PATH"),
        (["probe", "--model", "/nonexistent/model", "--profile", "smoke"], "does not exist"),
        (["probe", "--model", "/nonexistent/model", "--limit", "0"], "--limit must be at least 1"),
        (["probe", "--method", "nope", "--profile", "smoke"], "unknown method 'nope'"),
        (["probe", "--method", "react", "--task", "nope", "--profile", "smoke"], "not in profile smoke"),
    ],
)
def test_probe_bad_input_exits_2_with_one_line(monkeypatch, capsys, args: list[str], message: str) -> None:
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_probe_of_an_untrained_method_says_what_to_train(monkeypatch, capsys, tmp_path: Path) -> None:
    args = ["probe", "--method", "foresight", "--task", "graph-nav", "--profile", "smoke", "--cache", str(tmp_path)]
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 2 and "stage wm-amt is missing" in err and "harness train --method foresight" in err
