"""REPORT.md: the paper's claims C1-C4, each with the evidence of this run, for or against.

Which comparisons decide a claim is the pre-registered analysis plan's (harness.reporting.plan,
docs/analysis-plan.md): per claim, primary comparisons, Holm-corrected across the claim's primary
comparisons x tasks and the only ones a verdict counts, and secondary ones, shown with unadjusted
CIs. Verdicts follow the plan's rule whichever way the evidence points; no threshold is tuned per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.registry import method_factory
from harness.core.runs import versions
from harness.evaluation.compare import compare_table, heldout_gap_table, level_table, load_pairs, load_runs
from harness.evaluation.metrics import RESAMPLES
from harness.reporting.cost_tables import cost_tables
from harness.reporting.plan import (
    NO_VERDICT,
    PLAN_PATH,
    Comparison,
    DevScore,
    Plan,
    gate_reason,
    holm,
    load_plan,
    load_versions,
    plan_changes,
)
from harness.reporting.result_tables import RESULT_COLUMNS, calibration_section, markdown_table
from harness.reporting.stage_probes import stage_probe_section

NOT_APPLIED = "not applied"
"""The gate column where no dev numbers were given (harness reproduce does not play dev yet)."""


def claim_tests(profile: Profile, plan: Plan | None = None) -> list[Comparison]:
    """Returns the plan's comparisons whose methods the profile runs (its methods and ablations)."""
    plan = load_plan() if plan is None else plan
    run = set(profile.methods) | set(profile.ablations)
    return [c for c in plan.comparisons if {c.method, c.baseline} - {""} <= run]


def _applies(c: Comparison, task: str) -> bool:
    return c.tasks is None or task in c.tasks


def _table(profile: Profile, runs: Path, t: Comparison) -> pd.DataFrame:
    """Returns the comparison table one test reads its rows from (empty when a run is missing)."""
    names = [t.method, t.baseline] if t.baseline else [t.method]
    seeds = profile.seeds if set(names) <= set(profile.methods) else profile.ablation_seeds
    tasks = [task for task in profile.tasks if _applies(t, task)]
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


UNDEFINED = {"method": None, "baseline": None, "diff": None, "ci_low": None, "ci_high": None, "p_value": None}


def evidence(
    profile: Profile,
    runs: Path,
    tests: Sequence[Comparison],
    plan: Plan | None = None,
    dev: Mapping[tuple[str, str], DevScore] | None = None,
) -> pd.DataFrame:
    """Returns one row per (test, task) with both values, the difference, its CI and p, and the verdict.

    `row` numbers the tests in order; a test that is the same test as an earlier one (same method,
    baseline, metric, kind and bar) has `same_as` set to that row. A metric the tables lack (one the
    plan names before scoring computes it) gives undefined rows; missing runs give none. `dev`: the
    gate's numbers per (task, method); without them the gate is not applied.
    """
    rows = []
    tables: dict[tuple, pd.DataFrame] = {}
    first: dict[tuple, int] = {}
    for n, t in enumerate(tests, start=1):
        # One table holds every metric of a (method, baseline, kind, bar): its bootstrap runs once.
        where = (t.method, t.baseline, t.kind, t.bar, t.tasks)
        if where not in tables:
            tables[where] = _table(profile, runs, t)
        table, same_as = tables[where], first.setdefault(t.key, n)
        for task in dict.fromkeys(table["task"]) if len(table) else []:
            found = table[(table["task"] == task) & (table["metric"] == t.metric)]
            # A metric the table lacks is undefined on the same episodes (a plotted sweep still counts them).
            r = (
                found.iloc[0].to_dict()
                if len(found)
                else {**table[table["task"] == task].iloc[0].to_dict(), **UNDEFINED}
            )
            rows.append(
                {
                    "claim": t.claim, "role": t.role, "row": n, "same_as": same_as if same_as != n else None,
                    "test": t.label, "claimed": t.claimed, "why": t.why, "task": task,
                    **{k: r[k] for k in (*UNDEFINED, "seeds", "episodes", "n", "resampled")},
                }
            )  # fmt: skip
    return judge(pd.DataFrame(rows), tests, load_plan() if plan is None else plan, dev)


def _fmt(value: object) -> str:
    return "-" if value is None or (isinstance(value, float) and pd.isna(value)) else f"{value:.3f}"


