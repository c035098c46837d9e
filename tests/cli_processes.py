"""Runs `harness` commands as real processes forked from one that has already imported the harness.

Each command is its own process (its own pid, exit code and stderr; SIGKILL kills it like any
other), but it skips the ~8 s a fresh interpreter spends importing torch, transformers and TRL:
a multiprocessing forkserver imports them once, and every command is forked from it. The
forkserver itself never runs torch, so forking it is safe. The command line runs through
`harness.cli.main.main`, the function the `harness` console script calls.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path

from harness.core.environ import QUIET_ENV

PRELOAD = [
    "harness.cli.main",
    "harness.evaluation.evaluate",
    "harness.running.reproduce",
    "harness.training.sft",
    "harness.training.grpo",
    "harness.evaluation.compare",
    "harness.reporting.plots",
    "harness.reporting.report",
    "tasks",
    "baselines",
    "method",
]
_counter = itertools.count()
_context: multiprocessing.context.ForkServerContext | None = None


@dataclass
class Finished:
    """A finished command: exit code (-9 when SIGKILLed), stdout and stderr."""

    code: int
    out: str
    err: str


class Running:
    """A command still running: its process and the files its output goes to."""

    def __init__(self, process: multiprocessing.process.BaseProcess, out: Path, err: Path) -> None:
        self.process = process
        self.out = out
        self.err = err

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def stderr_so_far(self) -> str:
        return self.err.read_text() if self.err.exists() else ""

    def wait_for_stderr(self, text: str, timeout: float = 120) -> bool:
        """Returns whether `text` appeared on stderr before the timeout or the process's end."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.stderr_so_far():
                return True
            if not self.process.is_alive():
                return text in self.stderr_so_far()
            time.sleep(0.05)
        return False

    def finish(self, timeout: float = 300) -> Finished:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
            raise TimeoutError(f"harness command ran past {timeout} s")
        return Finished(int(self.process.exitcode), self.out.read_text(), self.err.read_text())


def _command(argv: list[str], env: dict[str, str], cwd: str, hide: list[str], out: str, err: str) -> None:
    os.environ.update(env)
    os.chdir(cwd)
    for module in hide:
        sys.modules[module] = None  # type: ignore[assignment]  # as if the package were not installed
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["harness", *argv]
    from harness.cli.main import main

    main()


def start(
    argv: list[str], logs: Path, cwd: Path | None = None, env: dict[str, str] | None = None, hide: list[str] = ()
) -> Running:
    """Returns a running `harness ARGV` process; its stdout and stderr go to files under `logs`."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
        # The server imports transformers and datasets, which read these variables once, at import:
        # it must see them the way `harness.cli.main.main` sets them before its own imports. The
        # numeric pin is left to each command's own `main` (torch reads it at its first op, which no
        # preloaded import runs), so that a command started with HARNESS_NUMERICS=native runs unpinned.
        saved = dict(os.environ)
        os.environ.update({k: os.environ.get(k, v) for k, v in QUIET_ENV.items()})
        try:
            forkserver.ensure_running()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    logs.mkdir(parents=True, exist_ok=True)
    n = next(_counter)
    out, err = logs / f"cmd{n}.out", logs / f"cmd{n}.err"
    process = _context.Process(
        target=_command, args=(argv, env or {}, str(cwd or Path.cwd()), list(hide), str(out), str(err))
    )
    process.start()
    return Running(process, out, err)


def harness(
    argv: list[str],
    logs: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    hide: list[str] = (),
    timeout: float = 300,
) -> Finished:
    """Returns the outcome of `harness ARGV` run to its end in a forked process."""
    return start(argv, logs, cwd, env, hide).finish(timeout)
