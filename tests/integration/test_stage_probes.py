"""A smoke run's metrics.json carries the stage probes: world-model accuracy after each stage, RL first/last steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.data.recipes import build_corpora
from harness.evaluation import world_model
from harness.evaluation.evaluate import evaluate_run
from harness.reporting.stage_probes import stage_rows
from harness.training.stages import stage_status

pytestmark = pytest.mark.slow


def _set_sizes(smoke) -> tuple[int, int, int]:
    """Returns (familiar, held-out, dropped) counted here from the corpora and dev exploration, not by probe_sets:
    the distinct (state, action) lines of D_world's exploration episodes (all of them: fewer than 200 on smoke),
    and of the dev-side episodes those whose context occurs in no training text, and those that do."""
    task = make_task("graph-nav", smoke.tasks["graph-nav"])
    corpora = build_corpora(task, smoke.data, 0)
    text = "\n".join(t for ds in (corpora.expert, corpora.look, corpora.world) for t in ds["text"])

    def contexts(episodes) -> set[str]:
        return {f"world {task.describe(s)} act {a} ->" for e in episodes for s, a in zip(e.states, e.actions)}

    dev = contexts(world_model.dev_episodes(task, 0))
    familiar = min(world_model.WORLD_MODEL_ITEMS, len(contexts(corpora.world_episodes)))
    unseen = {c for c in dev if c not in text}
    return familiar, min(world_model.WORLD_MODEL_ITEMS, len(unseen)), len(dev) - len(unseen)


def test_metrics_carry_each_stage_probe_and_shared_stages_are_probed_once(tmp_path: Path, monkeypatch) -> None:
    smoke = load_profile("smoke")
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    path, metrics = evaluate_run("foresight", "graph-nav", smoke, 0, cache, runs)
    assert json.loads((path / "metrics.json").read_text())["world_model"] == metrics["world_model"]
    stages = metrics["cost"]["stages"]
    assert list(metrics["world_model"]) == ["wm-amt", "fe-sft", "fc-rl"] == list(stages)
    expected = _set_sizes(smoke)
    for name, probe in metrics["world_model"].items():
        assert 0.0 <= probe["familiar"] <= 1.0 and 0.0 <= probe["heldout"] <= 1.0, name
        assert (probe["n_familiar"], probe["n_heldout"], probe["heldout_dropped"]) == expected
        stage = stages[name]["hash"]
        assert (cache / f"{stage}.probe.json").is_file() and stage_status(cache / stage) == "complete"
    assert list(metrics["rl"]) == ["fc-rl"]
    logged = json.loads((cache / stages["fc-rl"]["hash"] / "stage.json").read_text())["stats"]
    rl = metrics["rl"]["fc-rl"]
    assert (rl["reward_first"], rl["reward_last"]) == (logged["first_reward"], logged["last_reward"])
    assert rl["steps_logged"] == smoke.stages["fc-rl"].steps

    def refuse(*_: object) -> None:
        raise AssertionError("a stage already probed was probed again")

    monkeypatch.setattr(world_model, "probe_sets", refuse)
    _, shared = evaluate_run("foresight-no-rl", "graph-nav", smoke, 0, cache, runs)
    assert shared["world_model"] == {k: metrics["world_model"][k] for k in ("wm-amt", "fe-sft")}
    assert shared["rl"] == {}
    rows = stage_rows(smoke, runs, "graph-nav")
    assert [r.split(" | ")[:2] for r in rows] == [
        ["| foresight", "wm-amt"], ["| foresight", "fe-sft"], ["| foresight", "fc-rl"],
        ["| foresight-no-rl", "wm-amt"], ["| foresight-no-rl", "fe-sft"],
    ]  # fmt: skip
    assert rows[0].split(" | ")[4] == " / ".join(map(str, expected))
