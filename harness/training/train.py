"""Trains a method on a task: runs its stages in order, reusing every stage already in the cache.

The chain starts from the initial checkpoint (the tiny model built for the seed, or `--model`),
and each stage's output is cached under `results/cache/<stage hash>/`. An interrupted stage
leaves TRL checkpoints in `<hash>.partial/` and the next call resumes from the newest one that
checks out against its manifest (harness.training.resume; a damaged one is dropped with a warning).
One process at a time writes a cache entry (`<hash>.lock`); another that needs the same entry
waits, then finds it finished. With LoRA, each stage stores only its adapter; loading a
checkpoint merges the chain of adapters into the base model.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.agent import FORESIGHT_RULES, REACT_RULES
from harness.core import faults
from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.fields import config_hash
from harness.core.locks import locked
from harness.core.registry import make_task, method_factory
from harness.core.store import atomic_dir, atomic_write_text, remove_leftovers
from harness.core.traces import FORMAT_WORDS
from harness.data.recipes import Corpora, build_corpora, mixed_rows
from harness.training import distributed, resume
from harness.training.job import Checkpoint, StageJob
from harness.training.methods import Method
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer, load_model
from harness.training.stages import (
    BOARD_DIR,
    MARKER,
    StageSpec,
    file_checksums,
    parse_mixed,
    stage_hash,
    stage_kind,
    stage_problem,
    stage_status,
)
from tasks.base import Task

LORA_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
    "gpt_neox": ["query_key_value", "dense"],
}
"""LoRA target modules per architecture (model_type); others use PEFT's 'all-linear'."""


@dataclass
class StageOutcome:
    """What happened to one stage of a `train` call."""

    name: str
    hash: str
    reused: bool
    stats: dict[str, Any]


def suite_vocabulary(profile: Profile) -> list[str]:
    """Returns the sorted union of the profile's task vocabularies and the format words."""
    words = set(FORMAT_WORDS)
    for name, knobs in profile.tasks.items():
        words |= set(make_task(name, knobs).vocabulary())
    return sorted(words)


def data_hash(task: Task, profile: Profile, seed: int) -> str:
    """Returns the hash of everything a task's data recipes depend on (the task's code by its version)."""
    # Tasks read from data files hash the records' content too (a path alone may change content).
    digest = getattr(task, "data_digest", None)
    extra = [digest()] if digest else []
    if profile.model.path:
        # A pretrained model with a chat template trains on prompts that carry the format rules and
        # the task's actions (harness.agent.chat_prompt): a change to those words is a change of data.
        extra.append(config_hash(REACT_RULES, FORESIGHT_RULES, getattr(task, "actions_help", "")))
    return config_hash("data-v2", task.name, task.version, task.config, profile.data, seed, *extra)


def initial_key(profile: Profile, seed: int) -> str:
    """Returns the hash of the starting checkpoint, building nothing: `model.path`'s files, or the tiny model's spec."""
    if profile.model.path:
        path = Path(profile.model.path)
        if not path.exists():
            raise HarnessError(f"model.path {path} does not exist")
        files = sorted((p.name, p.stat().st_size) for p in ([path] if path.is_file() else path.iterdir()))
        return config_hash("external-v1", str(path.resolve()), files)
    spec = profile.model
    return config_hash(
        "tiny-v2",
        spec.hidden_size,
        spec.n_layers,
        spec.n_heads,
        spec.intermediate_size,
        spec.max_positions,
        suite_vocabulary(profile),
        seed,
    )


def initial_checkpoint(profile: Profile, seed: int, cache: Path) -> Checkpoint:
    """Returns the starting checkpoint: `model.path` as given, or the tiny model built for `seed`."""
    if profile.model.path:
        path = Path(profile.model.path)
        load_model(path)  # fails early, with a one-line error, on a path that is no causal LM
        return Checkpoint(initial_key(profile, seed), path)
    vocab = suite_vocabulary(profile)
    spec = profile.model
    key = initial_key(profile, seed)
    target = cache / key
    if stage_status(target) == "complete":
        return Checkpoint(key, target)
    with locked(cache / f"{key}.lock", f"initial checkpoint {key}", wait=True):
        if _needs_training(target, key, cache):
            tokenizer = build_tokenizer(vocab)
            config = ModelConfig(
                spec.hidden_size, spec.n_layers, spec.n_heads, spec.intermediate_size, spec.max_positions
            )
            model = build_tiny_model(config, tokenizer, seed)
            with atomic_dir(target) as tmp:
                model.save_pretrained(str(tmp))
                tokenizer.save_pretrained(str(tmp))
                _write_marker(tmp, {"kind": "init", "seed": seed, "vocab_size": len(vocab)})
    return Checkpoint(key, target)


def _needs_training(target: Path, key: str, cache: Path) -> bool:
    """Returns whether a cache entry must be made; HarnessError for a corrupt one. Call it holding the entry's lock."""
    status = stage_status(target)
    if status == "corrupt":
        raise _corrupt(target)
    if status == "missing":
        remove_leftovers(cache, [key])  # temp directories of a writer that was killed while saving
    return status == "missing"


