"""Every registered method trains on the smoke profile; stages are cached and reused.

Resuming a stage killed mid-way is tested in test_reliability.py (SIGKILL at named points).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.agent import Sampling, encode, run_episodes
from harness.core.config import load_profile
from harness.core.registry import make_task, method_names
from harness.core.traces import render_observation
from harness.data.recipes import build_corpora
from harness.training.models import stop_token_ids
from harness.training.sft import tokenize_rows
from harness.training.stages import BOARD_DIR
from harness.training.train import initial_checkpoint, load_checkpoint, train_method

pytestmark = pytest.mark.slow
TASK = "graph-nav"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def smoke():
    return load_profile("smoke")


def test_foresight_runs_three_stages_then_reuses_them(cache: Path, smoke) -> None:
    _, checkpoint, outcomes = train_method("foresight", TASK, smoke, 0, cache)
    assert [o.name for o in outcomes] == ["wm-amt", "fe-sft", "fc-rl"]
    assert not any(o.reused for o in outcomes)
    for o in outcomes[:2]:
        assert o.stats["last_loss"] < o.stats["first_loss"], o
    assert outcomes[2].stats["steps"] == smoke.stages["fc-rl"].steps
    assert "corpus_tokens" not in outcomes[2].stats  # grpo reads no corpus
    _, tokenizer = load_checkpoint(initial_checkpoint(smoke, 0, cache))
    corpora = build_corpora(make_task(TASK, smoke.tasks[TASK]), smoke.data, 0)
    for o, rows, full_loss in [(outcomes[0], corpora.world, True), (outcomes[1], corpora.look, False)]:
        # The rows' own tokens, each row once: not the repeats of the length-grouped order that tokens_seen counts.
        data = tokenize_rows(rows, tokenizer, full_loss, smoke.stages[o.name].max_length)
        assert o.stats["corpus_tokens"] == sum(len(ids) for ids in data["input_ids"]), o
    for o in outcomes:
        log = (cache / o.hash / "log.jsonl").read_text().splitlines()
        assert log, f"{o.name} wrote no log"
    _, again, reused = train_method("foresight", TASK, smoke, 0, cache)
    assert all(o.reused for o in reused) and again == checkpoint


@pytest.mark.parametrize("method", [m for m in method_names() if m != "foresight"])
def test_every_method_trains_on_smoke(cache: Path, smoke, method: str) -> None:
    result_method, checkpoint, outcomes = train_method(method, TASK, smoke, 0, cache)
    assert len(outcomes) == len(result_method.stages)
    model, tokenizer = load_checkpoint(checkpoint)
    assert model.config.vocab_size == len(tokenizer)


def test_env_mask_marks_exactly_the_observation_tokens(cache: Path, smoke) -> None:
    task = make_task(TASK, smoke.tasks[TASK])
    model, tokenizer = load_checkpoint(initial_checkpoint(smoke, 0, cache))
    instances = task.splits(0).train[:6]
    rngs = [np.random.default_rng(i) for i in range(len(instances))]
    sampling = Sampling(temperature=1.0, max_turn_tokens=12, seed=3)
    episodes = run_episodes(model, tokenizer, task, instances, rngs, "foresight", sampling, stop_token_ids(tokenizer))
    for episode in episodes:
        expected_ids: list[int] = []
        expected_mask: list[int] = []
        for i, turn in enumerate(episode.turns):
            expected_ids += turn.token_ids
            expected_mask += [1] * len(turn.token_ids)
            if i < len(episode.turns) - 1:
                obs = encode(tokenizer, render_observation(turn.observation) + "\n")
                expected_ids += obs
                expected_mask += [0] * len(obs)
        assert episode.completion_ids == expected_ids
        assert episode.env_mask == expected_mask
        assert len(episode.logprobs) == len(expected_ids)
        assert all(lp == 0.0 for lp, m in zip(episode.logprobs, expected_mask) if m == 0)
        assert all(lp < 0.0 for lp, m in zip(episode.logprobs, expected_mask) if m == 1)


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Returns every scalar tag of the event files in `folder`, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_every_stage_writes_tensorboard_events_beside_its_log(cache: Path, smoke) -> None:
    _, _, outcomes = train_method("foresight", TASK, smoke, 0, cache)
    for o in outcomes:
        log = [json.loads(line) for line in (cache / o.hash / "log.jsonl").read_text().splitlines()]
        found = _scalars(cache / o.hash / BOARD_DIR)
        steps = list(range(1, o.stats["steps"] + 1))
        assert [s for s, _ in found["train/loss"]] == steps, o.name
        if o.name == "fc-rl":
            for name in ("success", "calibration", "fidelity"):
                tag = f"rl/reward/{name}"
                assert [s for s, _ in found[tag]] == steps, tag
                # The same numbers as log.jsonl's, which TRL logged at the same steps.
                expected = [r[f"rewards/{name}/mean"] for r in log if f"rewards/{name}/mean" in r]
                assert [v for _, v in found[tag]] == pytest.approx(expected, abs=1e-6), tag
            for part in ("generation_s", "env_rewards_s", "optimizer_s", "step_s"):
                assert [s for s, _ in found[f"rl/time/{part}"]] == steps, part
            assert [s for s, _ in found["rl/reward/total"]] == steps
        else:
            losses = [r["loss"] for r in log if "loss" in r]
            assert [v for _, v in found["train/loss"]] == pytest.approx(losses, rel=1e-6), o.name
            assert not [t for t in found if t.startswith("rl/")]
