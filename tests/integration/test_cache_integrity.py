"""Cache integrity: damaged finished stages are refused; damaged TRL checkpoints are dropped, and the stage still
ends with an unbroken run's bytes.

`harness train --method vanilla-rl` (an sft stage of 11 steps with a TRL checkpoint every 2, then a
grpo stage of 4 steps with one every 2) on a profile smaller than smoke is killed by
harness.core.faults, a fault is planted in what the kill left, and the rerun must warn in one line
naming the checkpoint and the file, then write the very weights an uninterrupted run writes: a
resumed run equals an unbroken one (test_reliability.py), and so does one restarted from the input.
Commands run as real processes (tests/cli_processes.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.training.resume import MANIFEST, write_manifest
from tests.cli_processes import harness

pytestmark = pytest.mark.slow

PROFILE = """\
description: smaller than smoke, for the cache-integrity tests
seeds: [0]
tasks:
  graph-nav: {n_nodes: 8, horizon: 6, n_train: 24, n_dev: 2, n_test: 6}
model: {hidden_size: 32, n_layers: 2, n_heads: 2, intermediate_size: 64, max_positions: 512}
data: {look_k: 2, world_episodes: 16, outcome_every: 2, expert_share: 0.2}
stages:
  sft: {tokens: 3000, lr: 0.01, batch_size: 8, save_every: 2}
  rl: {steps: 4, prompts_per_step: 2, num_generations: 4, lr: 0.0001, max_turn_tokens: 16, save_every: 2}
"""


def _train(root: Path, profile: Path, kill: str | None = None):
    argv = ["train", "--method", "vanilla-rl", "--task", "graph-nav", "--profile", str(profile)]
    result = harness(
        [*argv, "--cache", str(root / "cache")], root / "logs", env={"HARNESS_KILL_AT": kill} if kill else {}
    )
    assert result.code == (-9 if kill else 0), result.err[-3000:]
    return result


def _stages(root: Path) -> dict[str, Path]:
    """Returns the finished stage directories of a cache by their kind (init, sft, grpo)."""
    found = {}
    for marker in (root / "cache").glob("*/stage.json"):
        found[json.loads(marker.read_text())["kind"]] = marker.parent
    return found


def _partial(root: Path) -> Path:
    (work,) = (root / "cache").glob("*.partial")
    return work


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "tiny.yaml"
    path.write_text(PROFILE)
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory, profile: Path) -> Path:
    """Returns the root of an uninterrupted training."""
    root = tmp_path_factory.mktemp("clean")
    _train(root, profile)
    assert sorted(_stages(root)) == ["grpo", "init", "sft"]
    return root


@pytest.fixture(scope="module")
def killed(tmp_path_factory, profile: Path) -> dict[str, Path]:
    """Returns roots left by a kill in the sft stage: after its checkpoint at step 2 (`after-2`), and
    between saving its checkpoint at step 4 and writing that checkpoint's manifest (`unlisted-4`)."""
    roots = {}
    for name, kill in (("after-2", "sft-step:3"), ("unlisted-4", "checkpoint-save:2")):
        roots[name] = tmp_path_factory.mktemp(name)
        _train(roots[name], profile, kill)
    return roots


def _same_as_clean(root: Path, clean: Path) -> None:
    ours, theirs = _stages(root), _stages(clean)
    for kind in ("sft", "grpo"):
        assert ours[kind].name == theirs[kind].name
        assert (ours[kind] / "model.safetensors").read_bytes() == (theirs[kind] / "model.safetensors").read_bytes()
        # A stage resumed or restarted logs as an unbroken one: the same steps, losses and rewards.
        logs = [
            [(r["step"], r.get("loss"), r.get("reward")) for r in map(json.loads, (d[kind] / "log.jsonl").open())]
            for d in (ours, theirs)
        ]
        assert logs[0] == logs[1], kind
    assert not list((root / "cache").glob("*.partial"))


