"""`harness compare`: two methods from the run store, paired by task, seed and episode.

For every metric the table shows both methods' values over the pooled episodes of all seeds, the
difference (method minus baseline), its 95% paired-bootstrap CI and two-sided bootstrap p value, and
n = seeds x episodes per seed. Each resample draws seeds with replacement, then episodes within every
drawn seed, and applies the same counts to both methods, so seed variance enters the CI and the
noise the two methods shared cancels.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.registry import method_factory
from harness.core.runs import Run, is_complete, read_run, run_dir
from harness.core.streams import stream
from harness.evaluation.metrics import RESAMPLES, bootstrap_p_value, hierarchical_weights, percentile_ci
from harness.evaluation.scoring import Sums, metrics_from_sums, record_parts, sums_for

FORMATS = ("table", "md", "csv", "latex")
N_HEADER = "n = S x E"
"""The header of the n column: seeds x episodes per seed."""


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


@dataclass(frozen=True)
class Side:
    """One method's episodes of one task, as the rows of per-episode sums its metrics are computed from."""

    layout: Sums
    rows: np.ndarray
    verbal: bool

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Returns every metric under per-episode weights (n,) or (B, n): the point value or B resampled ones."""
        return metrics_from_sums(weights @ self.rows, self.layout, self.verbal)


def side(records: Sequence[dict], verbal: bool, max_k: int) -> Side:
    """Returns the sums of `records` (episodes in the order given) for the bootstrap."""
    parts = [record_parts(r, verbal, max_k) for r in records]
    layout = sums_for(parts, max_k)
    return Side(layout, layout.matrix(parts), verbal)


def _value(v: np.ndarray) -> float | None:
    return None if np.isnan(v) else float(v)


def _row(task: str, metric: str, values: tuple, draws: np.ndarray | None, group: Sequence[Pair]) -> dict:
    """Returns one comparison row: (method, baseline, diff), the CI and p of the draws of diff, and n.

    `draws` is None where the point difference is undefined (no CI, no p).
    """
    ci = None if draws is None else percentile_ci(draws)
    sizes = sorted({len(p.method.records) for p in group})
    per_seed = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    return {
        "task": task,
        "metric": metric,
        "method": values[0],
        "baseline": values[1],
        "diff": values[2],
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "p_value": None if draws is None else bootstrap_p_value(draws),
        "seeds": len(group),
        "episodes": sum(len(p.method.records) for p in group),
        "n": f"{len(group)} x {per_seed}",
        "resampled": RESAMPLED[len(group) > 1],
    }


RESAMPLED = {True: "seeds, then episodes", False: "episodes of 1 seed (no seed variance)"}
"""What a row's bootstrap resampled: with one seed the hierarchy has no seed level to draw."""


CHUNK_CELLS = 10_000_000
"""Bootstrap counts drawn at once (resamples x episodes; 80 MB as float64): more are drawn in chunks."""


