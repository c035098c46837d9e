"""The TRL callbacks of the stages: the log, progress, fault points, checkpoint manifests, step timings, RL tags.

Every stage's trainer gets JsonlLog (log.jsonl), StageProgress, StepFaults and CheckpointManifest;
the grpo stage adds StepClock (where a step's time went) and RlTags (its namespaced TensorBoard tags).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from transformers import TrainerCallback

from harness.core import faults, progress
from harness.training import distributed, resume


class Popped(Protocol):
    """What RlTags reads once per log: numbers gathered since the last call (RolloutStats of harness.training.grpo)."""

    def pop(self) -> dict[str, float]:
        """Returns the numbers since the last call, then forgets them."""
        ...


class JsonlLog(TrainerCallback):
    """Appends every trainer log (loss, reward, tokens seen) as one json line.

    `extra`, if given, is called at each log for more fields (the GRPO stage's step timings).
    """

    def __init__(self, path: Path, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = path
        self.extra = extra

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:  # data-parallel: process 0 writes the log
            return
        extra = self.extra() if self.extra else {}
        record = {"step": state.global_step, "tokens_seen": state.num_input_tokens_seen, **logs, **extra}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


class StageProgress(TrainerCallback):
    """Reports a stage's step of total, tokens seen and latest loss or reward to the progress display.

    In a data-parallel stage only process 0 reports (as only it writes log.jsonl).
    """

    def __init__(self, label: str) -> None:
        self.label = label

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            progress.active().start_stage(self.label, state.max_steps, state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        logs = logs or {}
        shown = " ".join(f"{k} {logs[k]:.3f}" for k in ("loss", "reward") if isinstance(logs.get(k), float))
        # GRPO counts its tokens in its own `num_tokens` log; SFT in the trainer state.
        tokens = logs.get("num_tokens") or state.num_input_tokens_seen or None
        progress.active().advance_stage(state.global_step, int(tokens) if tokens else None, shown)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            progress.active().end_stage()


class StepFaults(TrainerCallback):
    """Passes the fault-injection point `<kind>-step` at the end of every optimizer step (harness.core.faults)."""

    def __init__(self, kind: str) -> None:
        self.point = f"{kind}-step"

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        faults.point(self.point)


class CheckpointManifest(TrainerCallback):
    """Writes each TRL checkpoint's manifest once it is complete, then removes the older ones (harness.training.resume).

    The Trainer's own rotation (`save_total_limit`) is off: it removes the previous checkpoint
    before `on_save`, so a kill before the manifest was written would leave no checkpoint to resume.
    """

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"{resume.PREFIX}{state.global_step}"
        distributed.barrier()  # data-parallel: every process has written its rng_state_<rank>.pth
        faults.point("checkpoint-save")
        if state.is_world_process_zero:
            resume.write_manifest(folder)
            resume.prune(folder.parent, folder)


class StepClock(TrainerCallback):
    """Times each optimizer step and splits it: generation, environment and rewards, the rest.

    The rollout function reports the first two (`add`); the rest of the step is TRL's scoring
    forward passes (old and reference log-probabilities), the loss, the backward pass and the
    AdamW step, reported as `time/optimizer_s`. `pop` gives the per-step means since its last call.
    """

    def __init__(self) -> None:
        self.started: float | None = None
        self.parts = {"generation_s": 0.0, "env_rewards_s": 0.0}
        self.totals: dict[str, float] = {}
        self.steps = 0

    def add(self, generation_s: float, env_rewards_s: float) -> None:
        self.parts["generation_s"] += generation_s
        self.parts["env_rewards_s"] += env_rewards_s

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.started is None:
            return
        step_s = time.perf_counter() - self.started
        parts = {**self.parts, "step_s": step_s, "optimizer_s": step_s - sum(self.parts.values())}
        for key, value in parts.items():
            self.totals[key] = self.totals.get(key, 0.0) + value
        self.steps += 1
        self.started, self.parts = None, dict.fromkeys(self.parts, 0.0)

    def pop(self) -> dict[str, float]:
        """Returns {"time/<part>_s": mean seconds per step} over the steps since the last call."""
        means = {f"time/{k}": round(v / self.steps, 4) for k, v in self.totals.items()} if self.steps else {}
        self.totals, self.steps = {}, 0
        return means


class RlTags(TrainerCallback):
    """Adds the GRPO stage's namespaced TensorBoard tags (`rl/reward/<name>`, `rl/time/<part>_s`, `rl/rollout/...`).

    The trainer's own TensorBoardCallback (`report_to`) writes every log under `train/`; these tags
    go through that callback's writer at the same step. The step timings and rollout numbers are
    popped from the clock and the stats here, once per log, and kept in `extra` for log.jsonl.
    """

    def __init__(self, clock: StepClock, stats: Popped) -> None:
        self.clock = clock
        self.stats = stats
        self.extra: dict[str, float] = {}
        self.board: Any = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs:  # as JsonlLog: an empty log leaves the timings and episodes to the next one
            return
        self.extra = {**self.clock.pop(), **self.stats.pop()}
        writer = getattr(self.board, "tb_writer", None)
        if writer is None:  # a data-parallel process other than 0 writes no events
            return
        for tag, value in rl_tags(logs, self.extra).items():
            writer.add_scalar(tag, value, state.global_step)
        writer.flush()


def rl_tags(logs: dict[str, Any], extra: dict[str, float]) -> dict[str, float]:
    """Returns the rl/ tags of one GRPO log: total and per-function rewards, completion length, step
    timings (`time/...` as `rl/time/...`) and the rollouts' own numbers (`train/...` as `rl/rollout/...`)."""
    tags = {"rl/reward/total": logs.get("reward"), "rl/completion/mean_length": logs.get("completions/mean_length")}
    for key, value in logs.items():
        if key.startswith("rewards/") and key.endswith("/mean"):
            tags[f"rl/reward/{key.split('/')[1]}"] = value
    for key, value in extra.items():
        tags["rl/" + (f"rollout/{key.removeprefix('train/')}" if key.startswith("train/") else key)] = value
    return {tag: float(value) for tag, value in tags.items() if isinstance(value, int | float)}
