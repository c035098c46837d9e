"""A sweep's results under results/sweeps/<name>/: a table per point, the claims per point, figures, a REPORT section.

    points/<key>=<value>,.../summary.{csv,md}   per task and method: success with its 95% CI (seeds, then
                                               episodes, resampled), ECE, Brier, AUROC, fidelity@1,
                                               format rate, training tokens, wall time
    points.csv, points.md                      all points' rows, with a column per axis
    claims.csv                                 every claim comparison of REPORT.md at every point: paired
                                               difference, 95% CI, verdict (harness.reporting.report.evidence)
    moves.csv, moves.md                        each method against itself at the first axis's first value
                                               (the other axes equal): paired difference per metric and 95% CI
    figures/<comparison>.{png,pdf}             effect +- CI against the first axis, one line per task
    BUDGET.md                                  the section "How the verdicts move with budget"

Runs missing at a point leave its rows out (a partial sweep still reports what it has).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.core.config import Profile
from harness.core.registry import method_factory
from harness.core.runs import is_complete, read_records, read_run, run_dir
from harness.core.store import atomic_write_text
from harness.evaluation.compare import Pair, compare_table
from harness.evaluation.metrics import success_summary
from harness.reporting.report import claim_tests, evidence
from harness.reporting.sweeps import budget_section, plot_claims
from harness.running.reproduce import summary_table
from harness.running.sweep import Point, Sweep, point_slug

POINT_COLUMNS = (
    "task", "method", "seeds", "episodes", "success", "success_ci_low", "success_ci_high", "ece_all", "brier",
    "auroc", "fidelity@1", "format_rate", "training_tokens", "wall_s",
)  # fmt: skip


def point_table(profile: Profile, runs: Path) -> pd.DataFrame:
    """Returns one row per (task, method) of a point's complete runs: the reproduce summary plus the
    success CI (seeds, then episodes, resampled) and the mean wall time (train + eval) per run."""
    table = summary_table(profile, runs)
    if table.empty:
        return pd.DataFrame(columns=list(POINT_COLUMNS))
    lows, highs, walls = [], [], []
    for _, row in table.iterrows():
        found = [(s, run_dir(runs, profile.name, row["task"], row["method"], s)) for s in profile.seeds]
        found = [(s, p) for s, p in found if is_complete(p)]
        paths = [p for _, p in found]
        records = [(s, r) for s, p in found for r in read_records(p / "episodes.jsonl")]
        ci = success_summary([float(r["success"]) for _, r in records], 0, seeds=[s for s, _ in records])
        lows.append(ci["ci_low"])
        highs.append(ci["ci_high"])
        seconds = [sum(json.loads((p / "manifest.json").read_text())["wall_s"].values()) for p in paths]
        walls.append(sum(seconds) / len(seconds))
    table["success_ci_low"], table["success_ci_high"], table["wall_s"] = lows, highs, walls
    return table[[c for c in POINT_COLUMNS if c in table.columns]]


def _markdown(table: pd.DataFrame) -> str:
    shown = table.astype(object).where(table.notna(), "-")
    return shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v).to_markdown(index=False) + "\n"


def claim_rows(found: Sequence[Point], runs: Path) -> pd.DataFrame:
    """Returns the claim evidence of every point (one row per comparison and task), tagged with the point's values."""
    frames = []
    for point in found:
        rows = evidence(point.profile, runs, claim_tests(point.profile))
        if len(rows):
            frames.append(rows.assign(**{k: [v] * len(rows) for k, v in point.values.items()}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


MOVE_METRICS = ("success", "brier", "ece_all", "auroc", "fidelity@1")
"""The metrics moves.md shows (moves.csv holds every metric of `harness compare`)."""


def move_rows(sweep: Sweep, found: Sequence[Point], runs: Path) -> pd.DataFrame:
    """Returns, per method, task and point, the method's paired difference against itself at the first
    value of the first axis (the other axes equal): how a method moves with budget, episode by episode.

    Points share their instances and world noise, so the pairing is exact; a (task, seed) pair is used
    only where both runs are complete. The first point of each group has no rows.
    """
    first = next(iter(sweep.vary))
    frames = []
    for point in found:
        base = next(
            (
                p
                for p in found
                if p.values[first] == sweep.vary[first][0]
                and all(p.values[k] == v for k, v in point.values.items() if k != first)
            ),
            None,
        )
        if base is None or base is point:
            continue
        for method in sweep.methods:
            verbal = method_factory(method)(point.profile).verbal_p
            pairs = []
            for task in sweep.tasks:
                for seed in sweep.seeds:
                    here = run_dir(runs, point.profile.name, task, method, seed)
                    there = run_dir(runs, base.profile.name, task, method, seed)
                    if is_complete(here) and is_complete(there):
                        pairs.append(Pair(task, seed, read_run(here), read_run(there)))
            if not pairs:
                continue
            table = compare_table(pairs, (verbal, verbal), point.profile.data.look_k)
            table = table.rename(columns={"method": "value", "baseline": "first_value"})
            frames.append(table.assign(method=method, **{k: [v] * len(table) for k, v in point.values.items()}))
    if not frames:
        return pd.DataFrame()
    moves = pd.concat(frames, ignore_index=True)
    return moves[[*sweep.vary, "method", *(c for c in moves.columns if c not in (*sweep.vary, "method"))]]


def write_sweep_results(sweep: Sweep, found: Sequence[Point], runs: Path, out: Path) -> list[Path]:
    """Writes a sweep's tables, claims, figures and BUDGET.md under `out`; returns the files written."""
    written: list[Path] = []
    tables = []
    for point in found:
        table = point_table(point.profile, runs)
        if table.empty:
            continue
        folder = out / "points" / point_slug(point.values)
        atomic_write_text(folder / "summary.csv", table.to_csv(index=False))
        atomic_write_text(folder / "summary.md", _markdown(table))
        written += [folder / "summary.csv", folder / "summary.md"]
        tables.append(table.assign(**{k: [v] * len(table) for k, v in point.values.items()}))
    if tables:
        every = pd.concat(tables, ignore_index=True)
        every = every[[*sweep.vary, *(c for c in every.columns if c not in sweep.vary)]]
        atomic_write_text(out / "points.csv", every.to_csv(index=False))
        atomic_write_text(out / "points.md", _markdown(every))
        written += [out / "points.csv", out / "points.md"]
    moves = move_rows(sweep, found, runs)
    atomic_write_text(out / "moves.csv", moves.to_csv(index=False))
    shown = moves[moves["metric"].isin(MOVE_METRICS)] if len(moves) else moves
    atomic_write_text(out / "moves.md", _markdown(shown) if len(shown) else "no point has a run to compare yet\n")
    written += [out / "moves.csv", out / "moves.md"]
    claims = claim_rows(found, runs)
    atomic_write_text(out / "claims.csv", claims.to_csv(index=False))
    written.append(out / "claims.csv")
    axes = list(sweep.vary)
    if len(claims):
        written += plot_claims(claims, axes, out / "figures")
    atomic_write_text(out / "BUDGET.md", budget_section(claims, axes, sweep.name, str(out / "figures")))
    return [*written, out / "BUDGET.md"]
