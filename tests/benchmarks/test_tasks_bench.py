"""Environment steps per second and oracle cost per task (pytest-benchmark; `make bench`).

Each benchmark plays a fixed batch of seeded random legal actions (or oracle calls) so that runs
compare like with like; the printed line gives the throughput measured in this run.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.registry import make_task, task_names
from tests.synth_data import knobs_for

N = 500


def _states_and_actions(task, n: int):
    rng = np.random.default_rng(0)
    instances = task.splits(0).train
    pairs = []
    while len(pairs) < n:
        state = task.reset(instances[int(rng.integers(len(instances)))])
        while not state.done and len(pairs) < n:
            legal = task.legal_actions(state)
            action = legal[int(rng.integers(len(legal)))]
            pairs.append((state, action))
            state = task.step(state, action, rng).state
    return pairs


@pytest.mark.parametrize("name", task_names())
def test_bench_step(benchmark, name: str) -> None:
    task = make_task(name, knobs_for(name))
    pairs = _states_and_actions(task, N)

    def run() -> None:
        rng = np.random.default_rng(1)
        for state, action in pairs:
            task.step(state, action, rng)

    benchmark(run)
    print(f"BENCH step[{name}] steps_per_s={N / benchmark.stats['mean']:.0f}")


@pytest.mark.parametrize("name", task_names())
def test_bench_q_star(benchmark, name: str) -> None:
    pairs = _states_and_actions(make_task(name, knobs_for(name)), N)

    def run() -> None:
        task = make_task(name, knobs_for(name))  # a cold oracle cache each round: the cost data build pays
        for state, action in pairs:
            task.q_star(state, [action, action])

    benchmark.pedantic(run, rounds=3, iterations=1)
    print(f"BENCH q_star[{name}] calls_per_s={N / benchmark.stats['mean']:.0f} (cold cache)")
