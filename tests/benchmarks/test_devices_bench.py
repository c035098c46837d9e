"""Issue 17, item 3: tokens per second of the sft stage under N processes against 1 process.

Both train the untrained default-size model on graph-nav's D_look with the default profile's
fe-sft settings for the same steps (the same rows: N processes split each batch). One process
trains in this process, the N processes under `accelerate launch` (harness.training.distributed),
every process at the benchmark's thread count (BENCH_THREADS, else 1). Each side's rate is the
stage's own: tokens seen over its `wall_s` (model loaded; the trainer's set-up, which includes the
processes' rendezvous, and training), so the N-process side is not charged the interpreter start
of its processes. N is BENCH_PROCESSES, else 2; on a GPU machine the launched side takes the GPUs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from harness.core.config import Profile
from harness.core.fields import as_dict
from harness.data.recipes import Corpora
from harness.training import distributed
from harness.training.job import StageJob
from harness.training.sft import tokenize_rows
from harness.training.stages import StageSpec, settings_for
from harness.training.train import Checkpoint, fit_and_save, load_checkpoint

from .conftest import TASK, bench_line

TARGET = 1.6
# At the profiles' batch of 8 each step's gradient all-reduce and the processes' lock-step cost as
# much as the rows take to compute (docs/devices.md#checked-here). The benchmark measures scaling,
# so it runs at batch 32; BENCH_SFT_BATCH and BENCH_SFT_STEPS override both (a GPU user sets them to their own).
STEPS = int(os.environ.get("BENCH_SFT_STEPS", "100"))
BATCH = int(os.environ.get("BENCH_SFT_BATCH", "32"))
ROUNDS = 2


@pytest.mark.benchmark(group="devices")
def test_bench_sft_stage_two_processes_vs_one(
    benchmark, profile: Profile, corpora: Corpora, initial: Checkpoint, tmp_path: Path
) -> None:
    processes = int(os.environ.get("BENCH_PROCESSES", "2"))
    base = as_dict(profile.stages["fe-sft"])  # typed settings, as a mapping to override
    _, tokenizer = load_checkpoint(initial)
    data = tokenize_rows(corpora.look, tokenizer, False, settings_for("sft", base, "bench").max_length)
    mean_len = sum(len(x) for x in data["input_ids"]) / len(data)
    batch = math.lcm(BATCH, processes)
    tokens = int(STEPS * batch * mean_len)
    settings = settings_for("sft", {**base, "batch_size": batch, "tokens": tokens, "save_every": 10_000}, "bench")
    spec = StageSpec("fe-sft", "sft", "look", "foresight", settings)
    rates: dict[str, list[float]] = {"one": [], "many": []}
    seen: dict[str, int] = {}

    def job(name: str) -> tuple[StageJob, Path, Path]:
        work, target = tmp_path / f"{name}.partial", tmp_path / name
        shutil.rmtree(target, ignore_errors=True)
        work.mkdir(exist_ok=True)
        knobs = profile.task_knobs(TASK)
        return StageJob(spec, TASK, knobs, 0, work, initial, corpora.look, target), work, target

    def rate(name: str, target: Path) -> None:
        stats = json.loads((target / "stage.json").read_text())["stats"]
        rates[name].append(stats["tokens_seen"] / stats["wall_s"])
        seen[name] = stats["tokens_seen"]

    def one_round() -> None:
        stage, work, target = job("one")
        fit_and_save(stage)
        rate("one", target)
        stage, work, target = job("many")
        distributed.launch(stage, work, distributed.Launcher(processes, None), "the benchmark stage")
        rate("many", target)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    assert seen["one"] == seen["many"]  # the same rows
    ratio = max(rates["many"]) / max(rates["one"])
    benchmark.extra_info.update({"ratio": ratio, "processes": processes})
    bench_line(
        f"sft-{processes}-processes-vs-1",
        ratio,
        f">={TARGET}",
        steps=STEPS,
        batch=settings.batch_size,
        one_tok_per_s=round(max(rates["one"])),
        many_tok_per_s=round(max(rates["many"])),
        load=round(os.getloadavg()[0], 2),
    )
    assert ratio >= TARGET
