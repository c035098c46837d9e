"""Fault injection for the interruption tests: `HARNESS_KILL_AT=<point>[:<n>]` SIGKILLs the process.

Why it exists: a reproduction is trusted only if a crash at any moment leaves a store that a rerun
completes to the very same metrics. Killing a process from outside at a chosen *time* is slow and
flaky; killing it at a named *place* is exact. Library code calls `point(name)` at a few places
(data build, the end of each training step of each stage kind, a TRL checkpoint saved but not yet
given its manifest, a stage being saved, each batch of
evaluation, a run being written, tables being written); the process kills itself with SIGKILL
(no cleanup, no atexit, exactly like a power cut) the n-th time it passes the named point.
Unset, `point` costs one dictionary lookup. A value that names no point, or whose n is not an
integer >= 1, is refused (HarnessError): the command line checks it before any work (`check`).
"""

from __future__ import annotations

import os
import signal

from harness.core.errors import HarnessError, did_you_mean

ENV = "HARNESS_KILL_AT"
POINTS = (
    "data",
    "wm-amt-step",
    "sft-step",
    "grpo-step",
    "checkpoint-save",
    "stage-save",
    "eval-batch",
    "run-write",
    "tables",
)
"""The named places; `point` ignores names that are not listed in the variable."""

_passed: dict[str, int] = {}


def point(name: str) -> None:
    """Returns at once unless HARNESS_KILL_AT names this point and this is its n-th pass (then SIGKILL)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, count = parse(wanted)
    if target != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] == count:
        os.kill(os.getpid(), signal.SIGKILL)


def parse(value: str) -> tuple[str, int]:
    """Returns (point, n) of a HARNESS_KILL_AT value `<point>[:<n>]`; HarnessError naming a malformed one."""
    target, sep, count = value.partition(":")
    if target not in POINTS:
        hint = did_you_mean(target, POINTS)
        raise HarnessError(f"{ENV}={value!r} names no fault point ({hint}known: {', '.join(POINTS)})")
    if sep and not (count.isdigit() and int(count) >= 1):
        raise HarnessError(f"{ENV}={value!r}: the count after ':' must be an integer >= 1, got {count!r}")
    return target, int(count or 1)


def check() -> None:
    """Raises HarnessError for a malformed HARNESS_KILL_AT; returns when it is unset or well formed."""
    if os.environ.get(ENV):
        parse(os.environ[ENV])