def judge(
    rows: pd.DataFrame, tests: Sequence[Comparison], plan: Plan, dev: Mapping[tuple[str, str], DevScore] | None
) -> pd.DataFrame:
    """Returns `rows` (one per test and task, `row` numbering `tests` from 1) with the gate, Holm p and verdict.

    Per claim, its primary rows that pass the gate form one Holm family; an undefined p counts as 1 there
    (the family keeps its planned size), and a row that is the same test twice within it counts once.
    Secondary rows get no Holm p and the verdict 'not counted'.
    """
    rows = rows.copy()
    if not len(rows):
        return rows.assign(gate=[], p_holm=[], verdict=[])
    rows["gate"], rows["p_holm"], rows["verdict"] = NOT_APPLIED, None, "not counted"
    for i, r in rows.iterrows():
        t = tests[int(r["row"]) - 1]
        if dev is not None and t.role == "primary":
            reason = gate_reason(plan.gate, dev, r["task"], [m for m in (t.method, t.baseline) if m])
            rows.at[i, "gate"] = "passed" if reason is None else reason
    for claim in dict.fromkeys(rows["claim"]):
        family = rows[
            (rows["claim"] == claim) & (rows["role"] == "primary") & rows["gate"].isin([NOT_APPLIED, "passed"])
        ]
        tested = family.assign(_test=family["same_as"].fillna(family["row"]).astype(int))
        first = tested.drop_duplicates(["_test", "task"])
        p = [1.0 if v is None or pd.isna(v) else float(v) for v in first["p_value"]]
        adjusted = dict(zip(zip(first["_test"], first["task"]), holm(p)))
        for i, r in tested.iterrows():
            rows.at[i, "p_holm"] = adjusted[(r["_test"], r["task"])]
            rows.at[i, "verdict"] = _verdict(
                r["diff"], r["p_value"], rows.at[i, "p_holm"], tests[int(r["row"]) - 1].sign, plan.alpha
            )
        gated = (rows["claim"] == claim) & (rows["role"] == "primary") & ~rows["gate"].isin([NOT_APPLIED, "passed"])
        rows.loc[gated, "verdict"] = NO_VERDICT
    return rows


def _verdict(diff: object, p: object, p_holm: float, sign: int, alpha: float) -> str:
    """Returns 'supports' or 'contradicts' when the Holm p is under alpha (by the side of the difference),
    else 'inconclusive' (also when the metric is undefined)."""
    if diff is None or pd.isna(diff) or p is None or pd.isna(p) or p_holm >= alpha or diff == 0:
        return "inconclusive"
    return "supports" if sign * float(diff) > 0 else "contradicts"


def claim_verdicts(rows: pd.DataFrame, tests: Sequence[Comparison], tasks: Sequence[str]) -> dict[str, dict[str, str]]:
    """Returns, per claim and task, the claim's verdict from its primary comparisons alone.

    supported: every planned primary comparison supports (one without a row, runs missing, does not);
    contradicted: at least one contradicts and none supports; mixed: some support and some contradict;
    no verdict at this scale: the gate judged none of them; inconclusive otherwise. A claim or task
    without any row is left out.
    """
    out: dict[str, dict[str, str]] = {}
    for claim in dict.fromkeys(t.claim for t in tests):
        for task in tasks:
            planned = [
                n for n, t in enumerate(tests, 1) if t.claim == claim and t.role == "primary" and _applies(t, task)
            ]
            part = (
                rows[(rows["claim"] == claim) & (rows["task"] == task) & (rows["role"] == "primary")]
                if len(rows)
                else rows
            )
            if not planned or not len(part):
                continue
            found = dict(zip(part["row"], part["verdict"]))
            verdicts = [found.get(n, "runs missing") for n in planned]
            s, c = verdicts.count("supports"), verdicts.count("contradicts")
            if all(v == NO_VERDICT for v in verdicts):
                out.setdefault(claim, {})[task] = NO_VERDICT
            elif s == len(verdicts):
                out.setdefault(claim, {})[task] = "supported"
            else:
                out.setdefault(claim, {})[task] = "mixed" if s and c else "contradicted" if c else "inconclusive"
    return out


CLAIMS = {
    "C1": "Plain SFT on look-ahead traces (sft-mimic) learns the format of foresight, not the capability.",
    "C2": "WM-AMT, then FE-SFT, then FC-RL fixes it: capability from mid-training, calibration from RL.",
    "C3": "The method beats ReAct, sft-mimic and vanilla RL on search and math tasks.",
    "C4": "Capability must come first: the order of the stages matters, and it is not just more data.",
}


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


