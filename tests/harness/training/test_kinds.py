"""The stage-kind registry, StageJob as a value, and the weighted rewards of a grpo stage."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.training import distributed
from harness.training.job import Checkpoint, StageJob
from harness.training.stages import (
    GRPO_EPISODE_TOKENS,
    KINDS,
    GrpoSettings,
    SftSettings,
    StageKind,
    StageSpec,
    settings_for,
    stage_cost,
)


def test_each_kind_names_its_settings_rows_batch_cost_and_trainer() -> None:
    sft, grpo = SftSettings(tokens=5000, batch_size=4), GrpoSettings(steps=3, prompts_per_step=2, num_generations=4)
    found = {
        name: (k.settings, k.plays_episodes, k.step_batch(sft if k.settings is SftSettings else grpo), k.fit)
        for name, k in KINDS.items()
    }
    assert found == {
        "sft": (SftSettings, False, (4, "batch_size"), "harness.training.sft:fit_agentic"),
        "wm-amt": (SftSettings, False, (4, "batch_size"), "harness.training.sft:fit_full_text"),
        "grpo": (GrpoSettings, True, (8, "prompts_per_step * num_generations"), "harness.training.grpo:fit_grpo"),
    }
    assert stage_cost(StageSpec("s", "wm-amt", "world", "react", sft)) == 5000
    assert stage_cost(StageSpec("r", "grpo", "prompts", "react", grpo)) == 3 * 2 * 4 * GRPO_EPISODE_TOKENS
    assert [KINDS["sft"].budget(sft), KINDS["grpo"].budget(grpo)] == ["5000 tokens", "3 steps"]
    with pytest.raises(HarnessError, match=r"unknown stage kind 'dpo' \(known: sft, wm-amt, grpo\)"):
        settings_for("dpo", {}, "stages.x")


def test_a_new_kind_is_one_registration(monkeypatch) -> None:
    """A kind added to the registry alone gets its settings, its launch split and its cost from its entry."""
    planted = StageKind("dpo", SftSettings, False, lambda s: (s.batch_size * 3, "3 * batch_size"), lambda s: 7,
                        lambda s: "7 pairs", "json:dumps")  # fmt: skip
    monkeypatch.setitem(KINDS, "dpo", planted)
    spec = StageSpec("pref", "dpo", "look", "foresight", settings_for("dpo", {"batch_size": 2}, "stages.pref"))
    assert spec.settings == SftSettings(batch_size=2) and stage_cost(spec) == 7
    distributed.check_split(spec, 3)
    with pytest.raises(HarnessError, match=r"stage pref: 3 \* batch_size = 6 does not split evenly over 4"):
        distributed.check_split(spec, 4)
    job = StageJob(spec, "graph-nav", {}, 0, Path("w"))
    assert job.kind is planted and job.kind.trainer()({"a": 1}) == '{"a": 1}'  # the module:function it names


def test_a_stage_job_round_trips_through_pickle_as_the_launcher_sends_it(tmp_path: Path) -> None:
    spec = StageSpec("fe-sft", "sft", "look", "foresight", SftSettings(tokens=10))
    job = StageJob(spec, "graph-nav", {"n_train": 4}, 3, tmp_path / "w.partial",
                   Checkpoint("abc", tmp_path / "abc", (tmp_path / "a1",)), ["row"], tmp_path / "w", 8)  # fmt: skip
    back = pickle.loads(pickle.dumps(job))
    assert back == job and back.label == "graph-nav seed3 fe-sft"
    assert back.make_task().config.n_train == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.seed = 4  # type: ignore[misc]


def test_a_grpo_stage_weighs_each_reward_where_it_is_defined() -> None:
    from harness.training.grpo import stage_rewards

    rewards = stage_rewards(GrpoSettings(lambda_success=1.0, lambda_cal=0.25, lambda_fid=0.5))
    assert [(r.name, r.weight) for r in rewards] == [("success", 1.0), ("calibration", 0.25), ("fidelity", 0.5)]
    fields = {"success": [1, 0], "calibration": [0.5, 0.75], "fidelity": [0.0, 1.0]}
    assert [r.fn([], [], **fields) for r in rewards] == [[1.0, 0.0], [0.5, 0.75], [0.0, 1.0]]
    # Success stays at weight 0, so that TRL logs train-side success; the others leave at 0.
    only = stage_rewards(GrpoSettings(lambda_success=0.0, lambda_cal=1.0, lambda_fid=0.0))
    assert [(r.name, r.weight) for r in only] == [("success", 0.0), ("calibration", 1.0)]
