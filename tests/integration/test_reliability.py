"""Reliability: SIGKILL at any moment, same bytes for the same seed, one writer per run and stage.

`harness reproduce` on a profile smaller than smoke (one task, the foresight method, so one stage
of each kind: wm-amt, sft and grpo) is killed by harness.core.faults at 11 named moments in a row, each
rerun resuming the last, and must end with the very metrics.json and episodes.jsonl of an
uninterrupted run. Commands run as real processes (tests/cli_processes.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.locks import locked
from harness.core.registry import METHODS, make_task, method_factory
from harness.core.runs import is_complete, read_run, run_dir, run_lock
from harness.evaluation.evaluate import evaluate_run
from harness.training.methods import Method
from harness.training.stages import stage_hash
from harness.training.train import data_hash, initial_checkpoint
from tests.cli_processes import harness, start

pytestmark = pytest.mark.slow

PROFILE = """\
description: smaller than smoke, for the reliability tests
seeds: [0]
ablation_seeds: [0]
methods: [foresight]
ablations: []
baselines: []
tasks:
  graph-nav: {n_nodes: 8, horizon: 6, n_train: 24, n_dev: 2, n_test: 6}
model: {hidden_size: 32, n_layers: 2, n_heads: 2, intermediate_size: 64, max_positions: 512}
data: {look_k: 2, world_episodes: 16, outcome_every: 2, expert_share: 0.2}
stages:
  wm-amt: {tokens: 2000, lr: 0.003, batch_size: 8, save_every: 2}
  fe-sft: {tokens: 30000, lr: 0.01, batch_size: 8, save_every: 10}
  fc-rl: {steps: 4, prompts_per_step: 2, num_generations: 4, lr: 0.0001, max_turn_tokens: 16, save_every: 2}
