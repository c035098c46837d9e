"""Locks between processes: one writer at a time per run directory and per stage-cache entry.

A lock is `fcntl.flock` on a small file beside what it guards; the holder writes its pid into the
file so that a process finding the lock taken can say who holds it. The kernel drops the lock when
its holder dies, even by SIGKILL, so a lock file left behind never blocks anyone; lock files are
therefore never deleted (deleting one while another process waits on it would let two in).
Readers take no lock: everything a reader trusts (a finished stage, a run's metrics.json) appears
by an atomic rename and is never changed in place afterwards.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.core.errors import HarnessError


def holder(path: Path) -> str:
    """Returns the pid written in a lock file, or 'unknown' when it holds none (yet)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


@contextmanager
def locked(path: Path, what: str, wait: bool) -> Iterator[None]:
    """Holds the lock file `path` for the block.

    When another process holds it: with `wait`, says so on stderr and blocks until it is free;
    without, raises HarnessError naming the holder's pid (the command line exits 2).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    acquired = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = holder(path)
            if not wait:
                raise HarnessError(
                    f"{what} is in use by process {pid} (lock {path}); wait for it to finish or stop it"
                ) from None
            print(f"waiting for process {pid}, which holds {what} (lock {path})", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        acquired = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if acquired:
            os.ftruncate(fd, 0)  # a free lock names no holder
        os.close(fd)  # closing the descriptor releases the lock