def resampled(
    values: Callable[[np.ndarray], dict[str, np.ndarray]],
    seeds: Sequence[int],
    n_resamples: int,
    rng: np.random.Generator,
    strata: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Returns `values` (per-metric arrays from (B, n) counts) over n_resamples `hierarchical_weights` resamples.

    The counts are drawn in chunks of resamples, so memory stays bounded for thousands of episodes.
    """
    step = max(1, CHUNK_CELLS // max(1, len(seeds)))
    chunks = [
        values(hierarchical_weights(seeds, min(step, n_resamples - start), rng, strata))
        for start in range(0, n_resamples, step)
    ]
    return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}


def _paired(sides: tuple[Side, Side], weights: np.ndarray) -> dict[str, np.ndarray]:
    """Returns, per metric, the method's value minus the baseline's under the same `weights`."""
    a, b = sides[0].values(weights), sides[1].values(weights)
    return {key: a[key] - b[key] for key in a}


def _seeds(group: Sequence[Pair]) -> list[int]:
    """Returns the seed of every episode of a task's runs, in record order."""
    return [p.seed for p in group for _ in p.method.records]


def compare_table(
    pairs: Sequence[Pair], verbal: tuple[bool, bool], max_k: int, seed: int = 0, n_resamples: int = RESAMPLES
) -> pd.DataFrame:
    """Returns one row per (task, metric): both values, the difference, its 95% paired-bootstrap CI and p value.

    The bootstrap is `hierarchical_weights`: seeds drawn with replacement, then episodes within each
    drawn seed, the same counts applied to both methods (paired by task, seed and episode).
    """
    rows = []
    rng = stream(seed, "bootstrap-compare")
    for task in dict.fromkeys(p.task for p in pairs):
        group = [p for p in pairs if p.task == task]
        a = side([r for p in group for r in p.method.records], verbal[0], max_k)
        b = side([r for p in group for r in p.baseline.records], verbal[1], max_k)
        point_a, point_b = a.values(np.ones(len(a.rows))), b.values(np.ones(len(b.rows)))
        draws = resampled(partial(_paired, (a, b)), _seeds(group), n_resamples, rng)
        for key in point_a:
            va, vb = _value(point_a[key]), _value(point_b[key])
            diff = None if va is None or vb is None else va - vb
            rows.append(_row(task, key, (va, vb, diff), None if diff is None else draws[key], group))
    return pd.DataFrame(rows)


def render(table: pd.DataFrame, fmt: str, method: str, baseline: str) -> str:
    """Returns the comparison as text: an aligned table, markdown, CSV or LaTeX; None shows as a dash."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    shown = table.rename(columns={"method": method, "baseline": baseline, "n": N_HEADER})
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


Gaps = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


def _gaps(sides: tuple[Side, Side], held: np.ndarray, weights: np.ndarray) -> Gaps:
    """Returns, per side and metric, the value on held-out episodes minus on familiar ones under `weights`."""
    out = []
    for s in sides:
        on_held, on_familiar = s.values(weights * held), s.values(weights * (1 - held))
        out.append({k: on_held[k] - on_familiar[k] for k in on_held})
    return out[0], out[1]


def _combined(gaps: Gaps, key: str, against_baseline: bool) -> np.ndarray:
    """Returns the method's gap, or its gap minus the baseline's (a difference in differences)."""
    return gaps[0][key] - gaps[1][key] if against_baseline else gaps[0][key]


def _gap_values(sides: tuple[Side, Side], held: np.ndarray, against_baseline: bool, weights: np.ndarray) -> dict:
    """Returns, per metric, the gap (or difference in gaps) under `weights`."""
    gaps = _gaps(sides, held, weights)
    return {key: _combined(gaps, key, against_baseline) for key in gaps[0]}


def heldout_gap_table(
    pairs: Sequence[Pair],
    verbal: tuple[bool, bool],
    max_k: int,
    against_baseline: bool,
    seed: int = 0,
    n_resamples: int = RESAMPLES,
) -> pd.DataFrame:
    """Returns one row per (task, metric): the method's value on held-out episodes minus on familiar ones.

    Held-out episodes are those whose record says `heldout` (the instance needs a part of the world
    no train expert episode shows: off the expert's path); familiar ones are the rest. With
    `against_baseline` the difference is that gap minus the baseline's gap on the same episodes
    (a difference in differences: how much more the method drops off the path than the baseline);
    else `baseline` is None and `diff` is the method's gap. The 95% bootstrap CI is `hierarchical_weights`
    with held-out and familiar episodes as strata: seeds drawn, then each stratum within a drawn seed,
    the same counts for both methods.
    """
    rows = []
    rng = stream(seed, "bootstrap-heldout-gap")
    for task in dict.fromkeys(p.task for p in pairs):
        group = [p for p in pairs if p.task == task]
        sides = (
            side([r for p in group for r in p.method.records], verbal[0], max_k),
            side([r for p in group for r in p.baseline.records], verbal[1], max_k),
        )
        held = np.array([bool(r.get("heldout")) for p in group for r in p.method.records], dtype=float)
        point = _gaps(sides, held, np.ones(len(held)))
        gap = partial(_gap_values, sides, held, against_baseline)
        draws = resampled(gap, _seeds(group), n_resamples, rng, strata=held.astype(bool))
        counts = f"{int(held.sum())} held-out, {int(len(held) - held.sum())} familiar"
        for key in point[0]:
            value = _value(_combined(point, key, against_baseline))
            shown = (_value(point[0][key]), _value(point[1][key]) if against_baseline else None, value)
            row = _row(task, key, shown, None if value is None else draws[key], group)
            rows.append({**row, "episodes": counts})
    return pd.DataFrame(rows)


def level_table(
    pairs: Sequence[Pair], verbal: bool, max_k: int, bar: float, seed: int = 0, n_resamples: int = RESAMPLES
) -> pd.DataFrame:
    """Returns one row per (task, metric): the method's value minus a stated `bar`, with a 95% bootstrap CI
    and p value from `hierarchical_weights` (seeds, then episodes within each drawn seed)."""
    rows = []
    rng = stream(seed, "bootstrap-level")
    for task in dict.fromkeys(p.task for p in pairs):
        group = [p for p in pairs if p.task == task]
        s = side([r for p in group for r in p.method.records], verbal, max_k)
        point = s.values(np.ones(len(s.rows)))
        draws = resampled(s.values, _seeds(group), n_resamples, rng)
        for key, v in point.items():
            value = _value(v)
            diff = None if value is None else value - bar
            rows.append(_row(task, key, (value, bar, diff), None if diff is None else draws[key] - bar, group))
    return pd.DataFrame(rows)
