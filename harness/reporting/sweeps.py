"""A sweep's claims against its budget axis: one figure per claim comparison, and the REPORT section.

Input is the claim evidence of every point (harness.reporting.report.evidence, one row per claim
comparison and task, with the paired difference and its 95% CI), each row tagged with the point's
value on every axis. The first axis is the budget on the x axis; the other axes, if any, give
each task one line per combination of their values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from harness.reporting.plots import STYLE, TASK_LINES, TASK_MARKERS, _save

TASK_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def figure_name(test: str) -> str:
    """Returns a file name for one claim comparison, e.g. 'C2_foresight_vs_foresight-no-rl_ece_all'."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", test).strip("_")


def _ordered(values: Sequence[Any]) -> list[Any]:
    """Returns the distinct values, numbers ascending, in first-seen order otherwise."""
    distinct = list(dict.fromkeys(values))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct):
        return sorted(distinct)
    return distinct


def plot_claim(rows: pd.DataFrame, axes: Sequence[str], test: str, out: Path) -> list[Path]:
    """Returns the PNG and PDF of one claim comparison: effect +- 95% CI against the first axis, one line per task.

    The x positions are evenly spaced (budgets usually grow geometrically) and labelled with the values;
    a missing CI (an undefined metric) leaves the point out rather than drawing a zero.
    """
    x_axis, others = axes[0], list(axes[1:])
    part = rows[rows["test"] == test]
    budgets = _ordered(part[x_axis].tolist())
    position = {v: i for i, v in enumerate(budgets)}
    tasks = list(dict.fromkeys(part["task"]))
    combos = list(dict.fromkeys(tuple(r[a] for a in others) for _, r in part.iterrows())) if others else [()]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        for ti, task in enumerate(tasks):
            for ci, combo in enumerate(combos):
                sel = part[part["task"] == task]
                for axis, value in zip(others, combo):
                    sel = sel[sel[axis] == value]
                sel = sel[sel["diff"].notna()].copy()
                if sel.empty:
                    continue
                sel["_x"] = sel[x_axis].map(position) + (ti - (len(tasks) - 1) / 2) * 0.06
                sel = sel.sort_values("_x")
                low = (sel["diff"] - sel["ci_low"]).clip(lower=0)
                high = (sel["ci_high"] - sel["diff"]).clip(lower=0)
                varied = [(a, v) for a, v in zip(others, combo) if part[a].nunique() > 1]  # not one-value axes
                label = task + (" (" + ", ".join(f"{a}={v}" for a, v in varied) + ")" if varied else "")
                ax.errorbar(
                    sel["_x"], sel["diff"], yerr=[low, high], capsize=2,
                    color=TASK_COLORS[ti % len(TASK_COLORS)], marker=TASK_MARKERS[ti % len(TASK_MARKERS)],
                    linestyle=TASK_LINES[ci % len(TASK_LINES)], label=label,
                )  # fmt: skip
        ax.set_xticks(range(len(budgets)), [str(b) for b in budgets])
        ax.set_xlabel(x_axis)
        episodes = part["episodes"].dropna()
        n = f"n = {int(episodes.min())}" + (f"-{int(episodes.max())}" if episodes.nunique() > 1 else "")
        ax.set_ylabel(f"difference ({test.rsplit(': ', 1)[-1]})")
        ax.set_title(f"{test}\n95% paired-bootstrap CI, {n} episodes per task and point", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
        else:  # the metric is undefined at every point (e.g. no verbal p): say so rather than draw nothing
            ax.text(0.5, 0.5, "undefined at every point", transform=ax.transAxes, ha="center", color="0.4")
        return _save(fig, out, figure_name(test))


def plot_claims(rows: pd.DataFrame, axes: Sequence[str], out: Path) -> list[Path]:
    """Returns the figures of every claim comparison in `rows` (one per comparison)."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for test in dict.fromkeys(rows["test"]) if len(rows) else []:
        written += plot_claim(rows, axes, test, out)
    return written


def _trend(part: pd.DataFrame) -> str:
    """Returns how one comparison's verdict moves from the smallest to the largest budget."""
    first, last = part.iloc[0], part.iloc[-1]
    if first["verdict"] == last["verdict"]:
        moved = (
            ""
            if pd.isna(first["diff"]) or pd.isna(last["diff"])
            else f" (diff {first['diff']:+.3f} -> {last['diff']:+.3f})"
        )
        return f"stays {last['verdict']}{moved}"
    return f"{first['verdict']} -> {last['verdict']}"


def budget_section(rows: pd.DataFrame, axes: Sequence[str], sweep: str, figures: str) -> str:
    """Returns the REPORT.md section "How the verdicts move with budget" from the points' claim evidence.

    One table per claim: each comparison and task, its difference [95% CI] and verdict at every
    budget (the first axis; one row per combination of the other axes), and how the verdict moves
    from the smallest to the largest budget. `figures` is the folder the figures are in, as the
    report should link it.
    """
    x_axis, others = axes[0], list(axes[1:])
    lines = [
        "## How the verdicts move with budget",
        "",
        f"Sweep `{sweep}`: the claim comparisons above, recomputed at every point of the grid "
        f"(`{x_axis}`" + (f"; also varied: {', '.join(f'`{a}`' for a in others)}" if others else "") + "). "
        "Each cell is the paired difference (method - baseline) [95% CI] and its verdict by the rule above. "
        f"Figures: `{figures}/` (one per comparison, effect +- CI against `{x_axis}`, one line per task).",
        "",
    ]
    if not len(rows):
        return "\n".join([*lines, "No point of the sweep has runs yet.", ""])
    budgets = _ordered(rows[x_axis].tolist())
    for claim in dict.fromkeys(rows["claim"]):
        part = rows[rows["claim"] == claim]
        lines += [f"### {claim}", ""]
        head = ["comparison", "task", *others, *(f"{x_axis}={b}" for b in budgets), "smallest -> largest"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for keys, group in part.groupby(["test", "task", *others], sort=False):
            group = group.set_index(x_axis).reindex([b for b in budgets if b in set(group[x_axis])])
            cells = []
            for b in budgets:
                if b not in group.index:
                    cells.append("-")
                    continue
                r = group.loc[b]
                diff = "-" if pd.isna(r["diff"]) else f"{r['diff']:+.3f}"
                ci = "" if pd.isna(r["ci_low"]) else f" [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                cells.append(f"{diff}{ci} {r['verdict']}")
            keys = keys if isinstance(keys, tuple) else (keys,)
            lines.append("| " + " | ".join([*map(str, keys), *cells, _trend(group.reset_index())]) + " |")
        lines.append("")
    return "\n".join(lines)


EVIDENCE_COLUMNS = (
    "claim", "role", "row", "same_as", "test", "claimed", "why", "task", "method", "baseline", "diff", "ci_low",
    "ci_high", "p_value", "seeds", "episodes", "gate", "p_holm", "verdict",
)  # fmt: skip


def budget_section_for(folder: Path) -> str:
    """Returns the section "How the verdicts move with budget" of the sweep written to `folder`
    (results/sweeps/<name>), from its claims.csv; the axes are claims.csv's columns after the evidence's.

    For REPORT.md: `text = budget_section_for(Path("results/sweeps/rl-steps"))`, then paste or append it.
    """
    claims = pd.read_csv(folder / "claims.csv")
    axes = [c for c in claims.columns if c not in EVIDENCE_COLUMNS]
    return budget_section(claims, axes, folder.name, str(folder / "figures"))
