"""Fault injection: HARNESS_KILL_AT=<point>[:<n>] SIGKILLs the process at the n-th pass, and only then."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = "from harness.core import faults\nfor i in range(3):\n    faults.point('data')\n    print(i, flush=True)\n"


@pytest.mark.parametrize(
    ("setting", "code", "printed"),
    [
        ("data:2", -signal.SIGKILL, "0\n"),
        ("data", -signal.SIGKILL, ""),
        ("data:4", 0, "0\n1\n2\n"),
        ("tables:1", 0, "0\n1\n2\n"),
        ("", 0, "0\n1\n2\n"),
    ],
)
def test_kill_at_the_nth_pass_of_the_named_point(setting: str, code: int, printed: str) -> None:
    env = {"HARNESS_KILL_AT": setting, "PYTHONPATH": ":".join(sys.path)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (code, printed)
