"""REPORT.md's result tables: which summary columns it shows, how they are headed, the calibration section.

The all-turn calibration metrics are secondary to the first-turn ones and say so in their headers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

ALL_TURNS = ("ece_all", "brier", "brier_skill_all", "auroc")
"""Calibration over every turn with a p: secondary to the first-turn metrics, labelled "(all turns)"."""


def shown_name(column: str) -> str:
    """Returns a table column's header: the all-turn calibration metrics (and their spreads) say "all turns"."""
    base = column.removesuffix("_std")
    return f"{column} (all turns)" if base in ALL_TURNS else column


RESULT_COLUMNS = (
    "task", "method", "seeds", "episodes", "success", "success_per_seed", "random_policy", "format_rate",
    "format_rate_t1", "format_rate_t2", "format_rate_t3plus", "fidelity@1", "mean_p", "p_entropy", "p_coverage",
    "q_error", "q_error_star", "selection_gain", "selection_gain_star", "training_tokens",
)  # fmt: skip
CALIBRATION_COLUMNS = (
    "task", "method", "seeds", "episodes", "first_p_coverage", "brier_skill_first", "auroc_first", "brier_first",
    "ece_first", "reliability_first", "resolution_first", "uncertainty_first", "p_coverage", "ece_all", "brier",
    "brier_skill_all", "auroc",
)  # fmt: skip
RLCR_ANCHOR = (
    "Reading anchor, from the RLCR paper, not measured here: on HotpotQA with Qwen2.5-7B, RLVR reaches",
    "ECE 0.37 and AUROC 0.50; RLCR ECE 0.03, Brier 0.21 and AUROC 0.69.",
)


def markdown_table(summary: pd.DataFrame, columns: Sequence[str]) -> str:
    """Returns the summary's `columns` (those present) as a markdown table, a dash for a missing value."""
    found = [c for c in columns if c in summary]
    shown = summary[found].astype(object).where(summary[found].notna(), "-")
    shown = shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v).rename(columns=shown_name)
    return shown.to_markdown(index=False)


def calibration_section(summary: pd.DataFrame) -> list[str]:
    """Returns REPORT.md's calibration section: first-turn metrics first, all-turn ones after, and RLCR's anchor."""
    with_p = summary[summary["first_p_coverage"].notna()] if "first_p_coverage" in summary else summary.iloc[:0]
    if with_p.empty:
        return []
    return [
        "## Calibration of p (mean over seeds)",
        "",
        "First turns are the primary unit: one p per episode, scored against the episode's success.",
        "`first_p_coverage` is the share of episodes whose first turn wrote a parsed p, `p_coverage` the share",
        "of all turns; each metric covers only those turns. `brier_skill_first` = 1 - Brier / (base rate x",
        "(1 - base rate)): above 0 only if p carries information; `auroc_first` 0.5 = none. Reliability -",
        "resolution + uncertainty = Brier (Murphy). Columns marked (all turns) score every turn with a p.",
        "",
        markdown_table(with_p, CALIBRATION_COLUMNS),
        "",
        *RLCR_ANCHOR,
        "",
    ]