def _corrupt(target: Path) -> HarnessError:
    """Returns the error of a corrupt cache entry: the file at fault, and what to do."""
    return HarnessError(
        f"cached checkpoint {target} is corrupt ({stage_problem(target)}); delete that directory to retrain it"
    )


def load_checkpoint(checkpoint: Checkpoint) -> tuple[Any, Any]:
    """Returns (model, tokenizer) of a checkpoint, merging its LoRA adapters in order."""
    model, tokenizer = load_model(checkpoint.base)
    if checkpoint.adapters:
        from peft import PeftModel

        for adapter in checkpoint.adapters:
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model, tokenizer


def _write_marker(directory: Path, info: dict[str, Any]) -> None:
    info = {**info, "files": file_checksums(directory)}
    atomic_write_text(directory / MARKER, json.dumps(info, indent=2, sort_keys=True) + "\n")


def _wrap_lora(model: Any, rank: int) -> Any:
    from peft import LoraConfig, get_peft_model

    targets = LORA_TARGETS.get(model.config.model_type, "all-linear")
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def stage_rows(spec: StageSpec, corpora: Corpora, seed: int):
    """Returns the dataset a stage trains on (its data recipe)."""
    mixed = parse_mixed(spec.data)
    if mixed:
        return mixed_rows(corpora, *mixed, seed)
    return {"expert": corpora.expert, "look": corpora.look, "world": corpora.world}[spec.data]


def _chained(source: Checkpoint, key: str, target: Path, lora: bool) -> Checkpoint:
    """Returns the checkpoint a stage yields: its adapter stacked on `source` (LoRA) or its own weights."""
    return Checkpoint(key, source.base, source.adapters + (target,)) if lora else Checkpoint(key, target)


def run_stage(
    spec: StageSpec,
    source: Checkpoint,
    task: Task,
    profile: Profile,
    seed: int,
    cache: Path,
    corpora: Callable[[], Corpora],
) -> tuple[Checkpoint, StageOutcome]:
    """Returns the stage's checkpoint, training it (or resuming it) unless the cache holds it."""
    key = stage_hash(spec, source.hash, data_hash(task, profile, seed))
    target = cache / key
    lora = profile.model.lora and bool(profile.model.path)
    result = _chained(source, key, target, lora)
    launcher = distributed.current()
    complete = stage_status(target) == "complete"  # hashes every file of the entry: once per call
    if not complete and launcher is not None and launcher.machine_rank() > 0:
        # A machine after the first trains its share of the stage that machine 0 holds the lock of
        # and writes (the cache is shared between the machines).
        stats = _train_stage(spec, source, task, profile, seed, cache, corpora, target, lora)
        return result, StageOutcome(spec.name, key, False, stats)
    if not complete:
        with locked(cache / f"{key}.lock", f"stage {spec.name} ({key})", wait=True):
            if _needs_training(target, key, cache):
                stats = _train_stage(spec, source, task, profile, seed, cache, corpora, target, lora)
                return result, StageOutcome(spec.name, key, False, stats)
    stats = json.loads((target / MARKER).read_text()).get("stats", {})
    return result, StageOutcome(spec.name, key, True, stats)


def _train_stage(
    spec: StageSpec,
    source: Checkpoint,
    task: Task,
    profile: Profile,
    seed: int,
    cache: Path,
    corpora: Callable[[], Corpora],
    target: Path,
    lora: bool,
) -> dict[str, Any]:
    """Returns the stats of a stage after training it (resuming its TRL checkpoints) into `target`.

    In-process by default; under a launcher (harness.training.distributed) its processes train it
    and process 0 writes `target`, while this process keeps the stage's lock.
    """
    work = cache / f"{target.name}.partial"
    work.mkdir(parents=True, exist_ok=True)
    launcher = distributed.current()
    if launcher is None or launcher.machine_rank() == 0:  # the holder of the stage's lock
        resume.drop_damaged(work)
    job = StageJob(
        spec=spec,
        task=task.name,
        knobs=profile.task_knobs(task.name),
        seed=seed,
        work=work,
        source=source,
        rows=None if stage_kind(spec.kind).plays_episodes else stage_rows(spec, corpora(), seed),
        target=target,
        lora_rank=profile.model.lora_rank if lora else None,
    )
    if launcher is None:
        return fit_and_save(job, task)
    distributed.check_split(spec, launcher.total_processes())
    distributed.launch(job, work, launcher, f"stage {spec.name}")
    if stage_status(target) != "complete":
        raise HarnessError(f"the processes training stage {spec.name} ended without writing {target}")
    return json.loads((target / MARKER).read_text())["stats"]


