"""Every stage data-parallel under `accelerate launch`, checked with 2 gloo processes on the CPU (issue 17).

- sft and wm-amt: 2 processes at half the batch each read the very rows of 1 process at the whole
  batch (the same tokens at every step) and log the same losses within LOSS_TOL; the evaluation of
  the trained model gives the same metrics within METRIC_TOL.
- grpo: every prompt slot of a step is played once over the 2 processes; on each process the
  completions, env_mask and rewards it returns are replayed token by token against the world;
  a run whose processes are SIGKILLed resumes and ends with the bytes of an unbroken 2-process run.
- LoRA on SmolLM2-135M: 2 processes train a few sft steps and write one adapter.
Commands run as real processes (tests/cli_processes.py), as a user types them.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from harness.agent import action_of, encode
from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.core.streams import stream
from harness.core.traces import normalize, parse_turn, render_observation
from harness.training.grpo import TRACE_ENV
from harness.training.models import load_model
from tests.cli_processes import harness

pytestmark = pytest.mark.heavy

PROFILE = """\
description: smoke-sized, for the data-parallel tests
seeds: [0]
ablation_seeds: [0]
tasks:
  graph-nav: {n_nodes: 8, horizon: 6, n_train: 40, n_dev: 4, n_test: 12}
model: {hidden_size: 32, n_layers: 2, n_heads: 2, intermediate_size: 64, max_positions: 512}
data: {look_k: 2, world_episodes: 60, outcome_every: 2, expert_share: 0.2}
stages:
  sft: {tokens: SFT_TOKENS, lr: 0.003, batch_size: 8, save_every: 1000, max_length: 512}
  wm-amt: {tokens: 4000, lr: 0.003, batch_size: 8, save_every: 1000}
  fe-sft: {tokens: 4000, lr: 0.003, batch_size: 8, save_every: 1000}
  rl: {steps: 3, prompts_per_step: 2, num_generations: 4, lr: 0.0001, max_turn_tokens: 24, save_every: 1}
  fc-rl: {steps: 2, prompts_per_step: 2, num_generations: 4, lr: 0.0001, max_turn_tokens: 24, save_every: 1000}
eval: {batch_size: 64, max_turn_tokens: 32}
"""
# Loss of 2 processes against 1 at the same step: the gradient is the same sum over the same
# tokens, reduced in another order (gloo's allreduce, then the mean), so only float rounding
# separates the two: measured 9.5e-7 (wm-amt, 10 steps) and 4.8e-7 (fe-sft, 8 steps) at lr 3e-3.
LOSS_TOL = 1e-5
# Metrics of greedy play from the two models: a logit that rounding moves past another flips a
# token, so whole episodes may differ; 0.1 is the harness's tolerance across environments
# (measured: every metric equal, at this smoke budget).
METRIC_TOL = 0.1
TWO = ["--launcher", "accelerate", "--processes", "2"]


def write_profile(path: Path, sft_tokens: int = 4000) -> Path:
    path.write_text(PROFILE.replace("SFT_TOKENS", str(sft_tokens)))
    return path


def run_args(kind: str, method: str, profile: Path, root: Path, task: str = "graph-nav") -> list[str]:
    args = [kind, "--method", method, "--task", task, "--seed", "0", "--profile", str(profile)]
    args += ["--cache", str(root / "cache")]
    return args + (["--runs", str(root / "runs")] if kind == "eval" else [])


def log_records(stage: Path) -> list[dict]:
    return [json.loads(line) for line in (stage / "log.jsonl").read_text().splitlines()]


def test_two_processes_train_sft_and_wm_amt_like_one_at_the_whole_batch(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.yaml")
    one, two = tmp_path / "one", tmp_path / "two"
    first = harness(run_args("eval", "foresight-no-rl", profile, one), tmp_path / "logs", timeout=900)
    assert first.code == 0, first.err[-3000:]
    second = harness(run_args("eval", "foresight-no-rl", profile, two) + TWO, tmp_path / "logs", timeout=900)
    assert second.code == 0, second.err[-3000:]
    # Off a terminal, process 0 of each launch prints its stage's plain start and end lines; process 1 none.
    for stage_name in ("wm-amt", "fe-sft"):
        lines = [line for line in second.out.splitlines() if line.startswith(f"graph-nav seed0 {stage_name}: ")]
        assert [line.split(": ")[1].split(",")[0] for line in lines] == ["started", "done"], second.out
    run = Path("runs") / profile.stem / "graph-nav" / "foresight-no-rl" / "seed0"
    manifests = [json.loads((root / run / "manifest.json").read_text()) for root in (one, two)]
    assert manifests[1]["determinism"]["launcher"] == {"kind": "accelerate", "processes": 2, "config": None}
    assert [s["name"] for s in manifests[1]["stages"]] == ["wm-amt", "fe-sft"]
    for stage in manifests[1]["stages"]:
        assert stage["processes"] == 2 and not stage["reused"]
        ones, twos = (log_records(root / "cache" / stage["hash"]) for root in (one, two))
        steps = [r for r in ones if "loss" in r]
        assert len(steps) >= 5 and [r["step"] for r in steps] == [r["step"] for r in twos if "loss" in r]
        gap = max(abs(a["loss"] - b["loss"]) for a, b in zip(steps, [r for r in twos if "loss" in r], strict=True))
        print(f"{stage['name']}: {len(steps)} steps, largest loss gap between 1 and 2 processes {gap:.2e}")
        for a, b in zip(steps, [r for r in twos if "loss" in r], strict=True):
            # The same rows at every step: the non-padding tokens seen so far agree exactly.
            assert a["tokens_seen"] == b["tokens_seen"], (stage["name"], a["step"])
            assert abs(a["loss"] - b["loss"]) <= LOSS_TOL, (stage["name"], a["step"], a["loss"], b["loss"])
        assert steps[-1]["loss"] < steps[0]["loss"]  # it trained
    metrics = [json.loads((root / run / "metrics.json").read_text()) for root in (one, two)]
    print({k: (metrics[0][k], metrics[1][k]) for k in metrics[0] if isinstance(metrics[0][k], float)})
    assert metrics[0]["n_episodes"] == metrics[1]["n_episodes"] == 12
    for key, value in metrics[0].items():
        if value is None or isinstance(value, (int, float)):
            other = metrics[1][key]
            assert (value is None) == (other is None), key  # a metric one run has, the other has too
            assert value is None or abs(value - other) <= METRIC_TOL, (key, value, other)


@pytest.fixture(scope="module")
def grpo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Returns a folder where react's sft was trained in-process (base/), then vanilla-rl's grpo stage
    by 2 processes in a copy of that cache (clean/), with every rollout traced (trace/)."""
    root = tmp_path_factory.mktemp("grpo")
    profile = write_profile(root / "p.yaml")
    base = harness(run_args("train", "react", profile, root / "base"), root / "logs", timeout=900)
    assert base.code == 0, base.err[-3000:]
    shutil.copytree(root / "base", root / "clean")
    env = {TRACE_ENV: str(root / "trace")}
    clean = harness(run_args("train", "vanilla-rl", profile, root / "clean") + TWO, root / "logs", env=env, timeout=900)
    assert clean.code == 0, clean.err[-3000:]
    return root


