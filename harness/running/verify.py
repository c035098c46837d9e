"""`harness verify`: reproduce a profile afresh and check its summary table against the committed one.

The reference of a profile is the results folder its `reference` field names (the default
profile's is `results/`, what `make reproduce` writes and the repository commits; smoke's is
`results/reference/smoke/`). Verify reads `tables/summary.csv` and `tables/environment.json`
there, reproduces the profile into a fresh work folder, and compares the two summary tables row by
row (task, method) and column by column, within the tolerances below.

Tolerances (|fresh - reference| <= atol + rtol * |reference|):

- Same environment as the reference (every package version, python and the torch thread count
  equal, as recorded in the run manifests): atol 1e-9 on every column. On CPU, same code, same
  seed and same environment give the same numbers; 1e-9 only absorbs the CSV's float printing.
- Another environment: floating-point sums then differ in their last bits, training drifts apart
  and greedy decoding can flip an action, so: atol 0.1 on every metric (shares, ECE, Brier, AUROC,
  Q-error, fidelity, selection gain and their spreads over seeds), rtol 0.1 on training tokens
  (RL stages count the tokens of the episodes they generated). Columns that only the seeds and
  the tasks determine (seeds, episodes, random_policy) stay exact everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.running.reproduce import run_missing, write_summary

KEYS = ("task", "method")
SEED_DETERMINED = ("seeds", "episodes", "random_policy")
"""Columns that depend on the seeds and task knobs alone: exact in any environment."""
PER_SEED = "success_per_seed"
"""The one text column: per-seed success, space-separated, compared number by number."""


@dataclass(frozen=True)
class Tolerance:
    """|fresh - reference| <= atol + rtol * |reference|."""

    atol: float
    rtol: float = 0.0

    def allows(self, reference: float, fresh: float) -> bool:
        """Returns whether `fresh` is within tolerance of `reference`; two missing values agree."""
        if math.isnan(reference) or math.isnan(fresh):
            return math.isnan(reference) and math.isnan(fresh)
        return abs(fresh - reference) <= self.atol + self.rtol * abs(reference)


EXACT = Tolerance(1e-9)
OTHER_ENVIRONMENT = {"training_tokens": Tolerance(0.0, 0.1)}
OTHER_ENVIRONMENT_METRIC = Tolerance(0.1)


@dataclass(frozen=True)
class Check:
    """One compared value: a (task, method) row and a column."""

    task: str
    method: str
    column: str
    reference: Any
    fresh: Any
    ok: bool
    note: str = ""


def tolerances(same_environment: bool, atol: float | None = None) -> Callable[[str], Tolerance]:
    """Returns the tolerance of each column (see the module docstring); `atol` overrides the metrics' one."""

    def of(column: str) -> Tolerance:
        if same_environment or column in SEED_DETERMINED:
            return EXACT if atol is None or column in SEED_DETERMINED else Tolerance(atol)
        if column in OTHER_ENVIRONMENT:
            return OTHER_ENVIRONMENT[column]
        return OTHER_ENVIRONMENT_METRIC if atol is None else Tolerance(atol)

    return of


def environment_differences(reference: dict[str, Any] | None, fresh: dict[str, Any]) -> list[str]:
    """Returns 'name: reference -> fresh' for every version or thread count that differs (all, if unknown)."""
    if reference is None:
        return ["the reference records no environment (no tables/environment.json)"]
    ref, new = reference.get("versions", {}), fresh.get("versions", {})
    return [
        f"{key}: {'/'.join(ref.get(key, ['?']))} -> {'/'.join(new.get(key, ['?']))}"
        for key in sorted(set(ref) | set(new))
        if ref.get(key) != new.get(key)
    ]