def test_each_checkpoint_gets_a_manifest_and_replaces_the_older_one(killed: dict[str, Path]) -> None:
    (folder,) = _partial(killed["after-2"]).glob("checkpoint-*")
    assert folder.name == "checkpoint-2"
    listed = json.loads((folder / MANIFEST).read_text())
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"} <= set(listed)
    both = sorted(p.name for p in _partial(killed["unlisted-4"]).glob("checkpoint-*"))
    assert (
        both == ["checkpoint-2", "checkpoint-4"]
        and not (_partial(killed["unlisted-4"]) / "checkpoint-4" / MANIFEST).exists()
    )


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # in the last tensor's bytes: the file still parses
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = b"\x00" * 64
    path.write_bytes(bytes(data))


def _listed_then_flipped(path: Path) -> None:
    """Gives checkpoint-4 the manifest its killed process never wrote, then flips a byte of its weights."""
    write_manifest(path.parent)
    _flip(path)


UNMATCHED = f"does not match the sha256 in {MANIFEST}"
CASES = [
    ("after-2", "checkpoint-2/model.safetensors", _flip, f"model.safetensors {UNMATCHED}", None),
    ("after-2", "checkpoint-2/model.safetensors", _truncate, f"model.safetensors {UNMATCHED}", None),
    ("after-2", "checkpoint-2/optimizer.pt", _garble, f"optimizer.pt {UNMATCHED}", None),
    ("unlisted-4", "checkpoint-4/model.safetensors", lambda p: None, f"it has no {MANIFEST}", "checkpoint-2"),
    (
        "unlisted-4",
        "checkpoint-4/model.safetensors",
        _listed_then_flipped,
        f"model.safetensors {UNMATCHED}",
        "checkpoint-2",
    ),
]


@pytest.mark.parametrize(
    ("kill", "planted", "damage", "problem", "fallback"),
    CASES,
    ids=["flipped-weights", "truncated-weights", "garbled-optimizer", "no-manifest", "newest-flipped"],
)
def test_a_damaged_checkpoint_is_dropped_and_the_stage_ends_with_the_unbroken_bytes(
    tmp_path: Path,
    profile: Path,
    clean: Path,
    killed: dict[str, Path],
    kill: str,
    planted: str,
    damage: Callable[[Path], None],
    problem: str,
    fallback: str | None,
) -> None:
    shutil.copytree(killed[kill] / "cache", tmp_path / "cache")
    folder = _partial(tmp_path) / planted.split("/")[0]
    damage(_partial(tmp_path) / planted)
    result = _train(tmp_path, profile)
    then = f"resuming from {fallback}" if fallback else "restarting the stage from its input"
    warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: TRL checkpoint {folder} is damaged ({problem}); dropped it, {then}"]
    _same_as_clean(tmp_path, clean)


def test_the_grpo_stage_writes_manifests_too(tmp_path: Path, profile: Path, clean: Path) -> None:
    shutil.copytree(clean / "cache", tmp_path / "cache")
    shutil.rmtree(_stages(tmp_path)["grpo"])
    _train(tmp_path, profile, "grpo-step:3")
    (folder,) = _partial(tmp_path).glob("checkpoint-*")
    assert folder.name == "checkpoint-2" and {"model.safetensors", "optimizer.pt"} <= set(
        json.loads((folder / MANIFEST).read_text())
    )


def test_a_trained_stage_with_two_token_ids_swapped_is_refused(tmp_path: Path, profile: Path, clean: Path) -> None:
    shutil.copytree(clean / "cache", tmp_path / "cache")
    stage = _stages(tmp_path)["sft"]
    path = stage / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.__getitem__)[5:7]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    path.write_text(json.dumps(tokenizer))
    argv = ["train", "--method", "vanilla-rl", "--task", "graph-nav", "--profile", str(profile)]
    result = harness([*argv, "--cache", str(tmp_path / "cache")], tmp_path / "logs")
    assert result.code == 2
    assert result.err.strip() == (
        f"error: cached checkpoint {stage} is corrupt (tokenizer.json does not match the sha256 in stage.json);"
        " delete that directory to retrain it"
    )
