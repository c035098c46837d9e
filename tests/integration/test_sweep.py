"""`harness sweep` end to end on a reduced smoke profile: points in the run store, shared stages trained once,
a rerun that resumes, and the sweep's tables, claims, figures and BUDGET.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.core.runs import run_dir
from tests.cli_inprocess import run
from tests.integration.test_reproduce import smoke_variant

pytestmark = pytest.mark.heavy


def test_a_steps_sweep_trains_shared_stages_once_and_reports_each_point(monkeypatch, capsys, tmp_path: Path) -> None:
    profile = smoke_variant(tmp_path / "sweep-smoke.yaml", ["graph-nav"], ["foresight", "foresight-no-rl"], [])
    args = ["sweep", "--profile", str(profile), "--name", "steps", "--vary", "stages.fc-rl.steps=1,2",
            "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out")]  # fmt: skip
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 0, err + out
    assert "sweep steps: 2 point(s) x 2 run(s)" in out and "4 run(s) trained and evaluated" in out
    # The initial model, wm-amt and fe-sft once, and one fc-rl per point.
    assert len(list((tmp_path / "cache").glob("*/stage.json"))) == 5
    points = [f"sweep-smoke~steps/stages.fc-rl.steps={s}" for s in (1, 2)]
    no_rl = [run_dir(tmp_path / "runs", p, "graph-nav", "foresight-no-rl", 0) / "metrics.json" for p in points]
    assert no_rl[0].read_text().replace(points[0], points[1]) == no_rl[1].read_text()  # same stages, same numbers
    table = pd.read_csv(tmp_path / "out" / "points.csv")
    assert table["stages.fc-rl.steps"].tolist() == [1, 1, 2, 2]
    assert table["method"].tolist() == ["foresight", "foresight-no-rl"] * 2
    assert (table["success_ci_low"] <= table["success"]).all() and (table["success"] <= table["success_ci_high"]).all()
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    pair = "foresight vs foresight-no-rl"
    # The analysis plan's comparisons of the pair: C2's primary one and its three secondary ones.
    metrics = ("brier_skill_first", "auroc_first", "ece_first", "selection_gain")
    assert set(claims["test"]) == {f"{pair}: {m}" for m in metrics}
    assert sorted(claims["stages.fc-rl.steps"]) == [1] * 4 + [2] * 4  # 4 comparisons x 1 task per point
    assert (tmp_path / "out" / "figures" / "foresight_vs_foresight-no-rl_ece_first.png").is_file()
    section = (tmp_path / "out" / "BUDGET.md").read_text()
    assert section.startswith("## How the verdicts move with budget") and "stages.fc-rl.steps=2" in section
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 0 and "0 run(s) trained and evaluated" in out, err + out
