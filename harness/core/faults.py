"""Fault injection for the interruption tests: `HARNESS_KILL_AT=<point>[:<n>]` SIGKILLs the process.

Why it exists: a reproduction is trusted only if a crash at any moment leaves a store that a rerun
completes to the very same metrics. Killing a process from outside at a chosen *time* is slow and
flaky; killing it at a named *place* is exact. Library code calls `point(name)` at a few places
(data build, the end of each training step of each stage kind, a TRL checkpoint saved but not yet
given its manifest, a stage being saved, each batch of
evaluation, a run being written, tables being written); the process kills itself with SIGKILL
(no cleanup, no atexit, exactly like a power cut) the n-th time it passes the named point.
Unset, `point` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

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
    target, _, count = wanted.partition(":")
    if target != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