def grpo_stage(root: Path) -> Path:
    (found,) = [p.parent for p in root.glob("cache/*/stage.json") if json.loads(p.read_text()).get("kind") == "grpo"]
    return found


def test_grpo_plays_each_prompt_slot_once_over_the_processes(grpo_root: Path) -> None:
    profile = load_profile(str(grpo_root / "p.yaml"))
    rl = profile.stages["rl"]
    traces = sorted((grpo_root / "trace").glob("*.json"))
    assert len(traces) == 2 * rl.steps
    for step in range(rl.steps):
        ranks = [json.loads((grpo_root / "trace" / f"step{step}-rank{r}.json").read_text()) for r in (0, 1)]
        per_process = rl.prompts_per_step * rl.num_generations // 2
        assert [len(t["prompts"]) for t in ranks] == [per_process, per_process]
        assert [t["first"] for t in ranks] == [0, per_process]
        played = [p for t in ranks for p in t["prompts"]]
        # prompts_per_step distinct instances, each played num_generations times over both processes.
        assert len(set(played)) == rl.prompts_per_step
        assert sorted(played.count(p) for p in set(played)) == [rl.num_generations] * rl.prompts_per_step
        for t in ranks:
            assert all(len(t[k]) == per_process for k in ("completion_ids", "env_mask", "logprobs", "success"))


def replay(task, tokenizer, instance, completion: list[int], mask: list[int], rng) -> bool:
    """Returns whether the episode succeeded, after checking its completion against the world token by token:
    each run of env_mask 1 is a turn the model wrote, each run of 0 exactly what the world answered it."""
    runs: list[tuple[int, list[int]]] = []
    for token, flag in zip(completion, mask, strict=True):
        if runs and runs[-1][0] == flag:
            runs[-1][1].append(token)
        else:
            runs.append((flag, [token]))
    assert runs and runs[0][0] == 1 and runs[-1][0] == 1, "an episode starts and ends with a turn of the model"
    state = task.reset(instance)
    success = False
    for k in range(0, len(runs), 2):
        output = tokenizer.decode(runs[k][1], skip_special_tokens=True)
        result = task.step(state, normalize(action_of(parse_turn(output, "react"))), rng)
        state, success = result.state, result.reward > 0
        if k + 1 < len(runs):
            assert not state.done
            assert runs[k + 1] == (0, encode(tokenizer, render_observation(result.observation) + "\n"))
    assert state.done
    return success


