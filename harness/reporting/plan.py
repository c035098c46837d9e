"""The pre-registered analysis plan (analysis_plan.yaml, docs/analysis-plan.md): which comparisons decide a claim.

The plan is data: per claim, its primary comparisons (the only ones a verdict counts, Holm-corrected
across the claim's primary comparisons x tasks) and its secondary ones (shown, never counted), the
alpha, the verdict rule and the gate. Versions are appended, never edited; REPORT.md records the
version it used, that version's sha256 and what changed from the version before it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import HarnessError
from harness.core.registry import method_names, task_names
from harness.evaluation.scoring import P_METRICS

PLAN_PATH = Path(__file__).with_name("analysis_plan.yaml")

PENDING_METRICS = ("brier_skill_first", "auroc_first")
"""Metric names the plan may use before scoring computes them (the hierarchical-bootstrap rewrite adds
them). The known metrics are scoring's own names plus these: a comparison on a metric the tables do
not have yet shows as undefined, never as left out. Extend this list to admit a new name early."""

KINDS = ("paired", "gap", "level")
DIRECTIONS = {">": 1, ">=": 1, "<": -1, "<=": -1}
ENTRY_KEYS = ("method", "baseline", "metric", "kind", "direction", "tasks", "bar", "why", "note")
VERSION_KEYS = ("version", "alpha", "sides", "correction", "rule", "gate", "near_duplicates", "claims")

RULE = {
    "comparison": {
        "supports": "its Holm-adjusted p < alpha, with the claimed sign",
        "contradicts": "its Holm-adjusted p < alpha, with the other sign",
        "otherwise": "inconclusive",
    },
    "claim": {
        "supported": "every primary comparison supports",
        "contradicted": "at least one primary comparison contradicts and none supports",
        "mixed": "some primary comparisons support and some contradict",
        "otherwise": "inconclusive",
    },
    "secondary": "shown with unadjusted CIs and p; never counted in a verdict",
}
"""The verdict rule this code implements; a plan that states another is refused (a new rule needs new code)."""
CORRECTION = {"method": "holm", "family": "each claim's primary comparisons x tasks"}
NO_VERDICT = "no verdict at this scale"


def known_metrics() -> tuple[str, ...]:
    """Returns the metric names a comparison may name (fidelity@k for any k >= 1 besides)."""
    return ("success", "format_rate", *P_METRICS, *PENDING_METRICS)


@dataclass(frozen=True)
class Comparison:
    """One planned comparison: method vs baseline (or a bar) on a metric, and the side the paper claims."""

    claim: str
    role: str
    """primary (counted, Holm-corrected) or secondary (shown only)."""
    method: str
    baseline: str
    """'' for a level test and for a gap without a baseline."""
    metric: str
    kind: str
    """paired: method - baseline, paired by episode; gap: the method's held-out - familiar value (minus the
    baseline's, if one is named); level: the method's value - `bar`."""
    direction: str
    tasks: tuple[str, ...] | None
    """None: every task of the profile."""
    bar: float
    why: str
    note: str = ""

    @property
    def sign(self) -> int:
        """Returns +1 when the paper says the difference is above 0, -1 when below."""
        return DIRECTIONS[self.direction]

    @property
    def key(self) -> tuple[str, str, str, str, float]:
        """Returns what makes two comparisons the same test whatever they are called."""
        return (self.method, self.baseline, self.metric, self.kind, self.bar)

    @property
    def label(self) -> str:
        """Returns how the comparison reads in REPORT.md."""
        if self.kind == "level":
            return f"{self.method}: {self.metric} vs {self.bar}"
        if self.kind == "gap":
            versus = f" vs {self.baseline}" if self.baseline else ""
            return f"{self.method}{versus}, held-out - familiar: {self.metric}"
        return f"{self.method} vs {self.baseline}: {self.metric}"

    @property
    def claimed(self) -> str:
        """Returns the claimed side, e.g. '> 0' or '<= 0' (a level test's difference is value - bar)."""
        return f"{self.direction} 0"


@dataclass(frozen=True)
class Gate:
    """Where a comparison is judged: every method in it clears the random policy and writes its format, on dev."""

    split: str
    above_random: float
    format_rate: float


@dataclass(frozen=True)
class DevScore:
    """One method's numbers on one task's dev split, which the gate reads."""

    success: float
    random_policy: float
    format_rate: float


@dataclass(frozen=True)
class Plan:
    """One version of the analysis plan."""

    version: int
    sha256: str
    alpha: float
    sides: str
    gate: Gate
    near_duplicates: Mapping[str, str]
    comparisons: tuple[Comparison, ...]
    raw: Mapping[str, Any]
    """The version's content as read (what the hash covers), for listing changes between versions."""

    def claims(self) -> list[str]:
        """Returns the claims in the plan's order."""
        return list(dict.fromkeys(c.claim for c in self.comparisons))


def version_hash(raw: Mapping[str, Any]) -> str:
    """Returns the sha256 of one version's content: its JSON with sorted keys, so formatting does not count."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unknown(kind: str, name: object, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(known)
    return f"unknown {kind} {name!r} ({hint})"


def _fail(where: str, problem: str) -> HarnessError:
    return HarnessError(f"analysis plan {where}: {problem}")


def _mapping(value: object, where: str, keys: Sequence[str], required: Sequence[str]) -> Mapping[str, Any]:
    """Returns `value` as a mapping whose keys are among `keys` and include `required`; HarnessError otherwise."""
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be a mapping, not {type(value).__name__}")
    for key in value:
        if key not in keys:
            raise _fail(where, _unknown("key", key, keys))
    for key in required:
        if key not in value:
            raise _fail(f"{where}.{key}", "missing")
    return value


def _number(value: object, where: str, low: float = float("-inf"), high: float = float("inf")) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _fail(where, f"must be a number in [{low}, {high}], not {value!r}")
    return float(value)


def _comparison(entry: object, claim: str, role: str, where: str) -> Comparison:
    """Returns one plan entry as a Comparison, each name checked against what exists."""
    e = _mapping(entry, where, ENTRY_KEYS, ("method", "metric", "kind", "direction", "tasks", "why"))
    methods = method_names()
    for field in ("method", "baseline"):
        if field in e and e[field] not in methods:
            raise _fail(f"{where}.{field}", _unknown("method", e[field], methods))
    metric = e["metric"]
    if not (metric in known_metrics() or re.fullmatch(r"fidelity@[1-9][0-9]*", str(metric))):
        raise _fail(f"{where}.metric", _unknown("metric", metric, [*known_metrics(), "fidelity@1"]))
    if e["kind"] not in KINDS:
        raise _fail(f"{where}.kind", _unknown("kind", e["kind"], KINDS))
    if e["direction"] not in DIRECTIONS:
        raise _fail(f"{where}.direction", _unknown("direction", e["direction"], list(DIRECTIONS)))
    if e["kind"] == "paired" and "baseline" not in e:
        raise _fail(f"{where}.baseline", "missing (a paired comparison needs one)")
    if e["kind"] == "level" and "baseline" in e:
        raise _fail(f"{where}.baseline", "a level comparison has a bar, not a baseline")
    if (e["kind"] == "level") != ("bar" in e):
        raise _fail(
            f"{where}.bar",
            "missing (a level comparison needs one)" if "bar" not in e else "only a level comparison has one",
        )
    tasks = e["tasks"]
    if tasks != "all":
        known = task_names()
        if not isinstance(tasks, list) or not tasks:
            raise _fail(f"{where}.tasks", f"must be 'all' or a list of task names, not {tasks!r}")
        for task in tasks:
            if task not in known:
                raise _fail(f"{where}.tasks", _unknown("task", task, known))
    for field in ("why", "note"):
        if field in e and not isinstance(e[field], str):
            raise _fail(f"{where}.{field}", "must be a string")
    return Comparison(
        claim=claim,
        role=role,
        method=e["method"],
        baseline=e.get("baseline", ""),
        metric=metric,
        kind=e["kind"],
        direction=e["direction"],
        tasks=None if tasks == "all" else tuple(tasks),
        bar=_number(e["bar"], f"{where}.bar") if "bar" in e else 0.0,
        why=e["why"],
        note=e.get("note", ""),
    )


def parse_version(raw: object, where: str) -> Plan:
    """Returns one version of the plan, validated; HarnessError naming the first malformed key."""
    v = _mapping(raw, where, VERSION_KEYS, VERSION_KEYS)
    where = f"version {v['version']}"
    if isinstance(v["version"], bool) or not isinstance(v["version"], int) or v["version"] < 1:
        raise _fail(f"{where}.version", f"must be a whole number >= 1, not {v['version']!r}")
    alpha = _number(v["alpha"], f"{where}.alpha", 0.0, 1.0)
    if v["sides"] != "two":
        raise _fail(f"{where}.sides", f"only two-sided tests are implemented, not {v['sides']!r}")
    for key, implemented in (("correction", CORRECTION), ("rule", RULE)):
        if v[key] != implemented:
            raise _fail(f"{where}.{key}", f"states another {key} than the one harness.reporting.plan implements")
    g = _mapping(v["gate"], f"{where}.gate", ("split", "above_random", "format_rate", "otherwise"), ("split",))
    if g["split"] != "dev" or g.get("otherwise") != NO_VERDICT:
        raise _fail(f"{where}.gate", f"the gate reads the dev split and otherwise says {NO_VERDICT!r}")
    gate = Gate("dev", _number(g.get("above_random"), f"{where}.gate.above_random", 0.0, 1.0),
                _number(g.get("format_rate"), f"{where}.gate.format_rate", 0.0, 1.0))  # fmt: skip
    near = _mapping(
        v["near_duplicates"], f"{where}.near_duplicates", ("match", "reported", "primary_comparisons_use"),
        ("match", "reported", "primary_comparisons_use"),
    )  # fmt: skip
    claims = v["claims"]
    if not isinstance(claims, Mapping) or not claims:
        raise _fail(f"{where}.claims", "must map each claim to its primary and secondary comparisons")
    comparisons = []
    for claim, roles in claims.items():
        roles = _mapping(roles, f"{where}.claims.{claim}", ("primary", "secondary"), ("primary", "secondary"))
        for role in ("primary", "secondary"):
            entries = roles[role]
            if not isinstance(entries, list) or (role == "primary" and not entries):
                raise _fail(f"{where}.claims.{claim}.{role}", "must be a list (a non-empty one for primary)")
            for i, entry in enumerate(entries):
                comparisons.append(_comparison(entry, str(claim), role, f"{where}.claims.{claim}.{role}[{i}]"))
    return Plan(v["version"], version_hash(v), alpha, "two", gate, dict(near), tuple(comparisons), v)


def load_versions(path: Path = PLAN_PATH) -> list[Plan]:
    """Returns every version of the plan, oldest first; HarnessError when one is malformed or out of order."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"cannot read analysis plan {path}: {first}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("versions"), list) or not data["versions"]:
        raise HarnessError(f"analysis plan {path}: versions: must be a non-empty list")
    plans = [parse_version(raw, f"versions[{i}]") for i, raw in enumerate(data["versions"])]
    for i, plan in enumerate(plans):
        if plan.version != i + 1:
            raise _fail(f"versions[{i}].version", f"must be {i + 1} (versions are numbered 1, 2, ... in order)")
    return plans


