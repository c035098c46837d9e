"""REPORT.md's "Did each stage do its job?": stage probes of planted runs, averaged over seeds by hand."""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.config import load_profile
from harness.core.runs import run_dir
from harness.reporting.stage_probes import stage_probe_section, stage_rows

PROFILE = load_profile("smoke", {"seeds": [0, 1]})


def _plant(runs: Path, method: str, seed: int, metrics: dict) -> None:
    path = run_dir(runs, PROFILE.name, "countdown", method, seed)
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))


def _wm(familiar: float, heldout: float | None, n_heldout: int = 20) -> dict:
    return {"familiar": familiar, "heldout": heldout, "n_familiar": 200, "n_heldout": n_heldout, "heldout_dropped": 1}


def test_rows_average_the_seeds_and_dash_what_was_not_recorded(tmp_path: Path) -> None:
    rl = {"reward_first": 0.5, "reward_last": 1.0, "brier_first_step": None, "brier_last_step": 0.25}
    _plant(tmp_path, "foresight", 0, {"world_model": {"wm-amt": _wm(0.5, 0.25), "fe-sft": _wm(0.25, None)},
                                      "rl": {"fc-rl": rl}})  # fmt: skip
    _plant(tmp_path, "foresight", 1, {"world_model": {"wm-amt": _wm(1.0, 0.75, 30)}, "rl": {}})
    _plant(tmp_path, "react", 0, {"success": 1.0})  # made before the probes existed: no row
    assert stage_rows(PROFILE, tmp_path, "countdown") == [
        # wm-amt: familiar (0.5 + 1.0) / 2, held-out (0.25 + 0.75) / 2; items 200, (20 + 30) / 2, dropped 1
        "| foresight | wm-amt | 0.750 | 0.500 | 200 / 25 / 1 | - | - | - | - |",
        "| foresight | fe-sft | 0.250 | - | 200 / 20 / 1 | - | - | - | - |",  # seed 1 has no fe-sft entry
        "| foresight | fc-rl | - | - | - | 0.500 | 1.000 | - | 0.250 |",
    ]
    section = stage_probe_section(PROFILE, tmp_path)
    assert section[0] == "## Did each stage do its job?"
    assert section[section.index("### graph-nav") + 2] == "no run records stage probes."
