"""Chains of runs as Ray tasks: a local Ray on this machine by default, or a running cluster.

Each chain (runs that share stages, so they must run in order) becomes one Ray task that asks for
`threads` CPUs and sets torch to that many threads, so its numbers are those of the local backend
at the same thread count. Ray does all the scheduling; nothing here decides where a task runs.
Every node must see the same run store and stage cache (a shared filesystem, at the same paths):
a task writes its runs there itself, and returns only their summary lines and its node's id.
Its stages' progress events travel on a Ray queue (an actor on no CPU) to the driver, which draws a
row per Ray worker as the local pool does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.core import environ, progress
from harness.core.errors import HarnessError
from harness.core.runs import RunSpec
from harness.running.chains import Done, Finish, Placement, first_missing, run_chain

EVENT_INTERVAL = 0.5
"""Seconds between a Ray task's progress events (each is a round trip to the queue actor)."""


def _ray_chain(
    chain: Sequence[RunSpec], runs: Path, cache: Path, threads: int, with_profile: bool, events: Any
) -> tuple[list[Done], str]:
    """Returns a chain's summary lines and the id of the node that ran it (the body of a Ray task)."""
    import ray
    import torch

    environ.apply()  # quiet; the numeric pin came earlier, in the task's runtime_env
    torch.set_num_threads(threads)  # a Ray worker process may be reused: set it for every task
    node = ray.get_runtime_context().get_node_id()
    progress.use(progress.QueueReporter(events, f"{node[:8]}:{os.getpid()}", interval=EVENT_INTERVAL))
    return run_chain(chain, runs, cache, with_profile), node


def numeric_env(driver: Mapping[str, str]) -> dict[str, str]:
    """Returns the numeric variables a Ray task gets: the driver's mode and caps, with the pin where it lacks one."""
    wanted = {**driver, **environ.harness_env(driver)}
    return {k: wanted[k] for k in (environ.NUMERICS_ENV, *environ.NUMERIC_PIN) if k in wanted}


def _failure(exc: Exception, chain: Sequence[RunSpec], runs: Path, with_profile: bool) -> HarnessError:
    """Returns the one-line error of a failed Ray task, naming the run it was making."""
    import ray.exceptions

    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else None
    if isinstance(cause, HarnessError):
        return HarnessError(f"{cause}; rerun to resume")
    name = first_missing(chain, runs).title(with_profile)
    first = str(cause or exc).strip().splitlines()
    reason = first[0] if first else type(exc).__name__
    return HarnessError(f"{name} failed on Ray ({type(exc).__name__}: {reason}); rerun to resume")


def run_on_ray(work: Sequence[Sequence[RunSpec]], runs: Path, cache: Path, place: Placement, finish: Finish) -> None:
    """Runs every chain as a Ray task with `place.threads` CPUs and calls `finish` per run as its chain ends.

    Connects to the cluster at `place.address`, or starts a Ray on this machine (and stops it at the end);
    an already initialised Ray (a test's cluster) is used as it is. The first failed task ends the
    call with one HarnessError naming its run; the other tasks are cancelled.
    """
    try:
        import ray
    except ImportError:
        raise HarnessError("--backend ray needs Ray: pip install 'foresight-harness[ray]' (ray==2.58.0)") from None
    threads, address, with_profile = place.threads, place.address, place.with_profile
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()
            raise HarnessError(
                f"cannot start or reach Ray at {address or 'this machine'}: {first[0] if first else exc}"
            ) from None
    from ray.util.queue import Queue

    # Runs and cache travel as absolute paths: a task's working directory is its worker's.
    runs, cache = runs.resolve(), cache.resolve()
    events = Queue(actor_options={"num_cpus": 0})
    drawing = progress.forward_events(events, progress.active())
    # Ray starts a worker with its runtime_env's variables, before it imports torch: the driver's numeric path.
    runtime_env = {"env_vars": numeric_env(os.environ)}
    remote = ray.remote(num_cpus=threads, max_retries=0, runtime_env=runtime_env)(_ray_chain)
    refs = {remote.remote(chain, runs, cache, threads, with_profile, events): chain for chain in work}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            ref = ready[0]
            try:
                done, node = ray.get(ref)
            except Exception as exc:  # a Ray error wraps the task's own; _failure names the run
                raise _failure(exc, refs[ref], runs, with_profile) from None
            for spec, line in done:
                finish(spec, line, f" [node {node[:8]}]")
    finally:
        # Only tasks not yet finished: cancelling a finished task can abort the driver (Ray 2.58,
        # task_manager.cc "Tried to complete task that was not pending").
        for ref in pending:
            ray.cancel(ref, force=True)
        try:
            events.put(None)
            drawing.join(timeout=10)
            events.shutdown()
        finally:  # the Ray this call started stops whatever happened to the queue
            if started_here:
                ray.shutdown()