def load_plan(path: Path = PLAN_PATH) -> Plan:
    """Returns the plan's latest version."""
    return load_versions(path)[-1]


def holm(p: Sequence[float]) -> list[float]:
    """Returns Holm-Bonferroni adjusted p values, in the order given.

    With the m values sorted ascending, p_(1) <= ... <= p_(m), the i-th adjusted value is
    min(1, max over j <= i of (m - j + 1) p_(j)): the running maximum keeps the order of the raw values.
    """
    m, adjusted, running = len(p), [0.0] * len(p), 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def gate_reason(gate: Gate, dev: Mapping[tuple[str, str], DevScore], task: str, methods: Sequence[str]) -> str | None:
    """Returns why a comparison of `methods` is not judged on `task` (None: it is), from dev numbers by (task, method).

    Every method must reach the random policy's success plus `gate.above_random` and write its format
    on at least `gate.format_rate` of its turns, both on dev.
    """
    for method in methods:
        score = dev.get((task, method))
        if score is None:
            return f"no dev numbers for {method}"
        if score.success - score.random_policy < gate.above_random:
            return f"{method} is {score.success - score.random_policy:.2f} above random on dev (< {gate.above_random})"
        if score.format_rate < gate.format_rate:
            return f"{method} writes its format on {score.format_rate:.2f} of its dev turns (< {gate.format_rate})"
    return None


