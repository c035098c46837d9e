"""`eval.split: dev` plays the dev split (for choosing a configuration) and says so; test runs keep their bytes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.fields import as_dict
from harness.core.registry import make_task
from harness.evaluation.evaluate import evaluate_run


def _profile(split: str | None):
    overrides = {"eval.batch_size": 8, "eval.max_turn_tokens": 24, "eval.candidates": 0}
    if split is not None:
        overrides["eval.split"] = split
    profile = load_profile("smoke", overrides)
    knobs = {**as_dict(profile.tasks["graph-nav"]), "n_dev": 3, "n_test": 5}
    return dataclasses.replace(profile, tasks={"graph-nav": knobs})


def _instance_ids(path: Path) -> list[str]:
    return [json.loads(line)["instance_id"] for line in (path / "episodes.jsonl").read_text().splitlines()]


def test_dev_split_plays_the_dev_instances_and_names_the_split(tmp_path: Path) -> None:
    # react-prompt trains nothing: the initial model plays with a two-shot prefix.
    dev_profile, test_profile = _profile("dev"), _profile(None)
    splits = make_task("graph-nav", dev_profile.tasks["graph-nav"]).splits(0)
    dev_path, dev = evaluate_run("react-prompt", "graph-nav", dev_profile, 0, tmp_path / "c", tmp_path / "dev")
    test_path, test = evaluate_run("react-prompt", "graph-nav", test_profile, 0, tmp_path / "c", tmp_path / "test")
    assert _instance_ids(dev_path) == [inst.id for inst in splits.dev]
    assert _instance_ids(test_path) == [inst.id for inst in splits.test]
    assert not set(_instance_ids(dev_path)) & set(_instance_ids(test_path))
    assert dev["n_episodes"] == 3 and test["n_episodes"] == 5
    assert dev["identity"]["split"] == "dev"
    assert "split" not in test["identity"]  # a test run's metrics.json is what it was before the option


def test_an_unknown_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="eval.split must be one of test, dev"):
        evaluate_run("react-prompt", "graph-nav", _profile("train"), 0, tmp_path / "c", tmp_path / "r")
    assert not (tmp_path / "r").exists()
