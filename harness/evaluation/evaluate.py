"""Evaluates a trained method on a task's test split and writes the run (docs/design.md#evaluation-and-the-run-store).

`eval.split: dev` plays the dev split instead, for choosing a configuration (a sweep's points) without
looking at test; such a run's metrics name the split in their identity.

Episode i of a split draws its world noise from stream (seed, "eval-world", i) whatever the method, so two
methods are compared episode by episode on the same noise. Decoding is greedy; selection gain
samples N first moves per test instance and scores each plan by its Q*.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.agent import AgentEpisode, Sampling, run_episodes
from harness.core import faults, progress
from harness.core.config import EvalSettings, Profile
from harness.core.fields import as_dict, config_hash
from harness.core.registry import make_task
from harness.core.runs import git_commit, is_complete, run_dir, run_lock, stale_reason, versions, write_run
from harness.core.streams import int_seed, stream
from harness.core.traces import ForesightBlock
from harness.data.recipes import expert_episodes, expert_shown, react_row
from harness.data.reference import reference_policy
from harness.evaluation.board import write_board
from harness.evaluation.estimates import first_p_belief
from harness.evaluation.scoring import episode_record, run_metrics
from harness.evaluation.world_model import WORLD_MODEL_ITEMS, stage_probes
from harness.training import distributed
from harness.training.models import stop_token_ids
from harness.training.train import data_hash, initial_key, load_checkpoint, method_and_task, stage_chain, train_method
from tasks.base import NoisyExpert, Task, play


def play_split(
    model: Any,
    tokenizer: Any,
    task: Task,
    instances: Sequence[Any],
    fmt: str,
    seed: int,
    settings: EvalSettings,
    sampling: Sampling,
    prefix: str = "",
    stream_name: str = "eval-world",
    max_turns: int | None = None,
) -> list[AgentEpisode]:
    """Returns the agent's episode on every instance, played `settings.batch_size` at a time."""
    stops = stop_token_ids(tokenizer)
    episodes: list[AgentEpisode] = []
    for start in range(0, len(instances), settings.batch_size):
        chunk = instances[start : start + settings.batch_size]
        rngs = [stream(seed, stream_name, start + i) for i in range(len(chunk))]
        episodes += run_episodes(
            model, tokenizer, task, chunk, rngs, fmt, sampling, stops, prefix=prefix, max_turns=max_turns
        )
        progress.active().advance_stage()
        faults.point("eval-batch")
    return episodes


def sample_candidates(
    model: Any,
    tokenizer: Any,
    task: Task,
    instances: Sequence[Any],
    seed: int,
    settings: EvalSettings,
    reference: NoisyExpert,
) -> list[list[dict[str, float]]]:
    """Returns, per instance, the parsed first-move candidates as {p, q_ref, q_star} (unparsed ones dropped).

    q_ref is the candidate plan's value under the reference policy of D_look's p, which selection gain
    scores with; q_star, the expert's, is constant across plans on deterministic worlds (kb-search).
    """
    found: list[list[dict[str, float]]] = [[] for _ in instances]
    for c in range(settings.candidates):
        sampling = Sampling(
            settings.candidate_temperature, settings.max_turn_tokens, seed=int_seed(seed, "eval-candidate-tokens", c)
        )
        firsts = play_split(
            model, tokenizer, task, instances, "foresight", seed, settings, sampling, "", "eval-candidates", max_turns=1
        )
        for i, episode in enumerate(firsts):
            block = episode.turns[0].parsed
            if isinstance(block, ForesightBlock):
                state = episode.turns[0].state
                found[i].append(
                    {"p": block.p, "q_ref": reference.q(state, block.plan), "q_star": task.q_star(state, block.plan)}
                )
    return found


def few_shot_prefix(task: Task, seed: int, shots: int) -> str:
    """Returns `shots` expert episodes of the train split in the ReAct format, as a prompt prefix."""
    train = task.splits(seed).train[:shots]
    episodes = expert_episodes(task, train, seed, "few-shot")
    return "".join(react_row(task, e, f"shot-{i}")["text"] for i, e in enumerate(episodes))


def heldout_flags(task: Task, seed: int, instances: Sequence[Any]) -> list[bool]:
    """Returns, per instance, whether it needs a part of the world that no train expert episode shows."""
    seen = expert_shown(task, seed)
    return [bool(task.required(inst) - seen) for inst in instances]


def random_policy_success(task: Task, instances: Sequence[Any], seed: int) -> float:
    """Returns the success of a uniformly random legal policy on `instances` (the floor to beat)."""

    def choose(state: Any, rng: np.random.Generator) -> str:
        legal = task.legal_actions(state)
        return legal[int(rng.integers(len(legal)))]

    solved = [play(task, inst, choose, stream(seed, "eval-world", i)).success for i, inst in enumerate(instances)]
    return sum(solved) / max(1, len(instances))


def eval_settings(profile: Profile) -> EvalSettings:
    """Returns the profile's evaluation settings (resolved and checked at profile load: every field has its range)."""
    return profile.eval


def run_key(method_name: str, task_name: str, profile: Profile, seed: int) -> str:
    """Returns the hash of everything a run's files depend on besides the code: its stage chain, data, eval settings.

    Not the whole profile's hash: another seed list, another method or a stage this method does not use
    leaves the run as it is.
    """
    method, task = method_and_task(method_name, task_name, profile)
    return config_hash(
        "run-v2",
        method_name,
        task_name,
        seed,
        initial_key(profile, seed),
        stage_chain(method_name, task_name, profile, seed),
        data_hash(task, profile, seed),
        as_dict(eval_settings(profile)),
        method.fmt,
        method.few_shot,
    )


