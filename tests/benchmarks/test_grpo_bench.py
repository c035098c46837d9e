"""Issue 5, item 3: where an fc-rl step's time goes, read back from the stage's own log.jsonl.

A few steps of the grpo stage with the default profile's fc-rl settings (prompts per step, group
size, turn limit, KL) on the lightly trained default-size model. Each logged step carries
`time/generation_s`, `time/env_rewards_s` and `time/optimizer_s` (harness.training.callbacks.StepClock); the
environment and rewards must stay under 10% of the step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.config import Profile
from harness.core.fields import as_dict
from harness.core.registry import make_task
from harness.training.grpo import train_grpo
from harness.training.job import StageJob
from harness.training.models import load_model
from harness.training.stages import StageSpec, settings_for

from .conftest import TASK, bench_line

TARGET = 0.10
STEPS = 3


@pytest.mark.benchmark(group="grpo")
def test_bench_grpo_step_breakdown(benchmark, profile: Profile, light_model: Path, tmp_path: Path) -> None:
    task = make_task(TASK, profile.tasks[TASK])
    settings = settings_for("grpo", {**as_dict(profile.stages["fc-rl"]), "steps": STEPS, "save_every": 10_000}, "bench")
    work = tmp_path / "grpo"

    def run() -> None:
        model, tokenizer = load_model(light_model)
        work.mkdir()
        job = StageJob(StageSpec("fc-rl", "grpo", "prompts", "foresight", settings), TASK, {}, 0, work)
        train_grpo(model, tokenizer, task, job, task.splits(0).train)

    benchmark.pedantic(run, rounds=1, iterations=1)
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "time/step_s" in r]
    assert len(steps) == STEPS
    total = {k: sum(r[f"time/{k}"] for r in steps) for k in ("step_s", "generation_s", "env_rewards_s", "optimizer_s")}
    shares = {k: total[k] / total["step_s"] for k in ("generation_s", "env_rewards_s", "optimizer_s")}
    # Each step's parts add up to the step (the optimizer's part is the remainder, never negative).
    for r in steps:
        assert r["time/optimizer_s"] >= 0
        assert abs(r["time/generation_s"] + r["time/env_rewards_s"] + r["time/optimizer_s"] - r["time/step_s"]) < 1e-3
    benchmark.extra_info.update(shares)
    bench_line(
        "grpo-env-rewards-share",
        shares["env_rewards_s"],
        f"<={TARGET}",
        steps=STEPS,
        episodes_per_step=settings.prompts_per_step * settings.num_generations,
        step_s=total["step_s"] / STEPS,
        generation_share=shares["generation_s"],
        optimizer_share=shares["optimizer_s"],
    )
    assert shares["env_rewards_s"] <= TARGET
