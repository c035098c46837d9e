"""`harness verify`: reproduce a profile afresh and check its summary table against the committed one.

The reference of a profile is the results folder its `reference` field names (the default
profile's is `results/`, what `make reproduce` writes and the repository commits; smoke's is
`results/reference/smoke/`). Verify reads `tables/summary.csv` and `tables/environment.json`
there, reproduces the profile into a fresh work folder, and compares the two summary tables row by
row (task, method) and column by column, within the tolerances below.

Which comparison (|fresh - reference| <= atol + rtol * |reference|), chosen from the two
environment.json files (`choose_comparison`):

- **bytes**: the same numeric path (torch's CPU capability and the kernel pin, NUMERIC_PATH) and
  the same environment (every package version, python and the torch thread count): atol 1e-9 on
  every column. On CPU, same code, same seed, same kernels give the same numbers; 1e-9 only
  absorbs the CSV's float printing. The CPU's model name is shown but not compared: two CPUs
  under the same capability and pin run the same kernels.
- **statistical**, when any of those differs: training then drifts apart from the first rounding
  difference and greedy decoding can flip an action, so a run is as if reseeded. Each metric's
  seed mean must lie within max(0.1, 3 * s * sqrt(2 / n)) of the reference's, where s is the
  reference's across-seed std of that metric and n its seed count: 3 standard deviations of the
  difference of two n-seed means (0.1 when the reference has one seed or no std). Each per-seed
  success within max(0.1, 3 * s_success * sqrt(2)) + 0.005 (the column prints two decimals); the
  `_std` columns within 0.1; training tokens within 10% (RL stages count the tokens of the episodes
  they generated). Columns that only the seeds and the tasks determine (seeds, episodes,
  random_policy) stay exact everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
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
SPREAD_Z = 3.0
"""Statistical comparison: standard deviations of the difference of two n-seed means allowed."""
NUMERIC_PATH = ("cpu_capability", "numerics")
"""The environment fields that name the kernels a run used (see harness.core.environ)."""
SHOWN_ONLY = ("cpu_model",)
"""Recorded and shown, not compared: the same capability under the same pin runs the same kernels."""


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
    allowed: float | None = None
    """The absolute difference the statistical comparison allowed (None for the other rules)."""


ColumnTolerance = Callable[[str, Mapping[str, Any]], Tolerance]
"""The tolerance of a column in a reference row."""


def tolerances(same_environment: bool, atol: float | None = None) -> ColumnTolerance:
    """Returns the tolerance of each column of a reference row (see the module docstring).

    `same_environment` selects the byte comparison, else the statistical one; `atol` overrides the
    metrics' absolute tolerance (the floor of the statistical one).
    """

    def of(column: str, row: Mapping[str, Any]) -> Tolerance:
        if same_environment or column in SEED_DETERMINED:
            return EXACT if atol is None or column in SEED_DETERMINED else Tolerance(atol)
        if column in OTHER_ENVIRONMENT:
            return OTHER_ENVIRONMENT[column]
        floor = OTHER_ENVIRONMENT_METRIC.atol if atol is None else atol
        return Tolerance(max(floor, seed_spread(column, row)))

    return of


def seed_spread(column: str, row: Mapping[str, Any]) -> float:
    """Returns SPREAD_Z * s * sqrt(2 / n) for a metric column: s its std over the row's n seeds (0 if unknown).

    Per-seed success compares one seed with one seed (n = 1, s the success std); a `_std` column
    and a metric without a std have no spread of their own.
    """
    if column == PER_SEED:
        std, seeds = _number(row.get("success_std")), 1.0
    elif column.endswith("_std"):
        return 0.0
    else:
        std, seeds = _number(row.get(f"{column}_std")), _number(row.get("seeds"))
    if math.isnan(std) or math.isnan(seeds) or seeds < 1:
        return 0.0
    return SPREAD_Z * std * math.sqrt(2.0 / seeds)


def environment_differences(reference: dict[str, Any] | None, fresh: dict[str, Any]) -> list[str]:
    """Returns 'name: reference -> fresh' for every version, thread count or numeric path field that differs.

    All of them, numeric path first, if the reference records none; SHOWN_ONLY fields never count.
    """
    if reference is None:
        return ["the reference records no environment (no tables/environment.json)"]
    ref, new = reference.get("versions", {}), fresh.get("versions", {})
    keys = sorted((set(ref) | set(new)) - set(SHOWN_ONLY), key=lambda k: (k not in NUMERIC_PATH, k))
    return [
        f"{key}: {'/'.join(ref.get(key, ['?']))} -> {'/'.join(new.get(key, ['?']))}"
        for key in keys
        if ref.get(key) != new.get(key)
    ]


@dataclass(frozen=True)
class Comparison:
    """Which comparison verify makes, and why: `bytes` when nothing in `differences`, else `statistical`."""

    differences: list[str]
    atol: float | None = None

    @property
    def kind(self) -> str:
        return "statistical" if self.differences else "bytes"

    def lines(self, shown: list[str] = ()) -> list[str]:
        """Returns what verify prints about the comparison it makes (`shown`: the SHOWN_ONLY fields that differ)."""
        also = f" ({'; '.join(shown)}: shown, not compared)" if shown else ""
        if not self.differences:
            tol = self.atol if self.atol is not None else 1e-9
            return [
                f"comparison: bytes: same numeric path and same environment as the reference{also}: "
                f"tolerance {tol} on every column"
            ]
        numeric = [d for d in self.differences if d.split(":")[0] in NUMERIC_PATH]
        why = "the numeric path differs from the reference" if numeric else "environment differs from the reference"
        floor = self.atol if self.atol is not None else OTHER_ENVIRONMENT_METRIC.atol
        return [
            f"comparison: statistical: {why}, so its bytes cannot be expected{also}:",
            "  environment differs from the reference (" + "; ".join(self.differences) + ")",
            f"  each metric within max({floor}, {SPREAD_Z:g} * its reference seed std * sqrt(2 / seeds)) of the "
            f"reference mean; each per-seed success within max({floor}, {SPREAD_Z:g} * success std * sqrt(2)) + 0.005; "
            f"_std columns within {floor}; 10% on training tokens; exact on seeds, episodes and random_policy",
        ]


def choose_comparison(reference: dict[str, Any] | None, fresh: dict[str, Any], atol: float | None) -> Comparison:
    """Returns the comparison of a fresh environment against the reference's (see the module docstring)."""
    return Comparison(environment_differences(reference, fresh), atol)


