"""A chain of runs: runs that must go in order because they share stages, trained and evaluated in this process.

Every backend (harness.running.workers, harness.running.ray_backend) runs a chain through `run_chain`,
wherever it runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.runs import RunSpec, is_complete
from harness.evaluation.evaluate import evaluate_run, summary_line

Done = tuple[RunSpec, str]
"""A finished run and its summary line."""
Finish = Callable[..., None]
"""Called once per finished run: (run, summary line[, where it ran])."""


@dataclass(frozen=True)
class Placement:
    """How a backend spreads the chains: worker processes (local pool), torch threads or CPUs per run, Ray's address."""

    jobs: int
    threads: int
    address: str | None
    with_profile: bool
    """Whether several profiles share the work (each run's line then names its profile)."""


def first_missing(chain: Sequence[RunSpec], runs: Path) -> RunSpec:
    """Returns the first run of a chain without its metrics.json (the one a dead worker was making)."""
    for spec in chain:
        if not is_complete(spec.dir(runs)):
            return spec
    return chain[-1]


def run_chain(chain: Sequence[RunSpec], runs: Path, cache: Path, with_profile: bool = False) -> list[Done]:
    """Trains and evaluates a chain's runs in order; returns each run's summary line.

    A failing run raises HarnessError naming it, with the first line of its error.
    """
    done = []
    for spec in chain:
        try:
            _, metrics = evaluate_run(spec.method, spec.task, spec.profile, spec.seed, cache, runs)
        except Exception as exc:
            line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HarnessError(f"{spec.title(with_profile)} failed: {line}") from None
        done.append((spec, summary_line(metrics)))
    return done
