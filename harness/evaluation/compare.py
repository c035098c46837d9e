"""`harness compare`: two methods from the run store, paired by task, seed and episode.

For every metric the table shows both methods' values over the pooled episodes of all seeds, the
difference (method minus baseline) and its 95% paired-bootstrap CI: each resample draws episode
indices within every (task, seed) group and applies them to both methods at once, so the noise
the two methods shared cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.registry import method_factory
from harness.core.runs import Run, is_complete, read_run, run_dir
from harness.evaluation.scoring import parts_metrics, record_parts

FORMATS = ("table", "md", "csv", "latex")


@dataclass
class Pair:
    """The paired runs of one task and seed."""

    task: str
    seed: int
    method: Run
    baseline: Run


def missing_runs(
    profile: Profile, runs: Path, methods: Sequence[str], tasks: Sequence[str], seeds: Sequence[int]
) -> list[str]:
    """Returns, per missing or incomplete run, the command that makes it."""
    lines = []
    for task in tasks:
        for method in methods:
            for seed in seeds:
                if not is_complete(run_dir(runs, profile.name, task, method, seed)):
                    lines.append(f"harness eval --method {method} --task {task} --seed {seed} --profile {profile.name}")
    return lines


def load_pairs(
    profile: Profile, runs: Path, method: str, baseline: str, tasks: Sequence[str], seeds: Sequence[int] | None = None
) -> list[Pair]:
    """Returns the paired runs (of the profile's seeds by default); HarnessError if any is missing or unpaired."""
    seeds = profile.seeds if seeds is None else seeds
    if method == baseline:
        raise HarnessError(f"cannot compare {method} with itself; pick another --baseline")
    for name in (method, baseline):
        method_factory(name)  # unknown names fail here, with the known ones listed
    missing = missing_runs(profile, runs, [method, baseline], tasks, seeds)
    if missing:
        raise HarnessError(
            f"{len(missing)} run(s) missing or incomplete; make them with (or pass --run-missing): "
            + "; ".join(missing)
        )
    pairs = []
    for task in tasks:
        for seed in seeds:
            a = read_run(run_dir(runs, profile.name, task, method, seed))
            b = read_run(run_dir(runs, profile.name, task, baseline, seed))
            if [r["instance_id"] for r in a.records] != [r["instance_id"] for r in b.records]:
                raise HarnessError(f"runs {a.path} and {b.path} did not play the same episodes; re-evaluate one")
            pairs.append(Pair(task, seed, a, b))
    return pairs


def compare_table(
    pairs: Sequence[Pair], verbal: tuple[bool, bool], max_k: int, seed: int = 0, n_resamples: int = 1000
) -> pd.DataFrame:
    """Returns one row per (task, metric): both values, the difference and its paired-bootstrap CI."""
    rows = []
    rng = np.random.default_rng([seed, 808])
    for task in dict.fromkeys(p.task for p in pairs):
        group = [p for p in pairs if p.task == task]
        a_records = [r for p in group for r in p.method.records]
        b_records = [r for p in group for r in p.baseline.records]
        offsets = np.cumsum([0] + [len(p.method.records) for p in group])
        a_parts = [record_parts(r, verbal[0], max_k) for r in a_records]
        b_parts = [record_parts(r, verbal[1], max_k) for r in b_records]
        a_point = parts_metrics(a_parts, verbal[0], max_k)
        b_point = parts_metrics(b_parts, verbal[1], max_k)
        diffs: dict[str, list[float]] = {k: [] for k in a_point}
        for _ in range(n_resamples):
            index = np.concatenate(
                [lo + rng.integers(0, hi - lo, hi - lo) for lo, hi in zip(offsets[:-1], offsets[1:]) if hi > lo]
            )
            ra = parts_metrics([a_parts[i] for i in index], verbal[0], max_k)
            rb = parts_metrics([b_parts[i] for i in index], verbal[1], max_k)
            for key in diffs:
                if ra[key] is not None and rb[key] is not None:
                    diffs[key].append(ra[key] - rb[key])
        for key, a_value in a_point.items():
            b_value = b_point[key]
            both = a_value is not None and b_value is not None
            low, high = np.percentile(diffs[key], [2.5, 97.5]) if both and diffs[key] else (None, None)
            rows.append(
                {
                    "task": task,
                    "metric": key,
                    "method": a_value,
                    "baseline": b_value,
                    "diff": a_value - b_value if both else None,
                    "ci_low": None if low is None else float(low),
                    "ci_high": None if high is None else float(high),
                    "seeds": len(group),
                    "episodes": len(a_records),
                }
            )
    return pd.DataFrame(rows)


def render(table: pd.DataFrame, fmt: str, method: str, baseline: str) -> str:
    """Returns the comparison as text: an aligned table, markdown, CSV or LaTeX; None shows as a dash."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    shown = table.rename(columns={"method": method, "baseline": baseline})
    if fmt == "csv":
        return shown.to_csv(index=False)
    shown = shown.astype(object).map(lambda v: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else v)
    shown = shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)
    if fmt == "md":
        return shown.to_markdown(index=False) + "\n"
    if fmt == "latex":
        return shown.to_latex(index=False, escape=True)
    return shown.to_string(index=False) + "\n"