def shown_differences(reference: dict[str, Any] | None, fresh: dict[str, Any]) -> list[str]:
    """Returns 'name: reference -> fresh' for each SHOWN_ONLY field that differs (nothing without a reference)."""
    ref, new = (reference or {}).get("versions", {}), fresh.get("versions", {})
    return [
        f"{key}: {'/'.join(ref.get(key, ['?']))} -> {'/'.join(new.get(key, ['?']))}"
        for key in SHOWN_ONLY
        if reference is not None and ref.get(key) != new.get(key)
    ]


def _number(value: Any) -> float:
    return float("nan") if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def compare_tables(reference: pd.DataFrame, fresh: pd.DataFrame, tolerance: ColumnTolerance) -> list[Check]:
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
                checks.append(_per_seed_check(key, ref[column], new[column], tolerance(column, ref)))
            else:
                a, b = _number(ref[column]), _number(new[column])
                allowed = tolerance(column, ref)
                checks.append(Check(*key, column, a, b, allowed.allows(a, b), allowed=_shown(allowed)))
    return checks


def _per_seed_check(key: tuple, reference: Any, fresh: Any, tolerance: Tolerance) -> Check:
    ref = [float(v) for v in str(reference).split()]
    new = [float(v) for v in str(fresh).split()]
    # The column prints two decimals, so half a hundredth more is allowed on top of the tolerance.
    printed = Tolerance(tolerance.atol + 0.005, tolerance.rtol)
    ok = len(ref) == len(new) and all(printed.allows(a, b) for a, b in zip(ref, new))
    return Check(*key, PER_SEED, reference, fresh, ok, allowed=_shown(printed))


def _shown(tolerance: Tolerance) -> float | None:
    """Returns the absolute allowance worth naming in a failure: one wider than exact and not relative."""
    return tolerance.atol if tolerance.rtol == 0 and tolerance.atol > EXACT.atol else None


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

    allowed = f" (allowed {check.allowed:.3g})" if check.allowed is not None else ""
    return f"{check.column} {shown(check.reference)} -> {shown(check.fresh)}{allowed}"
