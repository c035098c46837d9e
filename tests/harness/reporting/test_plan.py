"""The analysis plan: the loader refuses each malformed key in one line, Holm and the gate by hand, version changes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.reporting.plan import (
    PLAN_PATH,
    DevScore,
    Gate,
    gate_reason,
    holm,
    load_plan,
    load_versions,
    parse_version,
    plan_changes,
)


def _v1() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(PLAN_PATH.read_text())["versions"][0])


def test_version_1_is_the_pre_registration() -> None:
    plan = load_plan()
    assert plan.version == 1 and plan.alpha == 0.05 and plan.sides == "two"
    assert plan.gate == Gate("dev", above_random=0.15, format_rate=0.9)
    primary = {(c.claim, c.method, c.baseline, c.metric, c.kind, c.direction) for c in plan.comparisons
               if c.role == "primary"}  # fmt: skip
    assert primary == {
        ("C1", "sft-mimic", "", "format_rate", "level", ">"),
        ("C1", "sft-mimic", "", "fidelity@1", "gap", "<"),
        ("C2", "foresight", "sft-mimic", "fidelity@1", "paired", ">"),
        ("C2", "foresight", "sft-mimic", "brier_skill_first", "paired", ">"),
        ("C2", "foresight", "foresight-no-rl", "brier_skill_first", "paired", ">"),
        ("C3", "foresight", "react", "success", "paired", ">"),
        ("C3", "foresight", "sft-mimic", "success", "paired", ">"),
        ("C3", "foresight", "vanilla-rl", "success", "paired", ">"),
        ("C4", "foresight", "foresight-no-amt", "success", "paired", ">"),
        ("C4", "foresight-no-rl", "foresight-no-order", "success", "paired", ">"),
    }
    counts = {
        claim: sum(c.claim == claim and c.role == "secondary" for c in plan.comparisons) for claim in plan.claims()
    }
    assert counts == {"C1": 3, "C2": 8, "C3": 0, "C4": 2}
    bar = next(c for c in plan.comparisons if c.metric == "format_rate")
    assert bar.bar == 0.9 and "after an earlier reference was seen" in bar.note
    assert next(c for c in plan.comparisons if c.metric == "brier_skill_first" and c.kind == "level").sign == -1


def test_version_1_is_frozen() -> None:
    """Editing version 1 changes this hash: a change to the plan must be a new version instead."""
    assert load_versions()[0].sha256 == "ea7971bb7ad64b8e12542c1fe1b5a797161c9a93f7629113c84abd67d66b2e95"


def _entry(path: str, value: object = None, drop: bool = False) -> Callable[[dict], None]:
    """Returns an edit of the version at a dotted path ('claims.C2.primary.0.metric'): set `value` or drop the key."""

    def edit(v: dict) -> None:
        *parents, last = path.split(".")
        node: Any = v
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if drop:
            del node[last]
        else:
            node[last] = value

    return edit


MALFORMED = [
    (_entry("alpha", 1.5), "version 1.alpha: must be a number in [0.0, 1.0]"),
    (_entry("sides", "one"), "version 1.sides: only two-sided"),
    (_entry("rule.claim.supported", "most support"), "version 1.rule: states another rule"),
    (_entry("correction.method", "bonferroni"), "version 1.correction: states another correction"),
    (_entry("gate.above_random", "high"), "version 1.gate.above_random: must be a number"),
    (_entry("gate.split", "test"), "version 1.gate: the gate reads the dev split"),
    (_entry("near_duplicates.reported", drop=True), "version 1.near_duplicates.reported: missing"),
    (_entry("claims.C2.primary.1.metric", "brier_skil_first"), "did you mean brier_skill_first?"),
    (_entry("claims.C2.primary.1.metric", "fidelity@0"), "claims.C2.primary[1].metric: unknown metric"),
    (_entry("claims.C3.primary.0.baseline", "reakt"), "baseline: unknown method 'reakt' (did you mean react?)"),
    (_entry("claims.C1.primary.0.kind", "levels"), "C1.primary[0].kind: unknown kind 'levels' (did you mean level?)"),
    (_entry("claims.C1.primary.0.direction", "=>"), "claims.C1.primary[0].direction: unknown direction"),
    (_entry("claims.C1.primary.0.bar", drop=True), "claims.C1.primary[0].bar: missing"),
    (_entry("claims.C1.primary.0.bar", "0.9"), "claims.C1.primary[0].bar: must be a number"),
    (_entry("claims.C1.primary.0.baseline", "react"), "claims.C1.primary[0].baseline: a level comparison has a bar"),
    (_entry("claims.C3.primary.0.baseline", drop=True), "claims.C3.primary[0].baseline: missing"),
    (_entry("claims.C3.primary.0.tasks", ["countdwn"]), "unknown task 'countdwn' (did you mean countdown?)"),
    (_entry("claims.C3.primary.0.tasks", "some"), "claims.C3.primary[0].tasks: must be 'all' or a list"),
    (_entry("claims.C3.primary.0.why", drop=True), "claims.C3.primary[0].why: missing"),
    (_entry("claims.C3.primary.0.basline", "react"), "C3.primary[0]: unknown key 'basline' (did you mean baseline?)"),
    (_entry("claims.C3.primary", []), "claims.C3.primary: must be a list (a non-empty one for primary)"),
    (_entry("claims.C3.secondary", drop=True), "claims.C3.secondary: missing"),
    (_entry("claims", {}), "version 1.claims: must map each claim"),
    (_entry("gates", {}), "unknown key 'gates' (did you mean gate?)"),
    (_entry("version", 0), "version 0.version: must be a whole number >= 1"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_each_malformed_key_is_refused_in_one_line(edit: Callable[[dict], None], message: str) -> None:
    v = _v1()
    edit(v)
    with pytest.raises(HarnessError) as caught:
        parse_version(v, "versions[0]")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("analysis plan ")


def test_versions_must_be_numbered_in_order(tmp_path: Path) -> None:
    v2 = _v1()
    v2["version"] = 3
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"versions": [_v1(), v2]}))
    with pytest.raises(HarnessError, match=r"versions\[1\]\.version: must be 2"):
        load_versions(tmp_path / "plan.yaml")
    (tmp_path / "plan.yaml").write_text("versions: [\n")
    with pytest.raises(HarnessError, match="cannot read analysis plan"):
        load_versions(tmp_path / "plan.yaml")


@pytest.mark.parametrize(
    ("p", "adjusted"),
    [
        # Sorted 0.005, 0.01, 0.03, 0.04 -> x4 0.02, x3 0.03, x2 0.06, x1 0.04 -> running max 0.02, 0.03, 0.06, 0.06.
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.5, 0.2], [0.5, 0.4]),  # x2 0.4, then x1 0.5
        ([0.3, 0.6, 0.9], [0.9, 1.0, 1.0]),  # x3 0.9, x2 1.2 capped at 1, then the running max
        ([0.04], [0.04]),
        ([], []),
    ],
)
def test_holm_by_hand(p: list[float], adjusted: list[float]) -> None:
    assert holm(p) == pytest.approx(adjusted)


def test_gate_by_hand() -> None:
    gate = Gate("dev", above_random=0.15, format_rate=0.9)
    dev = {
        ("kb-search", "foresight"): DevScore(success=0.40, random_policy=0.25, format_rate=0.95),  # 0.15 above: passes
        ("kb-search", "react"): DevScore(success=0.60, random_policy=0.25, format_rate=0.90),
        ("graph-nav", "foresight"): DevScore(success=0.30, random_policy=0.20, format_rate=0.95),  # 0.10 above
        ("countdown", "foresight"): DevScore(success=0.60, random_policy=0.20, format_rate=0.50),
    }
    assert gate_reason(gate, dev, "kb-search", ["foresight", "react"]) is None
    assert gate_reason(gate, dev, "graph-nav", ["foresight"]) == "foresight is 0.10 above random on dev (< 0.15)"
    assert gate_reason(gate, dev, "countdown", ["foresight"]) == (
        "foresight writes its format on 0.50 of its dev turns (< 0.9)"
    )
    assert gate_reason(gate, dev, "kb-search", ["foresight", "vanilla-rl"]) == "no dev numbers for vanilla-rl"


def test_a_version_2_change_is_listed(tmp_path: Path) -> None:
    v2 = _v1()
    v2["version"] = 2
    v2["alpha"] = 0.01
    moved = v2["claims"]["C2"]["secondary"].pop(0)  # foresight-no-rl vs sft-mimic: fidelity@1 becomes primary
    v2["claims"]["C2"]["primary"].append(moved)
    v2["claims"]["C4"]["secondary"] = []
    v2["claims"]["C3"]["primary"][0]["note"] = "confirmed on dev"
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"versions": [_v1(), v2]}))
    old, new = load_versions(tmp_path / "plan.yaml")
    assert new.sha256 != old.sha256 and old.sha256 == load_plan().sha256
    assert plan_changes(old, new) == [
        "alpha: 0.05 -> 0.01",
        "C2 foresight-no-rl vs sft-mimic: fidelity@1: secondary > 0 on all -> primary > 0 on all",
        "C3 foresight vs react: success: reworded (why 'foresight beats react', note 'confirmed on dev')",
        "removed from C4 (secondary): foresight vs foresight-no-amt: fidelity@1 > 0",
        "removed from C4 (secondary): foresight-no-rl vs foresight-no-order: fidelity@1 > 0",
    ]
    assert plan_changes(old, old) == []