def _entropy_note(summary: pd.DataFrame) -> str:
    """Returns what the table's p_entropy column shows: its range, against the 0 that would leave RL nothing to move."""
    values = pd.to_numeric(summary["p_entropy"], errors="coerce").dropna() if "p_entropy" in summary else []
    zero = "0 bits would mean GRPO never samples another p there, so RL could not move it"
    return f"here {min(values):.2f} to {max(values):.2f} bits; {zero}" if len(values) else zero


def plan_section(plans: Sequence[Plan], rows: pd.DataFrame) -> list[str]:
    """Returns the report's lines naming the plan (version, sha256, changes from the version before) and its rule."""
    plan = plans[-1]
    a = plan.alpha
    applied = len(rows) and (rows.loc[rows["role"] == "primary", "gate"] != NOT_APPLIED).any()
    lines = [
        f"Analysis plan: version {plan.version} of `harness/{PLAN_PATH.parent.name}/{PLAN_PATH.name}`"
        " (docs/analysis-plan.md gives its reasons),",
        f"sha256 of its content `{plan.sha256}`.",
        "It alone decides which comparisons count; it changes only by a new version, and this report then",
        "lists what changed.",
        "",
    ]
    if len(plans) > 1:
        lines += [f"Changed from version {plans[-2].version}:", ""]
        lines += [f"- {line}" for line in plan_changes(plans[-2], plan)] or ["- nothing but the version number"]
        lines.append("")
    else:
        lines += ["No earlier version.", ""]
    lines += [
        "Verdict rule: each comparison's difference gets a two-sided bootstrap p. Per claim, Holm-Bonferroni",
        f"runs across its primary comparisons x tasks (alpha {a}). A primary comparison *supports* the claim on",
        f"a task when its Holm-adjusted p < {a} with the claimed sign, *contradicts* it when < {a} with the other",
        "sign, and is *inconclusive* otherwise (an undefined metric counts as p = 1). Per claim and task, from",
        "the primary comparisons alone: *supported* when every one supports, *contradicted* when at least one",
        "contradicts and none supports, *mixed* when some support and some contradict, *inconclusive*",
        "otherwise (a primary comparison whose runs are missing does not support). Secondary comparisons are",
        "shown with unadjusted CIs and p and never counted. The gate: a primary comparison is judged on a task",
        f"only where every method in it clears the random policy's success by {plan.gate.above_random} on dev",
        f"and writes its format on at least {plan.gate.format_rate} of its dev turns; elsewhere '{NO_VERDICT}'.",
        "The gate is applied here, from the dev numbers given."
        if applied
        else "The gate is not applied in this report: `harness reproduce` plays no dev runs yet, so every "
        "primary comparison is judged.",
        "",
        f"Near duplicates: {plan.near_duplicates['match']} are to be reported",
        f"{plan.near_duplicates['reported']}; the primary comparisons use "
        f"{plan.near_duplicates['primary_comparisons_use']} (that group is not in this report yet).",
        "",
    ]
    return lines


def _row_cells(r: pd.Series) -> list[str]:
    """Returns a row's comparison and value cells; a test stated earlier says '= row N' instead of its numbers."""
    if r["same_as"] is not None and not pd.isna(r["same_as"]):
        return [f"= row {int(r['same_as'])}", r["claimed"], r["task"], "", "", "", "", "", ""]
    one_seed = " (1 seed: no seed variance)" if r["seeds"] == 1 else ""
    return [
        r["test"], r["claimed"], r["task"], _fmt(r["method"]), _fmt(r["baseline"]), _fmt(r["diff"]),
        f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", _fmt(r["p_value"]), f"{r['n']}{one_seed}",
    ]  # fmt: skip