def fit_and_save(job: StageJob, task: Task | None = None) -> dict[str, Any]:
    """Returns the stats of a stage after training it from `job.source` in `job.work` and writing it to `job.target`.

    `task` is the job's task when the caller has it built (in-process); a launched process builds it.
    Under a launch every process trains its share; process 0 alone writes `target`.
    """
    assert job.source is not None and job.target is not None
    model, tokenizer = load_checkpoint(job.source)
    if job.lora_rank is not None:
        model = _wrap_lora(model, job.lora_rank)
    started = time.time()
    stats = job.kind.trainer()(job, model, tokenizer, task or job.make_task())
    stats["wall_s"] = round(time.time() - started, 2)
    stats["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if distributed.world_size() > 1:
        stats["processes"] = distributed.world_size()
        distributed.barrier()  # every process is done with `work` before process 0 removes it
    if distributed.rank() != 0:
        return stats
    _save_stage(job, model, tokenizer, stats)
    shutil.rmtree(job.work, ignore_errors=True)
    return stats


def _save_stage(job: StageJob, model: Any, tokenizer: Any, stats: dict[str, Any]) -> None:
    """Writes a trained stage to `job.target` at once: weights (with LoRA, the adapter alone), log, board, marker."""
    spec, work = job.spec, job.work
    with atomic_dir(job.target) as tmp:
        model.save_pretrained(str(tmp))  # with LoRA, the adapter alone
        tokenizer.save_pretrained(str(tmp))
        faults.point("stage-save")
        shutil.copy(work / "log.jsonl", tmp / "log.jsonl")
        if (work / BOARD_DIR).is_dir():
            shutil.copytree(work / BOARD_DIR, tmp / BOARD_DIR)
        _write_marker(
            tmp,
            {
                "stage": spec.name,
                "kind": spec.kind,
                "input": job.source.hash,
                "stats": stats,
                "spec": dataclasses.asdict(spec),
            },
        )


def method_and_task(method_name: str, task_name: str, profile: Profile) -> tuple[Method, Task]:
    """Returns the method and the task of a run; HarnessError for an unknown method or a task not in the profile."""
    method = method_factory(method_name)(profile)
    return method, make_task(task_name, profile.task_knobs(task_name))


def stage_chain(method_name: str, task_name: str, profile: Profile, seed: int) -> list[str]:
    """Returns the cache keys of a method's stages in order, training and building nothing."""
    method, task = method_and_task(method_name, task_name, profile)
    key, data = initial_key(profile, seed), data_hash(task, profile, seed)
    keys = []
    for spec in method.stages:
        key = stage_hash(spec, key, data)
        keys.append(key)
    return keys


def trained_checkpoint(
    method_name: str, task_name: str, profile: Profile, seed: int, cache: Path = Path("results/cache")
) -> Checkpoint:
    """Returns the final checkpoint of a method already trained in `cache`, training nothing.

    Follows the same chain of stage hashes as `train_method`; a stage that is not complete in the
    cache is a HarnessError that says which one and how to train it.
    """
    method, _ = method_and_task(method_name, task_name, profile)
    checkpoint = initial_checkpoint(profile, seed, cache)
    lora = profile.model.lora and bool(profile.model.path)
    for spec, key in zip(method.stages, stage_chain(method_name, task_name, profile, seed)):
        status = stage_status(cache / key)
        if status == "corrupt":
            raise _corrupt(cache / key)
        if status != "complete":
            raise HarnessError(
                f"{method_name} on {task_name} seed {seed} (profile {profile.name}) is not trained in {cache}: "
                f"stage {spec.name} is missing; run `harness train --method {method_name} --task {task_name} "
                f"--seed {seed} --profile {profile.name}` first"
            )
        checkpoint = _chained(checkpoint, key, cache / key, lora)
    return checkpoint


_LAST_CORPORA: dict[str, Corpora] = {}
"""The corpora last built in this process, by data hash (one entry; Corpora are never mutated)."""


def train_method(
    method_name: str, task_name: str, profile: Profile, seed: int, cache: Path = Path("results/cache")
) -> tuple[Method, Checkpoint, list[StageOutcome]]:
    """Trains what is missing of `method_name` on `task_name`; returns the final checkpoint and each stage's fate."""
    method, task = method_and_task(method_name, task_name, profile)

    def corpora() -> Corpora:
        # Built on first need, and kept for the next method on the same data: `reproduce` runs
        # every method of one task and seed in a row (about 1.7 s saved per run on countdown).
        key = data_hash(task, profile, seed)
        if key not in _LAST_CORPORA:
            _LAST_CORPORA.clear()
            _LAST_CORPORA[key] = build_corpora(task, profile.data, seed)
        return _LAST_CORPORA[key]

    # The contamination audit runs on every call, cached stages or not: build_corpora refuses data in
    # which a training episode starts at a dev or test instance (harness.data.audit).
    corpora()
    checkpoint = initial_checkpoint(profile, seed, cache)
    outcomes = []
    for spec in method.stages:
        checkpoint, outcome = run_stage(spec, checkpoint, task, profile, seed, cache, corpora)
        outcomes.append(outcome)
    return method, checkpoint, outcomes
