"""REPORT.md: the paper's claims C1-C4, each with the evidence of this run, for or against.

Every verdict is computed from paired-bootstrap CIs (harness.evaluation.compare), task by task:
'supports' when the CI lies wholly on the side the paper claims, 'contradicts' when it lies
wholly on the other side, 'inconclusive' when it covers zero or the metric is undefined.
No threshold is tuned to make a claim pass; the rules are stated in the report itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.registry import method_factory
from harness.core.runs import versions
from harness.evaluation.compare import compare_table, heldout_gap_table, level_table, load_pairs, load_runs
from harness.evaluation.metrics import RESAMPLES


@dataclass(frozen=True)
class Test:
    """One comparison that bears on a claim: method vs baseline on a metric, and the claimed sign."""

    claim: str
    method: str
    baseline: str
    metric: str
    sign: int
    """+1: the paper says method > baseline on this metric; -1: method < baseline."""
    why: str
    kind: str = "paired"
    """paired: method - baseline, paired by episode; gap: the method's held-out - familiar value (minus the
    baseline's, if one is named); level: the method's value - `bar`."""
    bar: float = 0.0

    @property
    def label(self) -> str:
        """Returns how the comparison reads in REPORT.md."""
        if self.kind == "level":
            return f"{self.method}: {self.metric} vs {self.bar}"
        if self.kind == "gap":
            versus = f" vs {self.baseline}" if self.baseline else ""
            return f"{self.method}{versus}, held-out - familiar: {self.metric}"
        return f"{self.method} vs {self.baseline}: {self.metric}"


FORMAT_BAR = 0.9
"""C1's bar for "the format is learnt": a format rate above it, stated before any run."""


def claim_tests(profile: Profile) -> list[Test]:
    """Returns the comparisons behind C1-C4 for the profile's method, baselines and ablations."""
    m, ablations = profile.method, set(profile.ablations)
    mimic = "sft-mimic"
    tests = [
        Test(
            "C1",
            mimic,
            "",
            "format_rate",
            +1,
            f"mimicry learns the format (a stated bar of {FORMAT_BAR})",
            "level",
            FORMAT_BAR,
        ),
        Test("C1", mimic, "", "fidelity@1", -1, "off the expert's path its predictions fail", "gap"),
        Test("C1", mimic, "", "q_error", +1, "off the expert's path its p drifts from Q_ref", "gap"),
        Test(
            "C1", mimic, "foresight-no-rl", "fidelity@1", -1, "its drop off the path exceeds foresight-no-rl's", "gap"
        ),
        Test("C2", m, mimic, "fidelity@1", +1, "the three stages predict observations better than mimicry"),
        Test("C2", m, mimic, "q_error", -1, "the three stages' p is nearer Q_ref than mimicry's"),
        Test("C2", m, mimic, "ece_all", -1, "the three stages are better calibrated than mimicry"),
        Test("C2", "foresight-no-rl", mimic, "fidelity@1", +1, "WM-AMT before the same D_look adds capability"),
        Test("C2", m, "foresight-no-rl", "ece_all", -1, "FC-RL refines calibration"),
        Test("C2", m, "foresight-no-rl", "brier", -1, "FC-RL refines calibration (Brier)"),
        Test("C2", m, "foresight-no-rl", "selection_gain", +1, "FC-RL makes p more useful for choosing plans"),
        Test("C2", m, "foresight-success-only", "ece_all", -1, "the calibration term lowers ECE at equal RL (RLCR)"),
        Test("C2", m, "foresight-success-only", "brier", -1, "the calibration term lowers Brier at equal RL (RLCR)"),
    ]
    tests += [Test("C3", m, b, "success", +1, f"foresight beats {b}") for b in profile.baselines]
    tests += [
        Test("C4", m, "foresight-no-amt", "success", +1, "capability first: without WM-AMT success drops"),
        Test("C4", m, "foresight-no-amt", "fidelity@1", +1, "capability first: without WM-AMT fidelity drops"),
        Test("C4", "foresight-no-rl", "foresight-no-order", "success", +1, "order: the same data shuffled is worse"),
        Test("C4", "foresight-no-rl", "foresight-no-order", "fidelity@1", +1, "order: shuffled, fidelity drops"),
    ]
    return [t for t in tests if {t.method, t.baseline} - {m, ""} <= ablations | set(profile.methods)]


def verdict(row: pd.Series, sign: int) -> str:
    """Returns 'supports', 'contradicts' or 'inconclusive' for one compared metric."""
    if row["ci_low"] is None or pd.isna(row["ci_low"]):
        return "inconclusive"
    low, high = sign * row["ci_low"], sign * row["ci_high"]
    if min(low, high) > 0:
        return "supports"
    if max(low, high) < 0:
        return "contradicts"
    return "inconclusive"


ALL_TURNS = ("ece_all", "brier", "brier_skill_all", "auroc")
"""Calibration over every turn with a p: secondary to the first-turn metrics, labelled "(all turns)"."""


def shown_name(column: str) -> str:
    """Returns a table column's header: the all-turn calibration metrics (and their spreads) say "all turns"."""
    base = column.removesuffix("_std")
    return f"{column} (all turns)" if base in ALL_TURNS else column


