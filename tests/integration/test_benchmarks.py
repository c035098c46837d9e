"""gsm8k and hotpotqa through the engine: data build, lm-eval probes, the chat prompt, and training on them.

The data are generated files (tests/synth_data.py). The tiny model runs every method here; the
pretrained model (SmolLM2-135M-Instruct with LoRA) runs react-prompt and react, the rest of its
measurements are in docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.agent import chat_prompt
from harness.core.config import load_profile
from harness.core.fields import as_dict
from harness.core.registry import make_task
from harness.evaluation.probes.items import PROBE_FILES, probe_items
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer, save_checkpoint
from harness.training.sft import tokenize_rows
from tests.cli_inprocess import run
from tests.synth_data import knobs_for, synth_folder

SMOKE = load_profile("smoke")
TASKS = ("gsm8k", "hotpotqa")


# hotpotqa's data build solves the reference policy's exact values over 40+ train questions (seconds
# to minutes on shared cores): heavy. gsm8k's takes about a second and stays in the default run.
@pytest.mark.parametrize("name", ["gsm8k", pytest.param("hotpotqa", marks=pytest.mark.heavy)])
def test_data_build_counts_and_keeps_test_out_of_training(monkeypatch, capsys, tmp_path: Path, name: str) -> None:
    args = ["data", "build", "--task", name, "--profile", "smoke", "--data", str(synth_folder(name))]
    code, out, err = run(monkeypatch, capsys, *args, "--out", str(tmp_path / "d"))
    assert code == 0, err
    assert "expert success on train: 100%" in out
    assert out.count("eval instances starting one=0 (must be 0)") == 5  # the contamination audit, a = 0
    assert "records   train_pool=" in out and "duplicates_dropped=0" in out
    if name == "gsm8k":
        assert "unparsed_annotations=0 inexact_annotations=0" in out
    task = make_task(name, {**as_dict(SMOKE.tasks.get(name, {})), "data": str(synth_folder(name))})
    held_out = {i.id for i in task.splits(0).test + task.splits(0).dev}
    for corpus in ("D_expert", "D_look", "D_world"):
        rows = [json.loads(x) for x in (tmp_path / "d" / f"{corpus}.jsonl").read_text().splitlines()]
        assert rows and not {r["instance_id"] for r in rows} & held_out
        prompts = {i.question for i in task.splits(0).test}
        assert not any(p in r["text"] for r in rows for p in prompts)


@pytest.mark.heavy  # lm-eval runs the tiny model over two probes per task
@pytest.mark.parametrize("name", TASKS)
def test_probe_items_and_the_probe_command(monkeypatch, capsys, tmp_path: Path, name: str) -> None:
    task = make_task(name, knobs_for(name))
    items = probe_items(task, SMOKE.data, 0)
    first = items["next_obs"][0]
    state = task.reset(task.splits(0).test[0])
    assert first["context"].startswith(f"world {task.describe(state)} act ")
    if name == "gsm8k":
        assert all(r["target"] in ("error", "correct", "wrong", "invalid action") or r["target"][0].isdigit()
                   for r in items["next_obs"])  # fmt: skip
    assert {r["q_star"] for r in items["calibration"]} <= {0.0, 1.0}  # exact: the answer-reading expert's value
    assert all(0.0 <= r["q_ref"] <= 1.0 for r in items["calibration"])  # the reference policy's exact value
    assert any(0.0 < r["q_ref"] < 1.0 for r in items["calibration"])
    tokenizer = build_tokenizer(task.vocabulary())
    checkpoint = save_checkpoint(
        build_tiny_model(ModelConfig(32, 2, 2, 64, 512), tokenizer, 0), tokenizer, tmp_path / "m"
    )
    code, out, err = run(
        monkeypatch, capsys, "probe", "--model", str(checkpoint), "--task", name, "--profile", "smoke",
        "--data", str(synth_folder(name)), "--limit", "4", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 0, err
    found = json.loads((tmp_path / "out" / "probes.json").read_text())["tasks"][name]
    assert set(found) == set(PROBE_FILES) and found["next_obs"]["items"] == 4
    assert 0 <= found["calibration"]["brier"] <= 1


@pytest.mark.heavy  # reads SmolLM2's tokenizer from its GGUF file
def test_chat_template_wraps_the_prompt_the_same_way_in_training_and_play() -> None:
    task = make_task("gsm8k", knobs_for("gsm8k"))
    tiny = build_tokenizer(["question", "a"])
    assert chat_prompt(tiny, task, "react", "question a", "x\n") == "x\nquestion a\n"  # no template: as before
    tokenizer = _smollm_tokenizer()
    text = chat_prompt(tokenizer, task, "foresight", "question a")
    assert text.startswith("<|im_start|>system\nSolve the task in turns. Before each action, look ahead")
    assert "'calc <expression>'" in text and text.endswith(
        "<|im_start|>user\nquestion a<|im_end|>\n<|im_start|>assistant\n"
    )
    from datasets import Dataset

    rows = Dataset.from_dict(
        {"texts": [["question a\n", "think x act calc 1+1\n"]], "agent": [[False, True]], "kind": ["expert"]}
    )
    encoded = tokenize_rows(rows, tokenizer, False, 512, lambda p: chat_prompt(tokenizer, task, "foresight", p))
    ids, mask = encoded["input_ids"][0], encoded["assistant_masks"][0]
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids and sum(mask[: len(prompt_ids)]) == 0
    assert tokenizer.decode([i for i, m in zip(ids, mask) if m]) == "think x act calc 1+1\n"


def _smollm_tokenizer():
    """Returns SmolLM2-135M-Instruct's tokenizer (it has a chat template), read from the GGUF file."""
    from transformers import AutoTokenizer

    from harness.training.models import smollm2_gguf_path

    path = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.mark.heavy
