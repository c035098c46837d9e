"""Resuming a killed stage: the newest TRL checkpoint that checks out against its manifest, and a log cut back to it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from harness.training.callbacks import CheckpointManifest
from harness.training.resume import MANIFEST, checkpoint_problem, drop_damaged, write_manifest
from harness.training.work_folder import latest_checkpoint, resume_point


def _checkpoint(work: Path, step: int, state: str | None) -> None:
    (work / f"checkpoint-{step}").mkdir(parents=True)
    if state is not None:
        (work / f"checkpoint-{step}" / "trainer_state.json").write_text(state)


def test_latest_checkpoint_skips_one_cut_short_by_a_kill(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 4, '{"global_step": 4}')
    _checkpoint(tmp_path, 10, '{"global_step": 10}')
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    _checkpoint(tmp_path, 12, None)  # killed before trainer_state.json, which the Trainer writes last
    _checkpoint(tmp_path, 14, '{"global_st')  # killed while writing it
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_resume_point_cuts_the_log_back_to_the_checkpoint(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 2, "{}")
    lines = [{"step": 1, "loss": 4.0}, {"step": 2, "loss": 3.5}, {"step": 3, "loss": 3.0}, {"step": 3, "train_loss": 1}]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 4, "lo'
    (tmp_path / "log.jsonl").write_text(text)
    assert resume_point(tmp_path) == str(tmp_path / "checkpoint-2")
    assert [json.loads(line) for line in (tmp_path / "log.jsonl").open()] == lines[:2]


def test_resume_point_without_a_checkpoint_starts_the_log_over(tmp_path: Path) -> None:
    (tmp_path / "log.jsonl").write_text('{"step": 1, "loss": 4.0}\n')
    assert resume_point(tmp_path) is None
    assert (tmp_path / "log.jsonl").read_text() == ""


def _saved(work: Path, step: int, weights: bytes = b"w" * 32) -> Path:
    """Returns a checkpoint folder like the Trainer's (weights, a torch zip, json), with its manifest."""
    folder = work / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": torch.frombuffer(bytearray(weights), dtype=torch.uint8)}, str(folder / "model.safetensors"))
    torch.save({"state": torch.arange(64.0)}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    write_manifest(folder)
    return folder


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_manifest_lists_every_file_of_the_checkpoint_but_itself(tmp_path: Path) -> None:
    folder = _saved(tmp_path, 2)
    listed = json.loads((folder / MANIFEST).read_text())
    assert sorted(listed) == ["model.safetensors", "optimizer.pt", "trainer_state.json"]
    assert listed["optimizer.pt"] == hashlib.sha256((folder / "optimizer.pt").read_bytes()).hexdigest()
    assert checkpoint_problem(folder) is None


def test_a_flipped_byte_in_the_newest_weights_falls_back_to_the_previous_checkpoint(tmp_path: Path, capsys) -> None:
    previous, newest = _saved(tmp_path, 2), _saved(tmp_path, 4)
    _flip(newest / "model.safetensors", -3)  # in the tensor data: the file still parses
    assert drop_damaged(tmp_path) == previous
    assert not newest.exists() and previous.exists()
    assert capsys.readouterr().err == (
        f"warning: TRL checkpoint {newest} is damaged (model.safetensors does not match the sha256 in"
        " harness-checksums.json); dropped it, resuming from checkpoint-2\n"
    )
    assert latest_checkpoint(tmp_path) == str(previous)


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        (lambda f: (f / "harness-checksums.json").unlink(), "it has no harness-checksums.json"),
        (lambda f: (f / "optimizer.pt").unlink(), "optimizer.pt is missing"),
        (lambda f: (f / "extra.bin").write_bytes(b"x"), "extra.bin is not listed in harness-checksums.json"),
        (lambda f: _flip(f / "optimizer.pt", 100), "optimizer.pt does not match the sha256 in harness-checksums.json"),
        (
            lambda f: (f / "trainer_state.json").write_text('{"glob'),
            "trainer_state.json does not match the sha256 in harness-checksums.json",
        ),
    ],
    ids=["no-manifest", "missing-file", "extra-file", "garbled-optimizer", "truncated-state"],
)
def test_a_damaged_only_checkpoint_restarts_the_stage(tmp_path: Path, capsys, plant, problem: str) -> None:
    folder = _saved(tmp_path, 2)
    plant(folder)
    assert drop_damaged(tmp_path) is None and not folder.exists()
    assert capsys.readouterr().err == (
        f"warning: TRL checkpoint {folder} is damaged ({problem}); dropped it, restarting the stage from its input\n"
    )


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("optimizer.pt", lambda p: _flip(p, len(p.read_bytes()) // 2)),  # a member's bytes: its CRC fails
        ("optimizer.pt", lambda p: p.write_bytes(p.read_bytes()[:-40])),  # the zip directory cut off
        ("model.safetensors", lambda p: p.write_bytes(p.read_bytes()[:-5])),  # shorter than its header says
        ("trainer_state.json", lambda p: p.write_text('{"global_step": ')),
    ],
    ids=["garbled-optimizer", "truncated-optimizer", "truncated-weights", "truncated-json"],
)
def test_a_file_damaged_before_its_manifest_was_written_does_not_load(tmp_path: Path, name: str, damage) -> None:
    """A file already broken when the manifest was written matches it: its structure is checked as well."""
    folder = _saved(tmp_path, 2)
    damage(folder / name)
    write_manifest(folder)
    assert checkpoint_problem(folder) == f"{name} does not load"


def test_saving_a_checkpoint_writes_its_manifest_then_removes_the_older_ones(tmp_path: Path) -> None:
    older, newer = _saved(tmp_path, 2), _saved(tmp_path, 4)
    (newer / MANIFEST).unlink()  # as the Trainer leaves it, before on_save
    args, state = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=4, is_world_process_zero=True)
    CheckpointManifest().on_save(args, state, None)
    assert not older.exists() and (newer / MANIFEST).is_file()
    assert checkpoint_problem(newer) is None
