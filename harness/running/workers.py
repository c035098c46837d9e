"""Where chains of runs execute: in this process, in a local pool of worker processes, or on Ray.

A unit of work is one run (`RunSpec`: a sweep's points are profiles too); a chain is a list of
runs that must run in order because they share stages (harness.running.chains). Chains share no
stage, so any backend may run them in any order and on any machine that sees the same run store
and stage cache: the numbers of a run depend on its thread count only, never on the backend or
the jobs.

The backends are a registry (`BACKENDS`: local, pool, ray); `--backend local` with several
`--jobs` selects the pool. Progress (harness.core.progress) is display only: `execute` counts runs
on the command's reporter, and each worker sends its stages' events to the parent, which draws one
row per worker.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core import environ, progress
from harness.core.errors import HarnessError
from harness.core.runs import RunSpec
from harness.running.chains import Finish, Placement, run_chain
from harness.running.ray_backend import run_on_ray

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when its parent dies."""


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


def _run_here(work: Sequence[Sequence[RunSpec]], runs: Path, cache: Path, place: Placement, finish: Finish) -> None:
    """Runs every chain in this process, one after the other."""
    for chain in work:
        for spec, line in run_chain(chain, runs, cache, place.with_profile):
            finish(spec, line)


@dataclass(frozen=True)
class Backend:
    """Where chains of runs execute, and whether the runs are cut into chains that share no stage first."""

    name: str
    run: Callable[[Sequence[Sequence[RunSpec]], Path, Path, Placement, Finish], None]
    chained: bool
    """False: each run is its own unit, in plan order (one process needs no chains)."""


def backend_for(name: str, jobs: int) -> Backend:
    """Returns the backend `--backend name` with `--jobs jobs` selects; HarnessError for an unknown name."""
    if name not in CHOSEN:
        raise HarnessError(f"unknown backend {name!r} (known: {', '.join(CHOSEN)})")
    return BACKENDS[CHOSEN[name](jobs)]


def execute(
    work: Sequence[Sequence[RunSpec]],
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
    torch threads take the chains (the `pool` backend). `ray` makes each chain a Ray task asking for
    `threads` CPUs, on a local Ray or the cluster at `address`. A failed run ends the call with one
    HarnessError naming it; the runs finished before it stay in the store, so a rerun resumes.
    """
    chosen = backend_for(backend, jobs)
    total = sum(len(c) for c in work)
    with_profile = len({spec.profile.name for chain in work for spec in chain}) > 1
    done = [0]
    started = time.time()
    reporter = progress.active()
    reporter.start_runs(total)

    def finish(spec: RunSpec, line: str, where: str = "") -> None:
        done[0] += 1
        reporter.finish_run()
        elapsed = time.time() - started
        echo(f"[{done[0]}/{total}] {spec.title(with_profile)}: {line} ({elapsed:.0f} s){where}")

    chosen.run(work, runs, cache, Placement(jobs, threads, address, with_profile), finish)
    return total


def _run_pool(work: Sequence[Sequence[RunSpec]], runs: Path, cache: Path, place: Placement, finish: Finish) -> None:
    """Runs the chains in `place.jobs` spawned worker processes (torch imported once per worker).

    The workers' stage events come back on a queue, drawn by a thread of this process as they arrive.
    """
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    drawing = progress.forward_events(events, progress.active())
    initargs = (place.threads, events, context.Value("i", 0), os.getpid())
    pool = ProcessPoolExecutor(place.jobs, mp_context=context, initializer=_start_worker, initargs=initargs)
    try:
        with pool:
            futures = [pool.submit(run_chain, chain, runs, cache, place.with_profile) for chain in work]
            try:
                for future in as_completed(futures):
                    for spec, line in future.result():
                        finish(spec, line)
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


BACKENDS = {
    "local": Backend("local", _run_here, chained=False),
    "pool": Backend("pool", _run_pool, chained=True),
    "ray": Backend("ray", run_on_ray, chained=True),
}
"""The backends by name. A new one is a function of (work, runs, cache, placement, finish) and an entry here."""
CHOSEN = {"local": lambda jobs: "pool" if jobs > 1 else "local", "ray": lambda jobs: "ray"}
"""What each `--backend` selects, given `--jobs`: a local run with several jobs is the pool."""
