"""Where chains of runs execute: in this process, in a local pool of worker processes, or on Ray.

A unit of work is one run of one profile (a sweep's points are profiles too); a chain is a list of
units that must run in order because they share stages. Chains share no stage, so any backend may
run them in any order and on any machine that sees the same run store and stage cache: the
numbers of a run depend on its thread count only, never on the backend or the jobs.

Progress (harness.core.progress) is display only: `execute` counts runs on the command's reporter,
and each worker sends its stages' events to the parent, which draws one row per worker.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from harness.core import environ, progress
from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.runs import is_complete, run_dir
from harness.evaluation.evaluate import evaluate_run, summary_line

Item = tuple[str, str, int]
"""(method, task, seed) of one run."""
Unit = tuple[Profile, Item]
"""One run of one profile."""
Done = tuple[Unit, str]
"""A finished run and its summary line."""
BACKENDS = ("local", "ray")
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when its parent dies."""


def unit_name(unit: Unit, with_profile: bool) -> str:
    """Returns "<method> on <task> seed <k>", followed by "at <profile>" when several profiles share the work."""
    profile, (method, task, seed) = unit
    return f"{method} on {task} seed {seed}" + (f" at {profile.name}" if with_profile else "")


def first_missing(chain: Sequence[Unit], runs: Path) -> Unit:
    """Returns the first run of a chain without its metrics.json (the one a dead worker was making)."""
    for unit in chain:
        profile, (method, task, seed) = unit
        if not is_complete(run_dir(runs, profile.name, task, method, seed)):
            return unit
    return chain[-1]


def run_chain(chain: Sequence[Unit], runs: Path, cache: Path, with_profile: bool = False) -> list[Done]:
    """Trains and evaluates a chain's runs in order; returns each run's summary line.

    A failing run raises HarnessError naming it, with the first line of its error.
    """
    done = []
    for unit in chain:
        profile, (method, task, seed) = unit
        try:
            _, metrics = evaluate_run(method, task, profile, seed, cache, runs)
        except Exception as exc:
            line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HarnessError(f"{unit_name(unit, with_profile)} failed: {line}") from None
        done.append((unit, summary_line(metrics)))
    return done


def _die_with_parent(parent: int) -> None:
    """Asks Linux to SIGTERM this process when its parent dies, so that a killed or SIGTERMed
    `harness reproduce|sweep` leaves no worker training on (and writing to the store) behind it."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(1)


def _start_worker(threads: int, events: Any, counter: Any, parent: int) -> None:
    """Ties a worker's life to the parent's, pins its numeric path, sets its torch threads, numbers it,
    sends its progress to the parent and silences it.

    The parent reports each run in one line and draws the workers' stages from `events`.
    """
    _die_with_parent(parent)
    # A worker inherits the command's environment; a library caller's pool is pinned here, before
    # the worker's first tensor op (importing this module runs none).
    environ.apply()
    import torch

    torch.set_num_threads(threads)
    with counter.get_lock():
        counter.value += 1
        number = counter.value
    progress.use(progress.QueueReporter(events, str(number)))
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    os.close(quiet)


def execute(
    work: Sequence[Sequence[Unit]],
    runs: Path,
    cache: Path,
    jobs: int,
    threads: int,
    echo: Callable[[str], None],
    backend: str = "local",
    address: str | None = None,
) -> int:
    """Runs every chain of `work` (costliest first) and echoes one line per finished run; returns the run count.

    `local` with `jobs` 1 runs in this process; with more, `jobs` spawned worker processes at `threads`
    torch threads take the chains. `ray` makes each chain a Ray task asking for `threads` CPUs, on a
    local Ray or the cluster at `address`. A failed run ends the call with one HarnessError naming it;
    the runs finished before it stay in the store, so a rerun resumes.
    """
    if backend not in BACKENDS:
        raise HarnessError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    total = sum(len(c) for c in work)
    with_profile = len({unit[0].name for chain in work for unit in chain}) > 1
    done = [0]
    started = time.time()
    reporter = progress.active()
    reporter.start_runs(total)

    def finish(unit: Unit, line: str, where: str = "") -> None:
        done[0] += 1
        reporter.finish_run()
        elapsed = time.time() - started
        echo(f"[{done[0]}/{total}] {unit_name(unit, with_profile)}: {line} ({elapsed:.0f} s){where}")

    if backend == "ray":
        from harness.running.ray_backend import run_on_ray

        run_on_ray(work, runs, cache, threads, address, with_profile, finish)
    elif jobs <= 1:
        for chain in work:
            for unit, line in run_chain(chain, runs, cache, with_profile):
                finish(unit, line)
    else:
        _run_pool(work, runs, cache, jobs, threads, with_profile, finish)
    return total


def _run_pool(
    work: Sequence[Sequence[Unit]],
    runs: Path,
    cache: Path,
    jobs: int,
    threads: int,
    with_profile: bool,
    finish: Callable[[Unit, str], None],
) -> None:
    """Runs the chains in `jobs` spawned worker processes (torch imported once per worker).

    The workers' stage events come back on a queue, drawn by a thread of this process as they arrive.
    """
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    drawing = progress.forward_events(events, progress.active())
    initargs = (threads, events, context.Value("i", 0), os.getpid())
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=initargs)
    try:
        with pool:
            futures = [pool.submit(run_chain, chain, runs, cache, with_profile) for chain in work]
            try:
                for future in as_completed(futures):
                    for unit, line in future.result():
                        finish(unit, line)
            except BrokenProcessPool:
                raise HarnessError(
                    "a reproduce worker process died (killed, or out of memory); rerun to resume; "
                    "--jobs 1 shows its output"
                ) from None
            finally:
                for future in futures:
                    future.cancel()
    finally:
        # A worker killed while writing to the queue could hold its lock for good: never wait for the
        # queue's feeder at exit. After the pool has shut down every live worker's events are on it.
        events.cancel_join_thread()
        events.put(None)
        drawing.join(timeout=10)
