"""Fault injection: HARNESS_KILL_AT=<point>[:<n>] SIGKILLs the process at the n-th pass, and only then."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from harness.core import faults
from harness.core.errors import HarnessError

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


@pytest.mark.parametrize(
    ("value", "parsed"), [("data", ("data", 1)), ("sft-step:3", ("sft-step", 3)), ("tables:12", ("tables", 12))]
)
def test_a_well_formed_value_parses(value: str, parsed: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    assert faults.parse(value) == parsed
    monkeypatch.setenv(faults.ENV, value)
    faults.check()  # returns: nothing to refuse


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("data:x", "HARNESS_KILL_AT='data:x': the count after ':' must be an integer >= 1, got 'x'"),
        ("data:0", "HARNESS_KILL_AT='data:0': the count after ':' must be an integer >= 1, got '0'"),
        ("data:", "HARNESS_KILL_AT='data:': the count after ':' must be an integer >= 1, got ''"),
        ("dta:2", "HARNESS_KILL_AT='dta:2' names no fault point (did you mean 'data'? known: data, wm-amt-step,"),
        ("nowhere", "HARNESS_KILL_AT='nowhere' names no fault point (known: data,"),
    ],
)
def test_a_malformed_value_is_refused_naming_it(value: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HarnessError) as caught:
        faults.parse(value)
    assert str(caught.value).startswith(message)
    monkeypatch.setenv(faults.ENV, value)
    with pytest.raises(HarnessError):
        faults.check()
