"""Live progress of long commands: runs done of total with an ETA, and each worker's current stage.

On a terminal, rich draws one bar for the runs and one row per worker (its stage, step of total,
tokens/s and the latest loss or reward). Elsewhere (CI, a pipe, a log file) plain lines say when
each stage starts and ends, with its wall time; `--quiet` prints nothing but errors and the final
summary. Progress is display only: nothing here reaches a run's files, so `harness verify` and the
byte-for-byte checks never see it.

Library code reports to `active()`, a silent reporter unless a command opened a display with
`session()`. The worker processes of `harness reproduce --jobs N` (and Ray tasks) report to a
`QueueReporter`, and the parent draws their events (`forward_events`), one row per worker. The
processes `accelerate launch` starts for a stage share the terminal, not a queue: the session's
mode travels to them in HARNESS_PROGRESS, process 0 prints plain lines (`launched_reporter`), and
a live display steps aside while they run (`Reporter.handover`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

MODES = ("auto", "live", "plain", "quiet")
ENV = "HARNESS_PROGRESS"
"""The mode of the command's session, for the processes it launches: plain or quiet (unset: none)."""


@dataclass
class StageView:
    """What a reporter knows of one worker's current stage."""

    label: str
    total: int
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    tokens_first: int | None = None
    tokens: int | None = None
    value: str = ""

    def tokens_per_s(self) -> float | None:
        """Returns the tokens per second since the stage's first report of a token count, if any."""
        if self.tokens is None or self.tokens_first is None:
            return None
        elapsed = time.perf_counter() - self.started
        return (self.tokens - self.tokens_first) / elapsed if elapsed > 0 else None

    def info(self) -> str:
        """Returns 'N tok/s, loss x' for display (empty parts left out)."""
        rate = self.tokens_per_s()
        parts = [f"{rate:,.0f} tok/s" if rate else "", self.value]
        return ", ".join(p for p in parts if p)


class Reporter:
    """The silent reporter: what library code reports to when no command opened a display."""

    def say(self, line: str) -> None:
        """Prints a line of the command's own output (a finished run, a written file)."""

    def start_runs(self, total: int) -> None:
        """Starts the count of runs to train and evaluate."""

    def finish_run(self) -> None:
        """Counts one more finished run."""

    def start_stage(self, label: str, total: int, done: int = 0, worker: str = "") -> None:
        """Starts a stage (a training stage or an evaluation) of `total` steps, `done` of them already done."""

    def advance_stage(
        self, done: int | None = None, tokens: int | None = None, value: str = "", worker: str = ""
    ) -> None:
        """Reports a stage's progress: `done` steps (None: one more), tokens seen, the latest loss or reward."""

    def end_stage(self, worker: str = "") -> None:
        """Ends a worker's current stage."""

    def handover(self) -> AbstractContextManager[None]:
        """Returns a context in which another process writes to the terminal (a live display pauses)."""
        return nullcontext()

    def close(self) -> None:
        """Stops drawing."""


class StageTracker(Reporter):
    """Keeps each worker's current stage; the displays below draw from it."""

    def __init__(self) -> None:
        self.stages: dict[str, StageView] = {}
        self.lock = threading.Lock()

    def start_stage(self, label: str, total: int, done: int = 0, worker: str = "") -> None:
        with self.lock:
            self.stages[worker] = StageView(label, max(1, total), done=done)
            self.stage_started(worker, self.stages[worker])

    def advance_stage(
        self, done: int | None = None, tokens: int | None = None, value: str = "", worker: str = ""
    ) -> None:
        with self.lock:
            stage = self.stages.get(worker)
            if stage is None:
                return
            stage.done = stage.done + 1 if done is None else done
            if tokens is not None:
                stage.tokens_first = tokens if stage.tokens_first is None else stage.tokens_first
                stage.tokens = tokens
            stage.value = value or stage.value
            self.stage_advanced(worker, stage)

    def end_stage(self, worker: str = "") -> None:
        with self.lock:
            stage = self.stages.pop(worker, None)
            if stage is not None:
                self.stage_ended(worker, stage)

    def stage_started(self, worker: str, stage: StageView) -> None:
        """Draws a stage's start."""

    def stage_advanced(self, worker: str, stage: StageView) -> None:
        """Draws a stage's progress."""

    def stage_ended(self, worker: str, stage: StageView) -> None:
        """Draws a stage's end."""


def _prefix(worker: str) -> str:
    return f"[worker {worker}] " if worker else ""