def run_to_make(method_name: str, task_name: str, profile: Profile, seed: int, runs: Path) -> str | None:
    """Returns why a run must be made ("missing", or why the one in `runs` is stale), or None when it is current."""
    path = run_dir(runs, profile.name, task_name, method_name, seed)
    if not is_complete(path):
        return "missing"
    return stale_reason(path, run_key(method_name, task_name, profile, seed))


def evaluate_run(
    method_name: str, task_name: str, profile: Profile, seed: int, cache: Path, runs: Path
) -> tuple[Path, dict[str, Any]]:
    """Trains what is missing, plays the test split, and writes the run; returns its path and metrics.

    The run's lock is held throughout: a second process evaluating the same run exits 2 at once.
    """
    settings = eval_settings(profile)
    method_and_task(method_name, task_name, profile)  # bad names fail before the run's folder is made
    path = run_dir(runs, profile.name, task_name, method_name, seed)
    with run_lock(path):
        metrics = _evaluate(method_name, task_name, profile, seed, cache, path, settings)
    return path, metrics


def _evaluate(
    method_name: str, task_name: str, profile: Profile, seed: int, cache: Path, path: Path, settings: EvalSettings
) -> dict[str, Any]:
    started = time.time()
    method, checkpoint, outcomes = train_method(method_name, task_name, profile, seed, cache)
    trained = time.time()
    task = make_task(task_name, profile.tasks[task_name])
    model, tokenizer = load_checkpoint(checkpoint)
    if torch.cuda.is_available():
        model = model.to("cuda")  # the agent loop runs the forward passes wherever the model is
    instances = getattr(task.splits(seed), settings.split)
    prefix = few_shot_prefix(task, seed, method.few_shot) if method.few_shot else ""
    greedy = Sampling(0.0, settings.max_turn_tokens, seed)
    sampled = settings.candidates if method.verbal_p else 0
    batches = -(-len(instances) // settings.batch_size)
    progress.active().start_stage(f"{task_name} seed{seed} {method_name} eval", batches * (1 + sampled))
    episodes = play_split(model, tokenizer, task, instances, method.fmt, seed, settings, greedy, prefix=prefix)
    reference = reference_policy(task, profile.data, seed)
    candidates = (
        sample_candidates(model, tokenizer, task, instances, seed, settings, reference)
        if sampled
        else [[] for _ in instances]
    )
    progress.active().end_stage()
    rng = stream(seed, "eval-records")
    heldout = heldout_flags(task, seed, instances)
    beliefs = [first_p_belief(model, tokenizer, e) if method.verbal_p else None for e in episodes]
    records = [
        episode_record(task, i, e, rng, reference, candidates[i], heldout[i], beliefs[i])
        for i, e in enumerate(episodes)
    ]
    metrics = run_metrics(records, method.verbal_p, seed, profile.data.look_k)
    chain = [(o.name, spec.kind, o.hash) for spec, o in zip(method.stages, outcomes)]
    metrics |= stage_probes(chain, checkpoint, (model, tokenizer), task, profile, seed, cache, WORLD_MODEL_ITEMS)
    metrics["cost"] = {
        "training_tokens": sum(int(o.stats.get("tokens_seen") or 0) for o in outcomes),
        "stages": {
            o.name: {"hash": o.hash, "tokens_seen": o.stats.get("tokens_seen"), "steps": o.stats.get("steps")}
            for o in outcomes
        },
    }
    metrics["random_policy_success"] = random_policy_success(task, instances, seed)
    metrics["identity"] = {"method": method_name, "task": task_name, "profile": profile.name, "seed": seed}
    if settings.split != "test":  # test runs keep the bytes they always had
        metrics["identity"]["split"] = settings.split
    manifest = {
        "profile": as_dict(profile),
        "config_hash": config_hash(profile),
        "run_key": run_key(method_name, task_name, profile, seed),
        "method": method_name,
        "task": task_name,
        "seed": seed,
        "checkpoint": checkpoint.hash,
        "stages": [{"name": o.name, "hash": o.hash, "reused": o.reused, **o.stats} for o in outcomes],
        "git_commit": git_commit(),
        "versions": versions(),
        "wall_s": {"train": round(trained - started, 2), "eval": round(time.time() - trained, 2)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "determinism": determinism(),
    }
    write_board(path, metrics, [(o.name, o.hash) for o in outcomes], cache)
    write_run(path, manifest, records, metrics)
    return metrics


def determinism() -> dict[str, Any]:
    """Returns what the bytes of metrics.json and episodes.jsonl depend on besides the config and seed."""
    return {
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "packages": {k: v for k, v in versions().items() if k != "torch_threads"},
        **launcher_record(),
        "note": "same seed, config, package versions and thread count on CPU give byte-identical "
        "metrics.json and episodes.jsonl (tests/integration/test_reliability.py checks it)",
    }


def launcher_record() -> dict[str, Any]:
    """Returns {"launcher": its settings} when stages were launched over several processes, else nothing."""
    launcher = distributed.current()
    return {"launcher": {"kind": "accelerate", **dataclasses.asdict(launcher)}} if launcher else {}


def summary_line(metrics: dict[str, Any]) -> str:
    """Returns a run's one-line summary: success with its CI and n, format rate, random policy."""
    s = metrics["success_ci"]
    return (
        f"success {s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}] n={s['n']}, "
        f"format rate {metrics['format_rate']:.3f}, random policy {metrics['random_policy_success']:.3f}"
    )
