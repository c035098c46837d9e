"""A run's TensorBoard folder: the stages' event files copied under their names, eval/ with the headline metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evaluation.board import headline_scalars, write_board

METRICS = {
    "success": 0.5,
    "success_ci": {"mean": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 12},
    "format_rate": 0.9,
    "ece_first": None,  # not applicable: left out, never a zero
    "fidelity@1": 0.4,
    "cost": {"training_tokens": 4000},
}


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_headline_scalars_keep_what_applies() -> None:
    assert headline_scalars(METRICS) == {
        "eval/success": 0.5,
        "eval/format_rate": 0.9,
        "eval/fidelity@1": 0.4,
        "eval/success_ci_low": 0.25,
        "eval/success_ci_high": 0.75,
        "eval/training_tokens": 4000.0,
    }


def test_write_board_copies_stage_events_and_writes_eval(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    cache, run = tmp_path / "cache", tmp_path / "run"
    run.mkdir()
    writer = SummaryWriter(log_dir=str(cache / "abc123" / "tensorboard"))
    for step, loss in ((1, 2.0), (2, 1.5)):
        writer.add_scalar("train/loss", loss, step)
    writer.close()
    (run / ".tensorboard.dead").mkdir()  # a killed writer's temp folder
    folder = write_board(run, METRICS, [("sft", "abc123"), ("rl", "not-in-cache")], cache)
    assert sorted(p.name for p in folder.iterdir()) == ["eval", "sft"]
    assert _scalars(folder / "sft") == {"train/loss": [(1, 2.0), (2, 1.5)]}
    found = _scalars(folder / "eval")
    assert set(found) == set(headline_scalars(METRICS))
    assert found["eval/success"] == [(0, 0.5)] and found["eval/success_ci_low"] == [(0, pytest.approx(0.25))]
    assert not (run / ".tensorboard.dead").exists()