def claim_section(rows: pd.DataFrame, tests: Sequence[Comparison], tasks: Sequence[str], claim: str) -> list[str]:
    """Returns one claim's lines: its verdict per task, the primary rows with Holm p and verdict, the secondary rows."""
    part = rows[rows["claim"] == claim] if len(rows) else rows
    if not len(part):
        return ["No runs bear on this claim yet.", ""]
    by_task = claim_verdicts(rows, tests, tasks).get(claim, {})
    primary, secondary = part[part["role"] == "primary"], part[part["role"] == "secondary"]
    family = primary[primary["p_holm"].notna()]
    size = len(family.assign(_t=family["same_as"].fillna(family["row"])).drop_duplicates(["_t", "task"]))
    lines = [
        f"Verdict by task, from the primary comparisons (a Holm family of {size}): "
        + (", ".join(f"{task} **{v}**" for task, v in by_task.items()) or "none, no primary comparison has runs")
        + ".",
        "",
        "| # | primary comparison | claimed | task | method | baseline | diff | 95% CI | p | n = S x E | Holm p "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in primary.iterrows():
        cells = [str(r["row"]), *_row_cells(r), _fmt(r["p_holm"]), r["verdict"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    notes = {n: t.note for n, t in enumerate(tests, 1) if t.claim == claim and t.note}
    lines += [f"Row {n}: {note}." for n, note in notes.items()] + ([""] if notes else [])
    if len(secondary):
        lines += [
            "| # | secondary comparison (not counted) | claimed | task | method | baseline | diff | 95% CI | p "
            "| n = S x E |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += ["| " + " | ".join([str(r["row"]), *_row_cells(r)]) + " |" for _, r in secondary.iterrows()]
        lines.append("")
    return lines


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
    plans = load_versions()
    tests = claim_tests(profile, plans[-1])
    rows = evidence(profile, runs, tests, plans[-1]) if rows is None else rows
    lines = [
        f"# Reproduction report: profile `{profile.name}`",
        "",
        "Built by `harness reproduce` from the runs in the store; every number below comes from their",
        "`episodes.jsonl`.",
        "",
        *plan_section(plans, rows),
        "What the comparisons isolate: C1 looks inside sft-mimic alone (its format rate against the plan's",
        "bar; its fidelity on held-out test instances, which need parts of the world no train expert episode",
        "shows, minus on familiar ones; and that drop against foresight-no-rl's on the same episodes, so that",
        "harder instances alone do not explain it). C2 compares the three stages with mimicry and each stage",
        "with the method without it. C4's foresight-no-order trains foresight-no-rl's very data (D_world at the",
        "full language-model loss, D_look at the agent-token loss, the same token budgets) shuffled into one",
        "stage: against foresight-no-rl it isolates the order of the stages; foresight-no-amt (sft-mimic's",
        "stage, then FC-RL) isolates WM-AMT. Q-error and Q_ref use the reference policy of D_look's p (README, data).",
        "",
        f"Seeds: {profile.seeds} (ablations: {profile.ablation_seeds}). Tasks: {', '.join(profile.tasks)}.",
        "",
        f"Each bootstrap ({RESAMPLES:,} resamples) draws seeds with replacement, then episodes within every drawn",
        "seed, the same draws for method and baseline; `p` is its two-sided p of the difference and",
        "n = S x E the seeds times the episodes per seed. A row of one seed carries no seed variance.",
        "",
    ]
    left_out = [c for c in plans[-1].comparisons if c not in tests]
    for claim, text in CLAIMS.items():
        lines += [f"## {claim}. {text}", "", *claim_section(rows, tests, list(profile.tasks), claim)]
        lines += [f"Not run by this profile: {c.label} ({c.role})." for c in left_out if c.claim == claim]
        lines += [""] if any(c.claim == claim for c in left_out) else []
    lines += stage_probe_section(profile, runs)
    lines += ["## Results by method and task (mean over seeds)", ""]
    lines += [markdown_table(summary, RESULT_COLUMNS), ""]
    lines += [
        "A dash means the metric does not apply (no verbal p) or no episode defined it. `format_rate_t1`,",
        "`_t2`, `_t3plus`: the format rate at the first, second and later turns of each episode. `mean_p` is",
        "the mean first-turn p (against `success`: the overconfidence gap), `p_entropy` the model's entropy in",
        f"bits at the p token of the first turn ({_entropy_note(summary)}),",
        "`q_error` is against the reference policy's value Q_ref, `q_error_star` against the expert's Q*;",
        "both are over the turns that wrote a p, `p_coverage` of all turns.",
        "",
        *calibration_section(summary),
        "## Cost and environment",
        "",
        *(cost.lines() if cost else ["- wall time and peak memory: not measured (rebuilt by `harness report`)"]),
        "- " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        "",
        *cost_tables(profile, runs),
        "Figures: `results/figures/`. Tables: `results/tables/`.",
    ]
    return "\n".join(lines) + "\n"
