"""Runs the `harness` command line inside the test process, as the console script would."""

from __future__ import annotations

import sys

import pytest

from harness.cli.main import main


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Returns the exit code, stdout and stderr of `harness ARGS`."""
    monkeypatch.setattr(sys, "argv", ["harness", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err
