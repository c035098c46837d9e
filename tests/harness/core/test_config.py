"""Profiles load as data, reject malformed input with a HarnessError, and hash stably."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.config import DataSpec, ModelSpec, config_hash, load_profile
from harness.core.errors import HarnessError

WORLDS = {"graph-nav", "kb-search", "countdown"}


@pytest.mark.parametrize(
    ("name", "tasks"),
    [
        ("smoke", WORLDS),
        ("default", WORLDS),
        ("paper", WORLDS | {"gsm8k", "hotpotqa"}),
        ("pretrained-smoke", {"gsm8k", "hotpotqa"}),
    ],
)
def test_shipped_profiles_load(name: str, tasks: set[str]) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert set(profile.tasks) == tasks
    assert isinstance(profile.model, ModelSpec) and isinstance(profile.data, DataSpec)


def test_default_profile_has_three_seeds() -> None:
    assert load_profile("default").seeds == [0, 1, 2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks: [1, 2", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("tasks: {graph-nav: {}}\nbogus: 1\n", "unknown key 'bogus'"),
        ("tasks: {graph-nav: {}}\ndata: {look_k: two}\n", "data.look_k must be int"),
        ("tasks: {graph-nav: {}}\nseeds: 3\n", "seeds must be a list"),
        ("seeds: [0]\n", "names no tasks"),
        ("tasks: {graph-nav: {}}\nmodel: {lora: 1}\n", "model.lora must be bool"),
    ],
)
def test_malformed_profiles(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(HarnessError, match=message):
        load_profile(str(path))


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(HarnessError, match="unknown profile 'fast'.*default.*paper.*smoke"):
        load_profile("fast")


def test_overrides_apply() -> None:
    profile = load_profile("smoke", {"data.look_k": 3, "seeds": [4]})
    assert profile.data.look_k == 3 and profile.seeds == [4]


def test_config_hash_changes_with_any_field() -> None:
    base = config_hash(DataSpec(), "graph-nav", 0)
    assert base == config_hash(DataSpec(), "graph-nav", 0)
    assert base != config_hash(DataSpec(look_k=3), "graph-nav", 0)
    assert base != config_hash(DataSpec(), "graph-nav", 1)
    assert len(base) == 16
