"""The cost lines of REPORT.md: wall time and peak memory of a reproduction, workers included."""

from __future__ import annotations

from harness.reporting.report import Cost
from harness.running.reproduce import measure_cost


def test_cost_lines_single_process() -> None:
    lines = Cost(wall_s=150.0, peak_mb=812.4, worker_peak_mb=0.0, jobs=1).lines()
    assert lines[0].startswith("- wall time of this `harness reproduce`: 2.5 min")
    assert lines[1] == "- peak resident memory: reproduce process 812 MiB"


def test_cost_lines_bound_the_workers_running_at_once() -> None:
    lines = Cost(wall_s=60.0, peak_mb=300.0, worker_peak_mb=700.0, jobs=2).lines()
    # 300 + 2 * 700: the parent and both workers at their peaks at the same moment.
    assert lines[1] == (
        "- peak resident memory: reproduce process 300 MiB, largest of its worker processes 700 MiB; "
        "with --jobs 2 at most 1700 MiB at once"
    )


def test_measure_cost_reads_this_process() -> None:
    cost = measure_cost(started=0.0, jobs=1)
    assert cost.peak_mb > 10  # a Python process with torch imported holds far more than 10 MiB
    assert cost.wall_s > 1e9  # seconds since the epoch
