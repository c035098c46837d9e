"""Resuming a killed stage: the newest complete TRL checkpoint, and a log cut back to it."""

from __future__ import annotations

import json
from pathlib import Path

from harness.training.sft import latest_checkpoint, resume_point


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
