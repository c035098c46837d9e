"""Issue 5, item 4: the exact oracles at the default knobs, and their share of `harness data build`.

- countdown: states per second of the solvability search (`reachable`, memoised per (numbers,
  turns left)); a state is one entry the search adds to its cache, i.e. one expansion.
- graph-nav: states per second of the dynamic programme (`value` solves V[k, n] for one goal:
  (horizon + 1) * n_nodes states), over every goal.
The share is the time inside the search (outermost calls) over the time of the library calls that
`harness data build` makes (build_corpora, corpus_stats, save_corpora), both on a fresh task so
that every cache starts cold, as it does in the command.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.core.config import Profile
from harness.core.registry import make_task
from harness.data.recipes import build_corpora, corpus_stats, save_corpora

from .conftest import bench_line

SEARCH = {"countdown": "reachable", "graph-nav": "_solve"}
"""The method holding each task's search; it is timed in place on the task object."""


class Timed:
    """Wraps a (possibly recursive) method and adds up the time of its outermost calls."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method
        self.seconds = 0.0
        self.depth = 0

    def __call__(self, *args: Any) -> Any:
        if self.depth:
            return self.method(*args)
        self.depth += 1
        started = time.perf_counter()
        try:
            return self.method(*args)
        finally:
            self.seconds += time.perf_counter() - started
            self.depth -= 1


def states_per_second(name: str, profile: Profile) -> tuple[float, int]:
    """Returns (states per second, states) of the task's search from a cold cache."""
    task = make_task(name, profile.tasks[name])
    if name == "countdown":
        starts = [task.reset(inst) for inst in task.splits(0).train]
        task = make_task(name, profile.tasks[name])  # splits() warmed the cache: start cold
        started = time.perf_counter()
        for state in starts:
            task.solvable(state.numbers, state.target, task.horizon)
        states = len(task._reach)  # one entry per expanded (numbers, turns left)
    else:
        start = task.reset(task.splits(0).train[0])
        task = make_task(name, profile.tasks[name])  # splits() solved some goals: start cold
        started = time.perf_counter()
        for goal in range(task.config.n_nodes):  # every goal once: each solve is a cold one
            task.value(dataclasses.replace(start, goal=goal))
        states = task.config.n_nodes * (task.config.horizon + 1) * task.config.n_nodes
    return states / (time.perf_counter() - started), states


@pytest.mark.parametrize("name", sorted(SEARCH))
@pytest.mark.benchmark(group="oracle")
def test_bench_oracle_share_of_data_build(benchmark, name: str, profile: Profile, tmp_path: Path) -> None:
    shares: list[tuple[float, float]] = []

    def build() -> None:
        task = make_task(name, profile.tasks[name])
        timed = Timed(getattr(task, SEARCH[name]))
        setattr(task, SEARCH[name], timed)
        started = time.perf_counter()
        corpora = build_corpora(task, profile.data, 0)
        save_corpora(corpora, tmp_path / f"data{len(shares)}", corpus_stats(corpora))
        shares.append((timed.seconds, time.perf_counter() - started))

    benchmark.pedantic(build, rounds=2, iterations=1)
    search_s, build_s = min(shares, key=lambda s: s[1])
    rate, states = states_per_second(name, profile)
    benchmark.extra_info.update({"share": search_s / build_s, "states_per_s": rate})
    bench_line(
        f"oracle-share-of-data-build[{name}]",
        search_s / build_s,
        "none",
        states_per_s=round(rate),
        states=states,
        search_s=search_s,
        data_build_s=build_s,
    )
