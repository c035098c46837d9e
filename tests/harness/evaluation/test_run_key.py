"""A run's key changes exactly when something its files depend on changes; a stale run is named as such."""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.config import load_profile
from harness.core.runs import run_dir, stale_reason
from harness.evaluation.evaluate import run_key, run_to_make

SMOKE = load_profile("smoke")


def key(method: str, overrides: dict | None = None, task: str = "countdown", seed: int = 0) -> str:
    return run_key(method, task, load_profile("smoke", overrides), seed)


def test_a_run_key_follows_the_stages_data_and_eval_the_run_uses() -> None:
    base = key("react")
    assert key("react") == base  # stable
    assert key("react", {"stages.sft.tokens": 8000}) != base
    assert key("react", {"eval.max_turn_tokens": 40}) != base
    assert key("react", {"data.look_k": 3}) != base  # D_expert's data hash covers the data spec
    assert key("react", seed=1) != base and key("vanilla-rl") != base
    assert key("react", task="graph-nav") != base


def test_a_run_key_ignores_what_the_run_does_not_use() -> None:
    base = key("react")
    assert key("react", {"stages.fc-rl.steps": 9}) == base  # react has no fc-rl
    assert key("react", {"seeds": [0, 1, 2], "description": "another"}) == base
    assert key("foresight", {"stages.fc-rl.steps": 9}) != key("foresight")


def _run(runs: Path, manifest: dict | None) -> Path:
    path = run_dir(runs, "smoke", "countdown", "react", 0)
    path.mkdir(parents=True)
    if manifest is not None:
        (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "metrics.json").write_text("{}")
    return path


def test_a_complete_run_is_current_only_under_its_own_key(tmp_path: Path) -> None:
    current = key("react")
    assert run_to_make("react", "countdown", SMOKE, 0, tmp_path / "none") == "missing"
    path = _run(tmp_path / "a", {"run_key": current})
    assert run_to_make("react", "countdown", SMOKE, 0, tmp_path / "a") is None
    assert stale_reason(path, "0123456789abcdef") == (
        f"it was made under another config (run key {current}, now 0123456789abcdef)"
    )
    _run(tmp_path / "b", {"config_hash": "x"})
    assert run_to_make("react", "countdown", SMOKE, 0, tmp_path / "b") == (
        "its manifest records no run key (made by an older harness)"
    )
    broken = _run(tmp_path / "c", None)
    (broken / "manifest.json").write_text("{not json")
    assert stale_reason(broken, current) == "its manifest.json is unreadable"