@pytest.mark.parametrize(
    ("name", "method"),
    [("gsm8k", "react"), ("gsm8k", "foresight"), ("hotpotqa", "sft-mimic"), ("hotpotqa", "vanilla-rl")],
)
def test_the_methods_train_and_evaluate_with_the_tiny_model(
    monkeypatch, capsys, tmp_path: Path, name: str, method: str
) -> None:
    args = ["eval", "--method", method, "--task", name, "--profile", "smoke", "--data", str(synth_folder(name))]
    code, out, err = run(monkeypatch, capsys, *args, "--cache", str(tmp_path / "c"), "--runs", str(tmp_path / "r"))
    assert code == 0, err
    metrics = json.loads((tmp_path / "r" / "smoke" / name / method / "seed0" / "metrics.json").read_text())
    assert metrics["n_episodes"] == 16 and 0 <= metrics["format_rate"] <= 1
    if name == "hotpotqa":
        assert 0 <= metrics["task_scores"]["f1"] <= 1


@pytest.mark.heavy
def test_smollm2_with_lora_runs_foresight_on_hotpotqa(tmp_path: Path, smollm2_checkpoint: Path) -> None:
    """All three foresight stages (WM-AMT, FE-SFT, FC-RL) on SmolLM2 with LoRA, at a few hundred tokens."""
    from harness.evaluation.evaluate import evaluate_run

    tiny_budget = {"tokens": 600, "lr": 0.001, "batch_size": 2, "max_length": 384, "save_every": 1000}
    profile = load_profile(
        "pretrained-smoke",
        {
            "model.path": str(smollm2_checkpoint),
            "model.lora_rank": 4,
            "data.world_episodes": 6,
            "stages.wm-amt": tiny_budget,
            "stages.fe-sft": tiny_budget,
            "stages.fc-rl": {"steps": 1, "prompts_per_step": 1, "num_generations": 2, "max_turn_tokens": 40},
            "eval.batch_size": 2,
            "eval.max_turn_tokens": 40,
        },
    )
    knobs = {**knobs_for("hotpotqa"), "n_train": 6, "n_test": 2}
    profile = dataclasses.replace(profile, tasks={"hotpotqa": knobs})
    path, metrics = evaluate_run("foresight", "hotpotqa", profile, 0, tmp_path / "c", tmp_path / "r")
    manifest = json.loads((path / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["wm-amt", "fe-sft", "fc-rl"]
    assert all(s["tokens_seen"] for s in manifest["stages"])
    assert metrics["n_episodes"] == 2 and 0 <= metrics["format_rate"] <= 1 and "f1" in metrics["task_scores"]
    first = json.loads((path / "episodes.jsonl").read_text().splitlines()[0])
    assert first["prompt"].startswith("question ") and first["turns"]
