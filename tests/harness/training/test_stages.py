"""Stage hashes change when, and only when, something the stage depends on changes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.registry import make_task, method_factory
from harness.training.stages import (
    BOARD_DIR,
    GrpoSettings,
    SftSettings,
    StageSpec,
    file_checksums,
    settings_for,
    stage_hash,
    stage_problem,
    stage_status,
    weight_checksums,
)
from harness.training.train import data_hash

BASE = StageSpec("fe-sft", kind="sft", data="look", fmt="foresight", settings=SftSettings())


def test_hash_ignores_display_name_only() -> None:
    h = stage_hash(BASE, "in", "data")
    assert stage_hash(dataclasses.replace(BASE, name="sft"), "in", "data") == h


@pytest.mark.parametrize(
    "changed",
    [
        dataclasses.replace(BASE, kind="wm-amt"),
        dataclasses.replace(BASE, data="expert"),
        dataclasses.replace(BASE, fmt="react"),
        dataclasses.replace(BASE, settings=SftSettings(tokens=1)),
        dataclasses.replace(BASE, settings=SftSettings(lr=0.5)),
    ],
)
def test_hash_changes_with_each_field(changed: StageSpec) -> None:
    assert stage_hash(changed, "in", "data") != stage_hash(BASE, "in", "data")


def test_data_hash_changes_with_the_task_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose expert or dynamics changed (a new version) never reuses stages trained on its old data."""
    profile = load_profile("smoke")
    task = make_task("countdown", profile.tasks["countdown"])
    h = data_hash(task, profile, 0)
    assert data_hash(make_task("countdown", profile.tasks["countdown"]), profile, 0) == h
    assert data_hash(task, profile, 1) != h
    monkeypatch.setattr(type(task), "version", task.version + 1)
    assert data_hash(task, profile, 0) != h


def test_hash_changes_with_inputs() -> None:
    h = stage_hash(BASE, "in", "data")
    assert stage_hash(BASE, "other", "data") != h
    assert stage_hash(BASE, "in", "other") != h


def test_methods_share_prefixes() -> None:
    profile = load_profile("smoke")
    stages = {name: method_factory(name)(profile).stages for name in ("react", "vanilla-rl", "sft-mimic", "foresight")}
    assert stages["vanilla-rl"][0] == stages["react"][0]
    no_amt = method_factory("foresight-no-amt")(profile).stages
    assert no_amt[0] == stages["sft-mimic"][0] and no_amt[1] == stages["foresight"][2]
    assert method_factory("foresight-no-rl")(profile).stages == stages["foresight"][:2]
    success_only = method_factory("foresight-success-only")(profile).stages
    assert success_only[:2] == stages["foresight"][:2] and success_only[2] != stages["foresight"][2]
    assert success_only[2].settings.lambda_cal == 0.0 and stages["foresight"][2].settings.lambda_cal > 0


def test_mimic_matches_the_budget_of_wm_amt_plus_fe_sft() -> None:
    profile = load_profile("smoke")
    foresight = method_factory("foresight")(profile).stages
    mimic = method_factory("sft-mimic")(profile).stages[0]
    assert mimic.settings.tokens == foresight[0].settings.tokens + foresight[1].settings.tokens
    unmatched = method_factory("sft-mimic")(dataclasses.replace(profile, match_budget=False)).stages[0]
    assert unmatched.settings.tokens == foresight[1].settings.tokens


def test_settings_reject_bad_keys() -> None:
    assert settings_for("grpo", {"steps": 3}, "x") == GrpoSettings(steps=3)
    with pytest.raises(HarnessError, match="unknown key 'epochs'"):
        settings_for("sft", {"epochs": 3}, "stages.sft")
    with pytest.raises(HarnessError, match="stages.sft.tokens must be int"):
        settings_for("sft", {"tokens": "many"}, "stages.sft")