def _fmt(value: object) -> str:
    return "-" if value is None or (isinstance(value, float) and pd.isna(value)) else f"{value:.3f}"


def evidence(profile: Profile, runs: Path, tests: Sequence[Test]) -> pd.DataFrame:
    """Returns one row per (test, task) with both values, the difference, its CI and the verdict."""
    rows = []
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    for t in tests:
        key = (t.method, t.baseline, t.kind, t.bar)
        if key not in tables:
            tables[key] = _table(profile, runs, t)
        table = tables[key]
        for _, row in table[table["metric"] == t.metric].iterrows() if len(table) else []:
            rows.append(
                {
                    "claim": t.claim,
                    "test": t.label,
                    "why": t.why,
                    "task": row["task"],
                    "method": row["method"],
                    "baseline": row["baseline"],
                    "diff": row["diff"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                    "p_value": row["p_value"],
                    "seeds": row["seeds"],
                    "episodes": row["episodes"],
                    "n": row["n"],
                    "resampled": row["resampled"],
                    "verdict": verdict(row, t.sign),
                }
            )
    return pd.DataFrame(rows)


def _table(profile: Profile, runs: Path, t: Test) -> pd.DataFrame:
    """Returns the comparison table one test reads its row from (empty when a run is missing)."""
    names = [t.method, t.baseline] if t.baseline else [t.method]
    seeds = profile.seeds if set(names) <= set(profile.methods) else profile.ablation_seeds
    tasks = list(profile.tasks)
    verbal = tuple(method_factory(name)(profile).verbal_p for name in names)
    try:
        if t.baseline:
            pairs = load_pairs(profile, runs, t.method, t.baseline, tasks, seeds)
        else:
            pairs, verbal = load_runs(profile, runs, t.method, tasks, seeds), verbal * 2
    except HarnessError:
        return pd.DataFrame()
    k = profile.data.look_k
    if t.kind == "level":
        return level_table(pairs, verbal[0], k, t.bar)
    if t.kind == "gap":
        return heldout_gap_table(pairs, verbal, k, against_baseline=bool(t.baseline))
    return compare_table(pairs, verbal, k)


def claim_summary(rows: pd.DataFrame, claim: str) -> str:
    """Returns one sentence counting the verdicts behind a claim."""
    part = rows[rows["claim"] == claim] if len(rows) else rows
    if not len(part):
        return "no runs bear on this claim yet."
    counts = part["verdict"].value_counts()
    s, c, i = (int(counts.get(k, 0)) for k in ("supports", "contradicts", "inconclusive"))
    overall = "supported" if s > i and not c else "contradicted" if c > i and not s else "not established"
    return f"**{overall}** here: {s} comparison(s) support it, {c} contradict it, {i} are inconclusive."


CLAIMS = {
    "C1": "Plain SFT on look-ahead traces (sft-mimic) learns the format of foresight, not the capability.",
    "C2": "WM-AMT, then FE-SFT, then FC-RL fixes it: capability from mid-training, calibration from RL.",
    "C3": "The method beats ReAct, sft-mimic and vanilla RL on search and math tasks.",
    "C4": "Capability must come first: the order of the stages matters, and it is not just more data.",
}


RESULT_COLUMNS = (
    "task", "method", "seeds", "episodes", "success", "success_per_seed", "random_policy", "format_rate",
    "format_rate_t1", "format_rate_t2", "format_rate_t3plus", "fidelity@1", "mean_p", "p_entropy", "p_coverage",
    "q_error", "q_error_star", "selection_gain", "training_tokens",
)  # fmt: skip
CALIBRATION_COLUMNS = (
    "task", "method", "seeds", "episodes", "first_p_coverage", "brier_skill_first", "auroc_first", "brier_first",
    "ece_first", "reliability_first", "resolution_first", "uncertainty_first", "p_coverage", "ece_all", "brier",
    "brier_skill_all", "auroc",
)  # fmt: skip
RLCR_ANCHOR = (
    "Reading anchor, from the RLCR paper (Damani et al., 2025), not measured here: on HotpotQA with",
    "Qwen2.5-7B, RLVR reaches ECE 0.37 and AUROC 0.50; RLCR ECE 0.03, Brier 0.21 and AUROC 0.69.",
)


def _markdown(summary: pd.DataFrame, columns: Sequence[str]) -> str:
    """Returns the summary's `columns` (those present) as a markdown table, a dash for a missing value."""
    found = [c for c in columns if c in summary]
    shown = summary[found].astype(object).where(summary[found].notna(), "-")
    shown = shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v).rename(columns=shown_name)
    return shown.to_markdown(index=False)


def _claim_table(part: pd.DataFrame) -> list[str]:
    """Returns the markdown lines of one claim's comparisons, each with its p value and n = S x E."""
    lines = [
        "| comparison | task | method | baseline | diff | 95% CI | p | n = S x E | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in part.iterrows():
        one_seed = " (1 seed: no seed variance)" if r["seeds"] == 1 else ""
        lines.append(
            f"| {r['test']} | {r['task']} | {_fmt(r['method'])} | {_fmt(r['baseline'])} | {_fmt(r['diff'])} "
            f"| [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {_fmt(r['p_value'])} | n = {r['n']}{one_seed} "
            f"| {r['verdict']} |"
        )
    return [*lines, ""]


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
        _markdown(with_p, CALIBRATION_COLUMNS),
        "",
        *RLCR_ANCHOR,
        "",
    ]