def _number(value: Any) -> float:
    return float("nan") if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def compare_tables(reference: pd.DataFrame, fresh: pd.DataFrame, tolerance: Callable[[str], Tolerance]) -> list[Check]:
    """Returns a Check per (row, column) of the two summary tables, plus one per missing row or column.

    The reference's columns are compared; a column only the fresh table has (a metric added since the
    reference was made) is not, so an older reference still verifies the columns both tables have.
    """
    checks = []
    ref_rows = {tuple(r[k] for k in KEYS): r for _, r in reference.iterrows()}
    new_rows = {tuple(r[k] for k in KEYS): r for _, r in fresh.iterrows()}
    columns = [c for c in reference.columns if c not in KEYS]
    for key in [k for k in ref_rows if k not in new_rows]:
        checks.append(Check(*key, "(row)", "present", "missing", False, "row missing from the fresh results"))
    for key in [k for k in new_rows if k not in ref_rows]:
        checks.append(Check(*key, "(row)", "missing", "present", False, "row not in the reference"))
    for key in [k for k in ref_rows if k in new_rows]:
        ref, new = ref_rows[key], new_rows[key]
        for column in columns:
            if column not in fresh.columns:
                checks.append(Check(*key, column, ref[column], "missing", False, "column missing from fresh results"))
            elif column == PER_SEED:
                checks.append(_per_seed_check(key, ref[column], new[column], tolerance("success")))
            else:
                a, b = _number(ref[column]), _number(new[column])
                checks.append(Check(*key, column, a, b, tolerance(column).allows(a, b)))
    return checks


def _per_seed_check(key: tuple, reference: Any, fresh: Any, tolerance: Tolerance) -> Check:
    ref = [float(v) for v in str(reference).split()]
    new = [float(v) for v in str(fresh).split()]
    # The column prints two decimals, so half a hundredth more is allowed on top of the tolerance.
    printed = Tolerance(tolerance.atol + 0.005, tolerance.rtol)
    ok = len(ref) == len(new) and all(printed.allows(a, b) for a, b in zip(ref, new))
    return Check(*key, PER_SEED, reference, fresh, ok)


def load_reference(folder: Path) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Returns the reference summary table and its environment (None when not recorded)."""
    table = folder / "tables" / "summary.csv"
    if not table.is_file():
        raise HarnessError(f"no reference table at {table}; see docs/verification.md for how one is made")
    env_path = folder / "tables" / "environment.json"
    env = json.loads(env_path.read_text()) if env_path.is_file() else None
    return read_summary(table), env


def read_summary(path: Path) -> pd.DataFrame:
    """Returns a summary.csv as written by `harness reproduce` (empty cells read as NaN)."""
    try:
        table = pd.read_csv(path, dtype={PER_SEED: str, "task": str, "method": str}, keep_default_na=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise HarnessError(f"{path} is not a readable summary table ({exc})") from None
    missing = [k for k in KEYS if k not in table.columns]
    if missing:
        raise HarnessError(f"{path} has no {missing[0]!r} column; it is not a summary table of `harness reproduce`")
    return table


def reproduce_fresh(
    profile: Profile,
    work: Path,
    cache: Path,
    jobs: int,
    echo: Callable[[str], None],
    threads: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Trains and evaluates the profile into `work` (runs/, results/tables/); returns its table and environment."""
    runs = work / "runs"
    run_missing(profile, runs, cache, jobs, echo, threads)
    tables = work / "results" / "tables"
    write_summary(profile, runs, tables)
    # Read back through the CSV, as the reference was, so both sides carry the same float printing.
    return read_summary(tables / "summary.csv"), json.loads((tables / "environment.json").read_text())


def render_checks(checks: list[Check]) -> str:
    """Returns one line per (task, method): values checked, largest difference, and what failed."""
    lines = [f"{'task':<12} {'method':<24} {'values':>6} {'max |diff|':>10}  result"]
    rows: dict[tuple[str, str], list[Check]] = {}
    for c in checks:
        rows.setdefault((c.task, c.method), []).append(c)
    for (task, method), found in rows.items():
        diffs = [
            abs(c.fresh - c.reference)
            for c in found
            if isinstance(c.fresh, float) and isinstance(c.reference, float) and not math.isnan(c.fresh - c.reference)
        ]
        failed = [c for c in found if not c.ok]
        result = "pass" if not failed else "FAIL " + ", ".join(_describe(c) for c in failed)
        lines.append(f"{task:<12} {method:<24} {len(found):>6} {max(diffs, default=0.0):>10.3g}  {result}")
    return "\n".join(lines)


def _describe(check: Check) -> str:
    if check.note:
        return f"{check.column}: {check.note}"

    def shown(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return f"{check.column} {shown(check.reference)} -> {shown(check.fresh)}"
