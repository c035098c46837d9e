"""Atomic writes: the modes the umask implies, and failures that name the path the caller gave."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.store import atomic_dir, atomic_write_text, current_umask, staged_outputs, write_error
from harness.evaluation.board import write_board


@pytest.fixture
def umask() -> Iterator[None]:
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_get_the_mode_the_umask_implies(
    umask: None, tmp_path: Path, mask: int, file_mode: int, dir_mode: int
) -> None:
    os.umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "a.txt", "x\n")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "inner.txt").write_text("y\n")
    assert (_mode(tmp_path / "a.txt"), _mode(tmp_path / "d")) == (file_mode, dir_mode)
    assert _mode(tmp_path / "d" / "inner.txt") == file_mode  # what `open` gives, for comparison
    assert os.umask(mask) == mask  # reading the umask did not change it


def test_an_unwritable_folder_is_named_not_the_temp_file() -> None:
    # /sys refuses new files even to root, which chmod cannot arrange.
    with pytest.raises(HarnessError) as info:
        atomic_write_text(Path("/sys/table.txt"), "x\n")
    assert str(info.value) == "cannot write /sys/table.txt: Permission denied in folder /sys"


def _full_disk(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "summary.csv"
    target.write_text("old\n")
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(HarnessError) as info:
        atomic_write_text(target, "new\n")
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"] and target.read_text() == "old\n"


def test_a_full_disk_while_copying_a_board_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "cache" / "abc123" / "tensorboard"
    events.mkdir(parents=True)
    for name in ("events.1", "events.2", "events.3"):
        (events / name).write_text("e\n")
    run = tmp_path / "run"
    run.mkdir()
    # Every file copy fails as on a full disk; shutil.copytree raised the three failures as one list.
    monkeypatch.setattr(shutil, "copyfile", _full_disk)
    with pytest.raises(HarnessError) as info:
        write_board(run, {"success": 0.5}, [("sft", "abc123")], tmp_path / "cache")
    assert str(info.value) == f"cannot write {run}/tensorboard/sft: No space left on device"
    assert list(run.iterdir()) == []


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_staged_outputs_replace_together_keep_foreign_files_and_drop_removed_ones(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    (results / "figures").mkdir()
    (results / "tables" / "summary.csv").write_text("old\n")
    (results / "tables" / "notes.txt").write_text("mine\n")  # not the writer's: kept as it is
    (results / "figures" / "stale.png").write_text("old\n")
    (results / "sweeps").mkdir()
    (results / "sweeps" / "x.csv").write_text("sweep\n")
    with staged_outputs(results, ["tables", "figures", "REPORT.md"]) as stage:
        assert _files(stage / "tables") == {"summary.csv": "old\n", "notes.txt": "mine\n"}
        atomic_write_text(stage / "tables" / "summary.csv", "new\n")
        (stage / "figures" / "stale.png").unlink()
        atomic_write_text(stage / "figures" / "success.png", "png\n")
        atomic_write_text(stage / "REPORT.md", "report\n")
        assert _files(results)["tables/summary.csv"] == "old\n"  # nothing in place before the block ends
    assert _files(results) == {
        "REPORT.md": "report\n",
        "figures/success.png": "png\n",
        "sweeps/x.csv": "sweep\n",
        "tables/notes.txt": "mine\n",
        "tables/summary.csv": "new\n",
    }
    assert [p.name for p in results.iterdir() if p.name.startswith(".")] == []


def test_staged_outputs_failing_half_way_leave_everything_as_it_was(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    (results / "tables" / "summary.csv").write_text("old\n")
    (results / "REPORT.md").write_text("old report\n")
    before = _files(results)
    with pytest.raises(HarnessError, match="No space left on device"):
        with staged_outputs(results, ["tables", "REPORT.md"]) as stage:
            atomic_write_text(stage / "tables" / "summary.csv", "new\n")
            raise write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), stage / "tables" / "summary.md")
    assert _files(results) == before and sorted(p.name for p in results.iterdir()) == ["REPORT.md", "tables"]
    fresh = tmp_path / "a" / "b"
    with pytest.raises(HarnessError):
        with staged_outputs(fresh, ["tables"]):
            raise HarnessError("no complete runs")
    assert not (tmp_path / "a").exists()  # the folders made for the outputs went with them


def test_a_killed_writers_stage_is_removed_and_a_live_ones_is_not(tmp_path: Path) -> None:
    (tmp_path / ".outputs.dead").mkdir()
    (tmp_path / ".outputs.dead" / ".lock").write_text("123\n")  # its holder is gone: the lock is free
    (tmp_path / ".outputs.dead" / "REPORT.md").write_text("half\n")
    with staged_outputs(tmp_path, ["REPORT.md"]) as outer:
        assert not (tmp_path / ".outputs.dead").exists()
        with staged_outputs(tmp_path, ["REPORT.md"]):
            assert outer.is_dir()  # held by a live writer (this one)
        atomic_write_text(outer / "REPORT.md", "whole\n")
    assert _files(tmp_path) == {"REPORT.md": "whole\n"}
