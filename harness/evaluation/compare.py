"""`harness compare`: two methods from the run store, paired by task, seed and episode.

For every metric the table shows both methods' values over the pooled episodes of all seeds, the
difference (method minus baseline) and its 95% paired-bootstrap CI: each resample draws episode
indices within every (task, seed) group and applies them to both methods at once, so the noise
the two methods shared cancels.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.registry import method_factory
from harness.core.runs import Run, is_complete, read_run, run_dir
from harness.evaluation.scoring import RecordParts, parts_metrics, record_parts

FORMATS = ("table", "md", "csv", "latex")


@dataclass
class Pair:
    """The paired runs of one task and seed."""

    task: str
    seed: int
    method: Run
    baseline: Run


def read_checked_run(path: Path) -> Run:
    """Returns the complete run at `path`; HarnessError naming it when its episodes.jsonl lacks or adds episodes.

    metrics.json records how many episodes were scored; a file cut short (or appended to) since then
    would give other numbers than the run's own, with nothing to show for it.
    """
    run = read_run(path)
    expected = run.metrics.get("n_episodes")
    if expected is not None and expected != len(run.records):
        raise HarnessError(
            f"run {path} is corrupt: its episodes.jsonl holds {len(run.records)} episode(s), its metrics.json "
            f"says {expected}; rerun its `harness eval`"
        )
    return run


def missing_runs(
    profile: Profile,
    runs: Path,
    methods: Sequence[str],
    tasks: Sequence[str],
    seeds: Sequence[int],
    options: str | None = None,
) -> list[str]:
    """Returns, per missing or incomplete run, the command that makes it.

    `options` ends each command (the caller's own `--profile ... --runs ... --cache ...`, so that
    the runs are made where it looks); by default `--profile <name> --runs <runs>`.
    """
    options = options or f"--profile {shlex.quote(profile.name)} --runs {shlex.quote(str(runs))}"
    lines = []
    for task in tasks:
        for method in methods:
            for seed in seeds:
                if not is_complete(run_dir(runs, profile.name, task, method, seed)):
                    lines.append(f"harness eval --method {method} --task {task} --seed {seed} {options}")
    return lines


def load_pairs(
    profile: Profile,
    runs: Path,
    method: str,
    baseline: str,
    tasks: Sequence[str],
    seeds: Sequence[int] | None = None,
    options: str | None = None,
) -> list[Pair]:
    """Returns the paired runs (of the profile's seeds by default); HarnessError if any is missing or unpaired.

    `options` ends the commands the error gives for missing runs (`missing_runs`).
    """
    seeds = profile.seeds if seeds is None else seeds
    if method == baseline:
        raise HarnessError(f"cannot compare {method} with itself; pick another --baseline")
    for name in (method, baseline):
        method_factory(name)  # unknown names fail here, with the known ones listed
    missing = missing_runs(profile, runs, [method, baseline], tasks, seeds, options)
    if missing:
        raise HarnessError(
            f"{len(missing)} run(s) missing or incomplete; make them with (or pass --run-missing): "
            + "; ".join(missing)
        )
    pairs = []
    for task in tasks:
        for seed in seeds:
            a = read_checked_run(run_dir(runs, profile.name, task, method, seed))
            b = read_checked_run(run_dir(runs, profile.name, task, baseline, seed))
            if [r["instance_id"] for r in a.records] != [r["instance_id"] for r in b.records]:
                raise HarnessError(f"runs {a.path} and {b.path} did not play the same episodes; re-evaluate one")
            pairs.append(Pair(task, seed, a, b))
    return pairs


def resample_within(offsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Returns one bootstrap resample of record indices, drawn with replacement within every group
    [offsets[i], offsets[i + 1]) (a (task, seed) run), so each group keeps its size."""
    return np.concatenate(
        [lo + rng.integers(0, hi - lo, hi - lo) for lo, hi in zip(offsets[:-1], offsets[1:]) if hi > lo]
    )


def bootstrap_p(draws: Sequence[float]) -> float | None:
    """Returns the two-sided bootstrap p of a difference from its B draws d* (None without draws):
    min(1, 2 * min((1 + #{d* <= 0}) / (B + 1), (1 + #{d* >= 0}) / (B + 1)))."""
    if not len(draws):
        return None
    d, b = np.asarray(draws), len(draws) + 1
    return float(min(1.0, 2 * min((1 + np.sum(d <= 0)) / b, (1 + np.sum(d >= 0)) / b)))


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
            index = resample_within(offsets, rng)
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
                    "p_value": bootstrap_p(diffs[key]) if both else None,
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


def load_runs(profile: Profile, runs: Path, method: str, tasks: Sequence[str], seeds: Sequence[int]) -> list[Pair]:
    """Returns one method's runs, each paired with itself (for within-method tests); HarnessError if one is missing."""
    method_factory(method)
    missing = missing_runs(profile, runs, [method], tasks, seeds)
    if missing:
        raise HarnessError(f"{len(missing)} run(s) missing or incomplete; make them with: " + "; ".join(missing))
    found = []
    for task in tasks:
        for seed in seeds:
            run = read_checked_run(run_dir(runs, profile.name, task, method, seed))
            found.append(Pair(task, seed, run, run))
    return found


def _gaps(
    parts: tuple[list[RecordParts], list[RecordParts]],
    verbal: tuple[bool, bool],
    max_k: int,
    h: list[int],
    f: list[int],
) -> dict[str, tuple[float | None, float | None]]:
    """Returns, per metric, (method's, baseline's) value on records `h` minus on records `f` (None where undefined)."""
    out: dict[str, list[float | None]] = {}
    for on in (0, 1):
        mh = parts_metrics([parts[on][i] for i in h], verbal[on], max_k)
        mf = parts_metrics([parts[on][i] for i in f], verbal[on], max_k)
        for key in mh:
            out.setdefault(key, [None, None])[on] = None if mh[key] is None or mf[key] is None else mh[key] - mf[key]
    return {k: (v[0], v[1]) for k, v in out.items()}


def heldout_gap_table(
    pairs: Sequence[Pair],
    verbal: tuple[bool, bool],
    max_k: int,
    against_baseline: bool,
    seed: int = 0,
    n_resamples: int = 1000,
) -> pd.DataFrame:
    """Returns one row per (task, metric): the method's value on held-out episodes minus on familiar ones.

    Held-out episodes are those whose record says `heldout` (the instance needs a part of the world
    no train expert episode shows: off the expert's path); familiar ones are the rest. With
    `against_baseline` the difference is that gap minus the baseline's gap on the same episodes
    (a difference in differences: how much more the method drops off the path than the baseline);
    else `baseline` is None and `diff` is the method's gap. The 95% bootstrap CI resamples held-out
    and familiar episodes apart within every (task, seed), the same indices for both methods.
    """
    rows = []
    rng = np.random.default_rng([seed, 809])
    for task in dict.fromkeys(p.task for p in pairs):
        group = [p for p in pairs if p.task == task]
        a_parts = [record_parts(r, verbal[0], max_k) for p in group for r in p.method.records]
        b_parts = [record_parts(r, verbal[1], max_k) for p in group for r in p.baseline.records]
        flags = [bool(r.get("heldout")) for p in group for r in p.method.records]
        offsets = np.cumsum([0] + [len(p.method.records) for p in group])
        strata = [
            [i for i in range(lo, hi) if flags[i] == held]
            for lo, hi in zip(offsets[:-1], offsets[1:])
            for held in (True, False)
        ]
        held = [i for i, f in enumerate(flags) if f]
        familiar = [i for i, f in enumerate(flags) if not f]

        def combined(g: tuple[float | None, float | None]) -> float | None:
            if not against_baseline:
                return g[0]
            return None if g[0] is None or g[1] is None else g[0] - g[1]

        both = (a_parts, b_parts)
        point = _gaps(both, verbal, max_k, held, familiar)
        draws: dict[str, list[float]] = {k: [] for k in point}
        for _ in range(n_resamples if held and familiar else 0):
            picked = [[s[j] for j in rng.integers(0, len(s), len(s))] if s else [] for s in strata]
            h = [i for k, s in enumerate(picked) if k % 2 == 0 for i in s]
            f = [i for k, s in enumerate(picked) if k % 2 == 1 for i in s]
            for key, g in _gaps(both, verbal, max_k, h, f).items():
                value = combined(g)
                if value is not None:
                    draws[key].append(value)
        for key, g in point.items():
            value = combined(g)
            low, high = np.percentile(draws[key], [2.5, 97.5]) if value is not None and draws[key] else (None, None)
            rows.append(
                {
                    "task": task,
                    "metric": key,
                    "method": g[0],
                    "baseline": g[1] if against_baseline else None,
                    "diff": value,
                    "ci_low": None if low is None else float(low),
                    "ci_high": None if high is None else float(high),
                    "p_value": bootstrap_p(draws[key]) if value is not None else None,
                    "seeds": len(group),
                    "episodes": f"{len(held)} held-out, {len(familiar)} familiar",
                }
            )
    return pd.DataFrame(rows)


def level_table(
    pairs: Sequence[Pair], verbal: bool, max_k: int, bar: float, seed: int = 0, n_resamples: int = 1000
) -> pd.DataFrame:
    """Returns one row per (task, metric): the method's value minus a stated `bar`, with a 95% bootstrap CI
    that resamples episodes within every (task, seed)."""
    rows = []
    rng = np.random.default_rng([seed, 810])
    for task in dict.fromkeys(p.task for p in pairs):
        group = [p for p in pairs if p.task == task]
        parts = [record_parts(r, verbal, max_k) for p in group for r in p.method.records]
        offsets = np.cumsum([0] + [len(p.method.records) for p in group])
        point = parts_metrics(parts, verbal, max_k)
        draws: dict[str, list[float]] = {k: [] for k in point}
        for _ in range(n_resamples):
            index = resample_within(offsets, rng)
            for key, value in parts_metrics([parts[i] for i in index], verbal, max_k).items():
                if value is not None:
                    draws[key].append(value - bar)
        for key, value in point.items():
            low, high = np.percentile(draws[key], [2.5, 97.5]) if value is not None and draws[key] else (None, None)
            rows.append(
                {
                    "task": task,
                    "metric": key,
                    "method": value,
                    "baseline": bar,
                    "diff": None if value is None else value - bar,
                    "ci_low": None if low is None else float(low),
                    "ci_high": None if high is None else float(high),
                    "p_value": bootstrap_p(draws[key]) if value is not None else None,
                    "seeds": len(group),
                    "episodes": len(parts),
                }
            )
    return pd.DataFrame(rows)
