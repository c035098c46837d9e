"""Seeds: the same seed gives the same splits and initial weights (to the byte); another seed, others."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.training.train import initial_checkpoint

SMOKE = load_profile("smoke")


def _split_ids(name: str, seed: int) -> list[list[str]]:
    splits = make_task(name, SMOKE.tasks[name]).splits(seed)  # a new task object each time
    return [[instance.id for instance in part] for part in (splits.train, splits.dev, splits.test)]


@pytest.mark.parametrize("name", sorted(SMOKE.tasks))
def test_seeds_give_splits(name: str) -> None:
    first = _split_ids(name, 0)
    assert _split_ids(name, 0) == first
    other = _split_ids(name, 1)
    assert other[0] != first[0] and other[2] != first[2]


def test_seeds_give_initial_weights(tmp_path: Path) -> None:
    first = initial_checkpoint(SMOKE, 0, tmp_path / "a").base / "model.safetensors"
    same = initial_checkpoint(SMOKE, 0, tmp_path / "b").base / "model.safetensors"
    other = initial_checkpoint(SMOKE, 1, tmp_path / "a").base / "model.safetensors"
    assert first.read_bytes() == same.read_bytes()
    assert first.read_bytes() != other.read_bytes()