@dataclass(frozen=True)
class Cost:
    """Wall time and peak memory of one `harness reproduce` call."""

    wall_s: float
    peak_mb: float
    """Peak resident memory of the reproduce process itself."""
    worker_peak_mb: float
    """Peak resident memory of its largest worker process (0 without workers, i.e. --jobs 1)."""
    jobs: int

    def lines(self) -> list[str]:
        """Returns the report's bullet points for this cost."""
        memory = f"- peak resident memory: reproduce process {self.peak_mb:.0f} MiB"
        if self.jobs > 1:
            bound = self.peak_mb + self.jobs * self.worker_peak_mb
            memory += (
                f", largest of its worker processes {self.worker_peak_mb:.0f} MiB; with --jobs {self.jobs} "
                f"at most {bound:.0f} MiB at once"
            )
        return [
            f"- wall time of this `harness reproduce`: {self.wall_s / 60:.1f} min"
            " (runs already in the store are not re-timed)",
            memory,
        ]


def write_report(
    profile: Profile,
    runs: Path,
    summary: pd.DataFrame,
    out: Path,
    cost: Cost | None,
    rows: pd.DataFrame | None = None,
) -> str:
    """Returns the text of REPORT.md (the caller writes it) built from the run store.

    `cost` is None when the report is rebuilt from stored runs (`harness report`), which times nothing.
    `rows` are the claim tests' evidence, if the caller computed them already (before timing itself).
    """
    rows = evidence(profile, runs, claim_tests(profile)) if rows is None else rows
    lines = [
        f"# Reproduction report: profile `{profile.name}`",
        "",
        "Built by `harness reproduce` from the runs in the store; every number below comes from their",
        "`episodes.jsonl`. Verdict rule, per task: the 95% paired-bootstrap CI of (method - baseline) lies",
        "wholly on the side the paper claims (supports), wholly on the other side (contradicts), or covers 0",
        "(inconclusive). A claim is *supported* here when supporting comparisons outnumber inconclusive ones",
        "and none contradicts it, *contradicted* in the mirror case, and *not established* otherwise.",
        "",
        "What the comparisons isolate: C1 looks inside sft-mimic alone (its format rate against a bar stated",
        f"before any run, {FORMAT_BAR}; its fidelity and Q-error on held-out test instances, which need parts of",
        "the world no train expert episode shows, minus on familiar ones; and that drop against",
        "foresight-no-rl's on the same episodes, so that harder instances alone do not explain it).",
        "C2 compares the three stages with mimicry and each stage with the method without it. C4's",
        "foresight-no-order trains foresight-no-rl's very data (D_world at the full language-model loss,",
        "D_look at the agent-token loss, the same token budgets) shuffled into one stage: against",
        "foresight-no-rl it isolates the order of the stages; foresight-no-amt (sft-mimic's stage, then",
        "FC-RL) isolates WM-AMT. Q-error and Q_ref use the reference policy of D_look's p (README, data).",
        "",
        f"Seeds: {profile.seeds} (ablations: {profile.ablation_seeds}). Tasks: {', '.join(profile.tasks)}.",
        "",
        f"Each bootstrap ({RESAMPLES:,} resamples) draws seeds with replacement, then episodes within every drawn",
        "seed, the same draws for method and baseline; `p` is its two-sided p of the difference and",
        "n = S x E the seeds times the episodes per seed. A row of one seed carries no seed variance.",
        "",
    ]
    for claim, text in CLAIMS.items():
        lines += [f"## {claim}. {text}", "", claim_summary(rows, claim), ""]
        part = rows[rows["claim"] == claim] if len(rows) else rows
        if len(part):
            lines += _claim_table(part)
    lines += ["## Results by method and task (mean over seeds)", ""]
    lines += [_markdown(summary, RESULT_COLUMNS), ""]
    lines += [
        "A dash means the metric does not apply (no verbal p) or no episode defined it. `format_rate_t1`,",
        "`_t2`, `_t3plus`: the format rate at the first, second and later turns of each episode. `mean_p` is",
        "the mean first-turn p (against `success`: the overconfidence gap), `p_entropy` the model's entropy in",
        "bits at the p token of the first turn (about 0: GRPO never samples another p, so RL cannot move it),",
        "`q_error` is against the reference policy's value Q_ref, `q_error_star` against the expert's Q*;",
        "both are over the turns that wrote a p, `p_coverage` of all turns.",
        "",
        *calibration_section(summary),
        "## Cost and environment",
        "",
        *(cost.lines() if cost else ["- wall time and peak memory: not measured (rebuilt by `harness report`)"]),
        "- " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        "",
        "Figures: `results/figures/`. Tables: `results/tables/`.",
    ]
    return "\n".join(lines) + "\n"