def _stage(directory: Path) -> Path:
    """Returns a finished stage directory with weights, a tokenizer, a log and an event file, and its stage.json."""
    (directory / BOARD_DIR).mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(b"weights")
    (directory / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0, "b": 1}}}')
    (directory / "log.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    (directory / BOARD_DIR / "events.out.tfevents.1").write_bytes(b"event")
    (directory / "stage.json").write_text(json.dumps({"files": file_checksums(directory)}))
    return directory


def test_stage_json_lists_every_file_at_any_depth(tmp_path: Path) -> None:
    listed = json.loads((_stage(tmp_path) / "stage.json").read_text())["files"]
    assert sorted(listed) == ["log.jsonl", "model.safetensors", "tensorboard/events.out.tfevents.1", "tokenizer.json"]
    assert listed["log.jsonl"] == hashlib.sha256(b'{"step": 1, "loss": 2.0}\n').hexdigest()


def test_stage_status(tmp_path: Path) -> None:
    assert stage_status(tmp_path) == "missing"
    _stage(tmp_path)
    assert stage_status(tmp_path) == "complete"
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert stage_status(tmp_path) == "corrupt"
    (tmp_path / "stage.json").write_text("{not json")
    assert stage_status(tmp_path) == "corrupt"


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        (
            lambda d: (d / "tokenizer.json").write_text('{"model": {"vocab": {"a": 1, "b": 0}}}'),
            "tokenizer.json does not match the sha256 in stage.json",
        ),
        (lambda d: (d / "log.jsonl").unlink(), "log.jsonl is missing"),
        (lambda d: (d / BOARD_DIR / "events.out.tfevents.2").write_bytes(b"x"), "tensorboard/events.out.tfevents.2 is"),
        (lambda d: (d / "notes.txt").write_text("mine"), "notes.txt is not listed in stage.json"),
    ],
    ids=["tokenizer-ids-swapped", "log-missing", "extra-event-file", "extra-file"],
)
def test_any_file_missing_changed_or_extra_makes_a_stage_corrupt(tmp_path: Path, plant, problem: str) -> None:
    plant(_stage(tmp_path))
    assert stage_status(tmp_path) == "corrupt"
    assert stage_problem(tmp_path).startswith(problem)


def test_a_stage_json_from_before_full_checksums_checks_its_weights_and_says_so_once(tmp_path: Path, capsys) -> None:
    _stage(tmp_path)
    (tmp_path / "stage.json").write_text(json.dumps({"checksums": weight_checksums(tmp_path)}))
    (tmp_path / "tokenizer.json").write_text("{}")  # not listed in such a stage.json: not checked
    assert stage_status(tmp_path) == "complete" and stage_status(tmp_path) == "complete"
    assert capsys.readouterr().err == (
        f"note: {tmp_path / 'stage.json'} predates full checksums: its weights check out, its other files are"
        " not checked (delete the directory to retrain it with them)\n"
    )
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert stage_problem(tmp_path) == "model.safetensors does not match the sha256 in stage.json"


def test_length_grouped_order_batches_similar_lengths_and_uses_every_row_per_epoch() -> None:
    from harness.training.sft import length_grouped_order

    lengths = [1, 9, 2, 8, 3, 7, 4, 6]  # rows 0..7
    order = length_grouped_order(lengths, batch_size=2, steps=8, rng=np.random.default_rng(0), group=2)
    assert len(order) == 16
    # Two epochs of 8 rows, each a permutation of all rows (8 rows make whole groups and batches).
    assert sorted(order[:8]) == list(range(8)) and sorted(order[8:]) == list(range(8))
    # Within a group of 2 batches (4 rows), sorting pairs the two shortest and the two longest rows.
    for start in range(0, 16, 4):
        group = order[start : start + 4]
        first, second = sorted(group[:2], key=lengths.__getitem__), sorted(group[2:], key=lengths.__getitem__)
        low, high = sorted([first, second], key=lambda b: lengths[b[0]])
        assert max(lengths[i] for i in low) <= min(lengths[i] for i in high)
    # The order is a function of the generator alone.
    again = length_grouped_order(lengths, batch_size=2, steps=8, rng=np.random.default_rng(0), group=2)
    assert again == order


def test_length_grouped_order_leaves_a_short_batch_to_the_next_epoch() -> None:
    from harness.training.sft import length_grouped_order

    order = length_grouped_order([5, 1, 3, 2, 4], batch_size=2, steps=4, rng=np.random.default_rng(1), group=10)
    assert len(order) == 8
    assert len(set(order[:4])) == 4  # two whole batches from the first epoch, the fifth row waits


def test_scale_rewards_is_checked_and_group_keeps_old_stage_hashes() -> None:
    with pytest.raises(HarnessError, match="scale_rewards must be one of group, batch, none"):
        settings_for("grpo", {"scale_rewards": "std"}, "stages.fc-rl")

    def key(values: dict) -> str:
        return stage_hash(StageSpec("fc-rl", "grpo", "rl", "foresight", settings_for("grpo", values, "x")), "in", "d")

    assert key({"scale_rewards": "group"}) == key({})
    assert len({key({}), key({"scale_rewards": "none"}), key({"scale_rewards": "batch"})}) == 3