def test_grpo_env_mask_and_rewards_line_up_with_each_process_completions(grpo_root: Path) -> None:
    profile = load_profile(str(grpo_root / "p.yaml"))
    task = make_task("graph-nav", profile.task_knobs("graph-nav"))
    by_prompt = {task.prompt(task.reset(inst)): inst for inst in task.splits(0).train}
    _, tokenizer = load_model(grpo_stage(grpo_root / "clean"))
    step = 1
    for rank in (0, 1):
        trace = json.loads((grpo_root / "trace" / f"step{step}-rank{rank}.json").read_text())
        for i, prompt in enumerate(trace["prompts"]):
            assert trace["prompt_ids"][i] == encode(tokenizer, prompt + "\n")
            assert all(lp == 0.0 for lp, m in zip(trace["logprobs"][i], trace["env_mask"][i]) if m == 0)
            rng = stream(0, "rl-rollouts", step, trace["first"] + i)
            won = replay(task, tokenizer, by_prompt[prompt], trace["completion_ids"][i], trace["env_mask"][i], rng)
            assert trace["success"][i] == float(won), (rank, i)
    # The two processes sample from streams of their own: their completions are not copies.
    ranks = [json.loads((grpo_root / "trace" / f"step{step}-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["completion_ids"] != ranks[1]["completion_ids"]


def test_grpo_killed_under_two_processes_resumes_to_the_bytes_of_an_unbroken_run(grpo_root: Path) -> None:
    profile = grpo_root / "p.yaml"
    shutil.copytree(grpo_root / "base", grpo_root / "killed")
    args = run_args("train", "vanilla-rl", profile, grpo_root / "killed") + TWO
    # Every process SIGKILLs itself at the end of step 2, after the checkpoint of step 1.
    killed = harness(args, grpo_root / "logs", env={"HARNESS_KILL_AT": "grpo-step:2"}, timeout=900)
    assert killed.code == 2 and "ended with exit code" in killed.err, killed.err[-3000:]
    assert list((grpo_root / "killed").glob("cache/*.partial/checkpoint-1/trainer_state.json"))
    kinds = [json.loads(p.read_text()).get("kind") for p in (grpo_root / "killed").glob("cache/*/stage.json")]
    assert "grpo" not in kinds
    resumed = harness(args, grpo_root / "logs", timeout=900)
    assert resumed.code == 0, resumed.err[-3000:]
    # Resumed from checkpoint-1, whose manifest lists both processes' RNG states: not restarted.
    assert "warning: TRL checkpoint" not in resumed.err, resumed.err[-3000:]
    ours, theirs = grpo_stage(grpo_root / "killed"), grpo_stage(grpo_root / "clean")
    assert ours.name == theirs.name
    assert (ours / "model.safetensors").read_bytes() == (theirs / "model.safetensors").read_bytes()
    keep = ("step", "loss", "reward", "tokens_seen")
    assert [{k: r.get(k) for k in keep} for r in log_records(ours)] == [
        {k: r.get(k) for k in keep} for r in log_records(theirs)
    ]
    assert json.loads((ours / "stage.json").read_text())["stats"]["processes"] == 2
    assert not list((grpo_root / "killed").glob("cache/*.partial"))


def test_lora_on_smollm2_under_two_processes(tmp_path: Path, smollm2_checkpoint: Path) -> None:
    profile = write_profile(tmp_path / "p.yaml", sft_tokens=300)  # 3 steps of 2 rows
    text = profile.read_text().replace(
        "batch_size: 8, save_every: 1000, max_length: 512", "batch_size: 2, save_every: 1000, max_length: 256"
    )
    profile.write_text(text)
    args = run_args("train", "react", profile, tmp_path) + ["--model", str(smollm2_checkpoint), "--lora"] + TWO
    result = harness(args, tmp_path / "logs", timeout=1200)
    assert result.code == 0, result.err[-3000:]
    (marker,) = tmp_path.glob("cache/*/stage.json")
    stats = json.loads(marker.read_text())["stats"]
    assert stats["processes"] == 2 and stats["steps"] >= 2
    adapter = marker.parent
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "model.safetensors").exists()
    losses = [r["loss"] for r in log_records(adapter) if "loss" in r]
    assert len(losses) == stats["steps"] and all(math.isfinite(x) for x in losses)
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    lora_b = [w for k, w in weights.items() if "lora_B" in k]
    # PEFT starts every B at zero: a B that moved is an adapter that 2 processes trained.
    assert lora_b and any(float(w.abs().max()) > 0 for w in lora_b)
