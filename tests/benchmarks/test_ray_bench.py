"""Issue 15, item 3: the smoke profile's runs on a local Ray against the local worker pool.

The same runs (every method and ablation of the smoke profile on its three tasks, seed 0) from an
empty run store and cache, in alternating rounds: `--jobs 2 --threads 1` (two spawned worker
processes) against `--backend ray --threads 1` (each chain a Ray task asking for one CPU, on a Ray
started for the round with two CPUs, its start and stop timed too). Ratio = pool seconds / Ray
seconds; Ray may cost at most 15% more.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import ray

from harness.core.config import load_profile
from harness.running.reproduce import run_missing

from .conftest import bench_line

TARGET = 0.85
ROUNDS = 2


@pytest.mark.benchmark(group="ray")
def test_bench_smoke_on_ray_against_the_local_pool(benchmark, tmp_path: Path) -> None:
    profile = load_profile("smoke")
    seconds: dict[str, list[float]] = {"pool": [], "ray": []}
    counts: dict[str, int] = {}

    def one(backend: str) -> None:
        folder = tmp_path / backend
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        if backend == "ray":
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                counts[backend] = run_missing(profile, folder / "runs", folder / "cache", 1, lambda _: None, 1, "ray")
            finally:
                ray.shutdown()
        else:
            counts[backend] = run_missing(profile, folder / "runs", folder / "cache", 2, lambda _: None, 1)
        seconds[backend].append(time.perf_counter() - started)

    def one_round() -> None:
        one("pool")
        one("ray")

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    pool, on_ray = min(seconds["pool"]), min(seconds["ray"])
    ratio = pool / on_ray
    bench_line("smoke_ray_vs_pool", ratio, f">={TARGET}", pool_s=pool, ray_s=on_ray, runs=counts["ray"])
    assert counts["pool"] == counts["ray"] == 24
    assert ratio >= TARGET