def plan_changes(old: Plan, new: Plan) -> list[str]:
    """Returns one line per difference between two versions: settings, then comparisons added, removed or moved."""
    lines = [
        f"{key}: {json.dumps(old.raw.get(key), sort_keys=True)} -> {json.dumps(new.raw.get(key), sort_keys=True)}"
        for key in VERSION_KEYS
        if key not in ("version", "claims") and old.raw.get(key) != new.raw.get(key)
    ]

    def placed(plan: Plan) -> dict[tuple, Comparison]:
        return {(c.claim, *c.key): c for c in plan.comparisons}

    before, after = placed(old), placed(new)
    for key, c in after.items():
        was = before.get(key)
        if was is None:
            lines.append(f"added to {c.claim} ({c.role}): {c.label} {c.claimed}")
        elif (was.role, was.direction, was.tasks) != (c.role, c.direction, c.tasks):
            lines.append(
                f"{c.claim} {c.label}: {was.role} {was.claimed} on {was.tasks or 'all'} -> "
                f"{c.role} {c.claimed} on {c.tasks or 'all'}"
            )
        elif (was.why, was.note) != (c.why, c.note):
            lines.append(f"{c.claim} {c.label}: reworded (why {c.why!r}, note {c.note!r})")
    lines += [f"removed from {c.claim} ({c.role}): {c.label} {c.claimed}" for k, c in before.items() if k not in after]
    return lines