class PlainReporter(StageTracker):
    """Plain lines for logs and pipes: each stage's start and end (with its wall time), each run's line."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        super().__init__()
        self.echo = echo

    def say(self, line: str) -> None:
        self.echo(line)

    def stage_started(self, worker: str, stage: StageView) -> None:
        resumed = f", resuming at step {stage.done}" if stage.done else ""
        self.echo(f"{_prefix(worker)}{stage.label}: started, {stage.total} steps{resumed}")

    def stage_ended(self, worker: str, stage: StageView) -> None:
        info = stage.info()
        self.echo(
            f"{_prefix(worker)}{stage.label}: done, {stage.done}/{stage.total} steps in "
            f"{time.perf_counter() - stage.started:.1f} s" + (f" ({info})" if info else "")
        )


class QuietReporter(Reporter):
    """`--quiet`: no progress and no per-run lines; the command prints its final summary itself."""


class LiveReporter(StageTracker):
    """rich bars on a terminal: the runs with an ETA, and a row per worker for its current stage."""

    def __init__(self, file: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__()
        self.console = Console(file=file or sys.stdout)
        self.bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            console=self.console,
        )
        self.rows: dict[str, Any] = {}
        self.runs: Any = None
        self.bars.start()

    def say(self, line: str) -> None:
        self.bars.console.print(line, markup=False, highlight=False)

    def start_runs(self, total: int) -> None:
        self.runs = self.bars.add_task("runs", total=total, info="")

    def finish_run(self) -> None:
        if self.runs is not None:
            self.bars.advance(self.runs)

    def stage_started(self, worker: str, stage: StageView) -> None:
        description = f"{_prefix(worker)}{stage.label}"
        if worker not in self.rows:
            self.rows[worker] = self.bars.add_task(description, total=stage.total, completed=stage.done, info="")
        else:
            self.bars.reset(
                self.rows[worker], total=stage.total, completed=stage.done, description=description, info=""
            )

    def stage_advanced(self, worker: str, stage: StageView) -> None:
        self.bars.update(self.rows[worker], completed=stage.done, info=stage.info())

    def stage_ended(self, worker: str, stage: StageView) -> None:
        self.bars.update(self.rows[worker], completed=stage.total, info=stage.info())

    @contextmanager
    def handover(self) -> Iterator[None]:
        self.bars.stop()
        try:
            yield
        finally:
            self.bars.start()

    def close(self) -> None:
        self.bars.stop()


class QueueReporter(Reporter):
    """In a worker process: sends stage events, tagged with the worker's number, to the parent.

    With `interval` > 0, advances closer together than `interval` seconds are merged into one that
    carries the absolute step count, the latest tokens and the latest value; a stage's last advance
    is always sent before its end. Each put on a Ray queue is a blocking round trip to an actor, and
    one per training step cost the smoke profile about 6 s of 40 on 2 cores.
    """

    def __init__(self, queue: Any, worker: str, interval: float = 0.0) -> None:
        self.queue = queue
        self.worker = worker
        self.interval = interval
        self._done = 0
        self._tokens: int | None = None
        self._value = ""
        self._sent: float | None = None  # never sent: the first advance goes at once
        self._unsent = False

    def start_stage(self, label: str, total: int, done: int = 0, worker: str = "") -> None:
        self._done, self._tokens, self._value, self._sent, self._unsent = done, None, "", None, False
        self.queue.put(("start_stage", {"label": label, "total": total, "done": done, "worker": self.worker}))

    def advance_stage(
        self, done: int | None = None, tokens: int | None = None, value: str = "", worker: str = ""
    ) -> None:
        self._done = self._done + 1 if done is None else done
        self._tokens = tokens if tokens is not None else self._tokens
        self._value = value or self._value
        self._unsent = True
        # Not `monotonic() - 0.0`: the monotonic clock starts near 0 at boot, so on a machine up for less
        # than `interval` the first advance would wait.
        if self._sent is None or time.monotonic() - self._sent >= self.interval:
            self._send()

    def _send(self) -> None:
        event = {"done": self._done, "tokens": self._tokens, "value": self._value, "worker": self.worker}
        self.queue.put(("advance_stage", event))
        self._sent, self._unsent = time.monotonic(), False

    def end_stage(self, worker: str = "") -> None:
        if self._unsent:
            self._send()
        self.queue.put(("end_stage", {"worker": self.worker}))


def forward_events(queue: Any, reporter: Reporter) -> threading.Thread:
    """Returns a started thread that hands the workers' events on `queue` to `reporter` until a None arrives."""

    def drain() -> None:
        while (event := queue.get()) is not None:
            name, kwargs = event
            getattr(reporter, name)(**kwargs)

    thread = threading.Thread(target=drain, name="progress-events", daemon=True)
    thread.start()
    return thread


_ACTIVE: list[Reporter] = [Reporter()]


def active() -> Reporter:
    """Returns the reporter library code reports to (silent unless a command opened a display)."""
    return _ACTIVE[-1]


def use(reporter: Reporter) -> None:
    """Makes `reporter` the active one for the rest of this process (a worker's QueueReporter)."""
    _ACTIVE[-1] = reporter


def make_reporter(mode: str, echo: Callable[[str], None], stream: Any = None) -> Reporter:
    """Returns the reporter of a mode: live (rich), plain (lines), quiet, or auto (live on a terminal)."""
    if mode == "auto":
        mode = "live" if (stream or sys.stdout).isatty() else "plain"
    if mode == "live":
        return LiveReporter(stream)
    return QuietReporter() if mode == "quiet" else PlainReporter(echo)


def environ_mode() -> str | None:
    """Returns the mode the command's session exported for the processes it launches (None: no session)."""
    return os.environ.get(ENV)


def launched_reporter() -> Reporter:
    """Returns the reporter of a stage's process under `accelerate launch`: plain lines from process 0
    when the command that launched it shows progress, else the silent one."""
    if environ_mode() != "plain" or int(os.environ.get("RANK", "0")) != 0:
        return Reporter()
    return PlainReporter(lambda line: print(line, flush=True))


@contextmanager
def session(mode: str, echo: Callable[[str], None]) -> Iterator[Reporter]:
    """Yields the active reporter of a command for its duration, then stops drawing."""
    reporter = make_reporter(mode, echo)
    before = os.environ.get(ENV)
    os.environ[ENV] = "quiet" if isinstance(reporter, QuietReporter) else "plain"
    _ACTIVE.append(reporter)
    try:
        yield reporter
    finally:
        _ACTIVE.pop()
        reporter.close()
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
