"""The command line: thin commands, and bad input that ends in one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_inprocess import run


def test_tasks_list_shows_every_task(monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "tasks", "list", "--profile", "smoke")
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["countdown", "graph-nav", "gsm8k", "hotpotqa", "kb-search"]
    # The benchmark tasks have no data at the smoke profile: their vocabulary is unknown, not an error.
    assert lines[2].split()[:3] == ["gsm8k", "math", "vocab=-"]


def test_tasks_show_prints_knobs_and_an_episode(monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "tasks", "show", "graph-nav", "--profile", "smoke")
    assert code == 0
    assert "slip" in out and "vocabulary:" in out and "plan " in out and "think " in out


def test_data_build_prints_sizes_and_coverage(monkeypatch, capsys, tmp_path: Path) -> None:
    code, out, _ = run(
        monkeypatch, capsys, "data", "build", "--task", "countdown", "--profile", "smoke", "--out", str(tmp_path / "d")
    )
    assert code == 0
    assert "D_expert" in out and "D_look" in out and "D_world" in out and "coverage" in out
    assert (tmp_path / "d" / "stats.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tasks", "show", "nope"], "unknown task 'nope'"),
        (["tasks", "list", "--profile", "fast"], "unknown profile 'fast'"),
        (["data", "build", "--task", "nope", "--profile", "smoke"], "unknown task 'nope'"),
        (["train", "--method", "nope", "--task", "graph-nav", "--profile", "smoke"], "unknown method 'nope'"),
        (["train", "--method", "react", "--task", "graph-nav", "--lora"], "--lora needs --model"),
        (["train", "--method", "react", "--task", "graph-nav", "--model", "/nonexistent/model"], "does not exist"),
        (["compare", "--method", "react", "--baseline", "react", "--profile", "smoke"], "with itself"),
        (["compare", "--format", "xml", "--profile", "smoke"], "unknown format 'xml'"),
        (
            ["compare", "--method", "react", "--baseline", "sft-mimic", "--profile", "smoke", "--runs", "/nonexistent"],
            "run(s) missing",
        ),
        (["eval", "--method", "react", "--task", "nope", "--profile", "smoke"], "not in profile"),
        (["train"], "Missing option '--method'"),
    ],
)
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, args: list[str], message: str) -> None:
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def test_malformed_profile_file(monkeypatch, capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: {graph-nav: {n_nodes: 2}}\n")
    code, _, err = run(monkeypatch, capsys, "tasks", "show", "graph-nav", "--profile", str(bad))
    assert code == 2 and "n_nodes" in err


def test_a_full_disk_during_a_tree_copy_prints_one_line_naming_a_file(tmp_path: Path, monkeypatch) -> None:
    import errno
    import os
    import shutil

    from harness.cli.main import os_error_line

    source = tmp_path / "board"
    source.mkdir()
    for name in ("a", "b"):
        (source / name).write_text("event\n")

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # A stage's TensorBoard folder is copied with shutil.copytree, which raises all failures as one list.
    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with pytest.raises(shutil.Error) as info:
        shutil.copytree(source, tmp_path / "copy")
    assert os_error_line(info.value) in {
        f"cannot write {tmp_path}/copy/{name}: No space left on device (and 1 more file(s))" for name in "ab"
    }
    plain = PermissionError(errno.EACCES, "Permission denied", "/tmp/.x.tmp", None, "/data/x")  # a rename
    assert os_error_line(plain) == "Permission denied: /data/x"


def test_eval_on_a_full_disk_is_one_line_naming_the_path(monkeypatch, capsys, tmp_path: Path) -> None:
    import errno
    import os
    import shutil

    copyfile = shutil.copyfile

    def full_under_runs(src, dst, *args, **kwargs):
        if "/runs/" in str(Path(dst).resolve()):  # the run store's disk is full; the cache's is not
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return copyfile(src, dst, *args, **kwargs)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shutil, "copyfile", full_under_runs)
    args = ["eval", "--method", "react", "--task", "countdown", "--profile", "smoke", "--runs", "runs", "--quiet"]
    code, _, err = run(monkeypatch, capsys, *args, "--cache", "cache")
    assert code == 2 and "Traceback" not in err
    # Progress bars of transformers may come first (once another test has imported it, the quiet
    # settings of `main` come too late for it); the error is the one last line.
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == ["error: cannot write runs/smoke/countdown/react/seed0/tensorboard/sft: No space left on device"]
    assert err.endswith(errors[0] + "\n")
    run_files = sorted(p.name for p in (tmp_path / "runs/smoke/countdown/react/seed0").iterdir())
    assert run_files == [".lock"]  # no metrics.json, no half-copied board