eval: {batch_size: 4, max_turn_tokens: 24, candidates: 2}
"""
# wm-amt: 4 steps, a TRL checkpoint every 2; fe-sft: 61 steps, one every 10 (its format rate ends
# near 1, so fc-rl's rewards and losses are not all zero); fc-rl: 4 steps, one every 2; eval:
# 6 test episodes in 2 batches, then 2 candidate rounds of 2 batches each.
KILLS = [
    ("data:1", "while building the data recipes"),
    ("wm-amt-step:1", "in wm-amt before its first TRL checkpoint"),
    ("wm-amt-step:3", "in wm-amt after its checkpoint at step 2"),
    ("stage-save:1", "while the finished wm-amt checkpoint is being saved"),
    ("sft-step:15", "in fe-sft (sft) after its checkpoint at step 10"),
    ("grpo-step:1", "in fc-rl (grpo) before its first checkpoint"),
    ("grpo-step:3", "in fc-rl after its checkpoint at step 2"),
    ("eval-batch:1", "during evaluation, after the first batch of test episodes"),
    ("eval-batch:4", "during evaluation, while sampling the candidates for selection gain"),
    ("run-write:1", "between writing episodes.jsonl and metrics.json"),
    ("tables:1", "while writing the summary tables"),
]
RUN = Path("runs/tiny/graph-nav/foresight/seed0")


def reproduce_args(root: Path, profile: Path) -> list[str]:
    paths = ["--runs", str(root / "runs"), "--cache", str(root / "cache"), "--results", str(root / "results")]
    return ["reproduce", "--profile", str(profile), *paths]


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "tiny.yaml"
    path.write_text(PROFILE)
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory, profile: Path) -> Path:
    """Returns the root of an uninterrupted reproduction."""
    root = tmp_path_factory.mktemp("clean")
    result = harness(reproduce_args(root, profile), root / "logs")
    assert result.code == 0, result.err[-3000:]
    return root


def leftovers(root: Path) -> list[str]:
    """Returns temp entries (a dot name other than a lock) and unfinished stage folders under `root`."""
    found = []
    for path in root.rglob("*"):
        temp = path.name.startswith(".") and not path.name.endswith(".lock")
        if temp or path.name.endswith(".partial"):
            found.append(str(path.relative_to(root)))
    return found


def test_sigkill_at_eleven_moments_then_rerun_gives_the_uninterrupted_bytes(
    tmp_path: Path, profile: Path, clean: Path
) -> None:
    args = reproduce_args(tmp_path, profile)
    run = tmp_path / RUN
    for kill, moment in KILLS:
        result = harness(args, tmp_path / "logs", env={"HARNESS_KILL_AT": kill})
        assert result.code == -9, f"not killed {moment} ({kill}): exit {result.code}\n{result.err[-2000:]}"
        # Every kill here leaves whole checkpoints: the rerun resumes from them, never drops one.
        assert "warning: TRL checkpoint" not in result.err, result.err[-2000:]
        if kill == "wm-amt-step:3":
            assert list(tmp_path.glob("cache/*.partial/checkpoint-2")), "no TRL checkpoint to resume from"
        if kill != "tables:1":
            # No kill before the last one may leave a run that reads as complete.
            assert not is_complete(run), f"a run reads as complete after a kill {moment}"
        if kill == "run-write:1":
            assert (run / "episodes.jsonl").is_file()
            with pytest.raises(HarnessError, match="incomplete"):
                read_run(run)
    final = harness(args, tmp_path / "logs")
    assert final.code == 0, final.err[-3000:]
    assert "warning: TRL checkpoint" not in final.err, final.err[-3000:]
    for name in ("metrics.json", "episodes.jsonl"):
        assert (run / name).read_bytes() == (clean / RUN / name).read_bytes(), name
    assert (tmp_path / "results/tables/summary.csv").read_bytes() == (clean / "results/tables/summary.csv").read_bytes()
    assert leftovers(tmp_path / "runs") == [] and leftovers(tmp_path / "cache") == []
    manifest = json.loads((run / "manifest.json").read_text())
    for stage in manifest["stages"]:
        # A resumed stage's log reads as an unbroken one: the same steps with the same losses and rewards.
        logs = [root / "cache" / stage["hash"] / "log.jsonl" for root in (tmp_path, clean)]
        ours, theirs = ([(r["step"], r.get("loss"), r.get("reward")) for r in map(json.loads, p.open())] for p in logs)
        assert ours == theirs, stage["name"]


def test_the_same_command_gives_the_same_bytes(tmp_path: Path, profile: Path, clean: Path) -> None:
    """The same command with the same seed, in another process and other folders, writes the same bytes."""
    result = harness(reproduce_args(tmp_path, profile), tmp_path / "logs")
    assert result.code == 0, result.err[-3000:]
    for name in ("metrics.json", "episodes.jsonl"):
        assert (tmp_path / RUN / name).read_bytes() == (clean / RUN / name).read_bytes(), name
    ours, theirs = (json.loads((root / RUN / "manifest.json").read_text()) for root in (tmp_path, clean))
    assert ours["determinism"] == theirs["determinism"]
    assert {"torch_threads", "packages"} <= set(ours["determinism"])
    assert ours["determinism"]["packages"]["torch"] == ours["versions"]["torch"]


def test_a_second_process_evaluating_the_same_run_exits_2_naming_the_first(tmp_path: Path, profile: Path) -> None:
    path = run_dir(tmp_path / "runs", "tiny", "graph-nav", "foresight", 0)
    argv = ["eval", "--method", "foresight", "--task", "graph-nav", "--profile", str(profile)]
    with run_lock(path):  # this test's process is the first evaluator
        result = harness([*argv, "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")], tmp_path)
    assert result.code == 2
    assert result.err.strip() == f"error: run {path} is in use by process {os.getpid()} (lock {path}/.lock); " + (
        "wait for it to finish or stop it"
    )
    assert not (tmp_path / "cache").exists(), "the second process trained before checking the lock"


def test_a_second_trainer_waits_for_the_stage_then_reuses_it(tmp_path: Path, profile: Path) -> None:
    """Stage cache: one writer at a time; a second writer waits; readers of finished stages never wait."""
    prof = load_profile(str(profile))
    cache = tmp_path / "cache"
    spec = method_factory("foresight")(prof).stages[0]  # wm-amt
    inputs = data_hash(make_task("graph-nav", prof.tasks["graph-nav"]), prof, 0)
    key = stage_hash(spec, initial_checkpoint(prof, 0, cache).hash, inputs)
    argv = ["train", "--method", "foresight-no-rl", "--task", "graph-nav", "--profile", str(profile)]
    argv += ["--cache", str(cache)]
    with locked(cache / f"{key}.lock", "test", wait=True):
        writer = start(argv, tmp_path / "logs")
        assert writer.wait_for_stderr(f"waiting for process {os.getpid()}, which holds stage wm-amt ({key})")
        assert writer.process.is_alive() and not (cache / key).exists()
    done = writer.finish()
    assert done.code == 0, done.err[-2000:]
    assert [line.split()[:3] for line in done.out.splitlines() if line.startswith("trained")][0] == [
        "trained",
        "wm-amt",
        key,
    ]
    # A finished stage is read without its lock: a reader goes on while a writer holds it.
    with locked(cache / f"{key}.lock", "test", wait=True):
        reader = harness(argv, tmp_path / "logs", timeout=60)
    assert reader.code == 0 and "waiting" not in reader.err
    assert [line.split()[0] for line in reader.out.splitlines()[:2]] == ["reused", "reused"], reader.out


def test_an_untrained_model_is_evaluated_in_full(tmp_path: Path, monkeypatch) -> None:
    """The initial (random) checkpoint writes foresight blocks almost never: format rate near 0, nothing crashes."""
    smoke = load_profile("smoke")
    monkeypatch.setitem(METHODS, "untrained", lambda profile: Method("untrained", fmt="foresight", stages=()))
    for task in smoke.tasks:
        path, metrics = evaluate_run("untrained", task, smoke, 0, tmp_path / "cache", tmp_path / "runs")
        assert is_complete(path) and metrics["n_episodes"] == smoke.tasks[task].n_test
        assert metrics["format_rate"] < 0.05, (task, metrics["format_rate"])
        turns = [t for r in read_run(path).records for t in r["turns"]]
        assert sum(t["parsed"] is None for t in turns) / len(turns) == pytest.approx(1 - metrics["format_rate"])
        assert all(t["error"] for t in turns if t["parsed"] is None)
    result = harness(
        ["eval", "--method", "react-prompt", "--task", "countdown", "--profile", "smoke"]
        + ["--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")],
        tmp_path / "logs",
    )
    assert result.code == 0, result.err[-2000:]
    rate = float(result.out.split("format rate ")[1].split(",")[0])
    assert rate < 0.05
