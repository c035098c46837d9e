"""One stage over several processes or devices: `accelerate launch` runs it data-parallel (DDP).

With `--launcher accelerate` the harness process itself stays single: it builds the data, holds
the stage's lock, evaluates and writes runs. For a stage it has to train it writes the job (a
pickled StageJob, `<hash>.partial/launch-machine<k>.pkl`) and runs `accelerate launch -m
harness.training.launched JOB`, whose processes each train the stage on their share of every
batch; process 0 alone writes
log.jsonl, the TRL checkpoints' shared files and the finished stage. The launcher's settings
travel in the environment variable HARNESS_LAUNCHER (json), so that `reproduce --jobs N`
workers launch their stages the same way.

Batches keep their meaning: a profile's `batch_size` (sft, wm-amt) and `prompts_per_step *
num_generations` (grpo) are per optimizer step, split evenly over the processes, so N processes
read the very rows one process reads, in the same order.
"""

from __future__ import annotations

import ctypes
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.core import environ, progress
from harness.core.errors import HarnessError
from harness.training.job import StageJob
from harness.training.stages import StageSpec, stage_kind

_LAUNCHED = False
"""Whether this process is one of a launch's training processes (set by `main`)."""

ENV = "HARNESS_LAUNCHER"
"""Where the launcher's settings travel (json of `Launcher`); unset: every stage trains in-process."""


@dataclass(frozen=True)
class Launcher:
    """How stages are launched: processes per run (None: accelerate's config or the GPU count) and a config file."""

    processes: int | None = None
    config: str | None = None

    def machine_rank(self) -> int:
        """Returns this machine's rank in the accelerate config (0 without one): machines > 0 follow machine 0."""
        return int(read_config(self.config).get("machine_rank", 0)) if self.config else 0

    def total_processes(self) -> int:
        """Returns the number of processes a stage runs on, over all machines."""
        if self.processes:
            return self.processes
        if self.config and read_config(self.config).get("num_processes"):
            return int(read_config(self.config)["num_processes"])
        import torch

        return max(1, torch.cuda.device_count())


def read_config(path: str) -> dict[str, Any]:
    """Returns an accelerate config file as a mapping; HarnessError when it cannot be read."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise HarnessError(f"accelerate config {path} cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise HarnessError(f"accelerate config {path} is not valid YAML") from exc
    if not isinstance(data, dict):
        raise HarnessError(f"accelerate config {path} must be a mapping (as `accelerate config` writes it)")
    return data


def configure(launcher: str, processes: int | None, config: Path | None) -> Launcher | None:
    """Returns the launcher of the command-line options (None for in-process training) and exports it to ENV.

    HarnessError for a bad combination, before any work.
    """
    if launcher not in ("none", "accelerate"):
        raise HarnessError(f"unknown launcher {launcher!r} (known: none, accelerate)")
    if launcher == "none":
        if processes is not None or config is not None:
            raise HarnessError("--processes and --accelerate-config need --launcher accelerate")
        os.environ.pop(ENV, None)
        return None
    if processes is not None and processes < 1:
        raise HarnessError(f"--processes must be at least 1, got {processes}")
    if config is not None:
        if not config.is_file():
            raise HarnessError(f"accelerate config {config} does not exist")
        config = config.resolve()
    chosen = Launcher(processes, str(config) if config else None)
    chosen.total_processes()  # reads the config: a bad file fails here
    os.environ[ENV] = json.dumps(asdict(chosen), sort_keys=True)
    return chosen


def current() -> Launcher | None:
    """Returns the launcher in effect (from ENV), or None when stages train in-process."""
    value = os.environ.get(ENV)
    return Launcher(**json.loads(value)) if value else None


def launched() -> bool:
    """Returns whether this process is one of the processes `accelerate launch` started for a stage."""
    return _LAUNCHED


def rank() -> int:
    """Returns this process's rank among the training processes (0 outside a launch)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Returns the number of training processes (1 outside a launch)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_process(total: int, what: str) -> int:
    """Returns `total` split evenly over the training processes; HarnessError when it does not divide."""
    if total % world_size():
        raise HarnessError(f"{what} {total} does not split evenly over {world_size()} processes")
    return total // world_size()


def barrier() -> None:
    """Returns once every training process has reached it (at once outside a launch)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def check_split(spec: StageSpec, processes: int) -> None:
    """Raises HarnessError, before any launch, when a stage's batch does not split evenly over `processes`."""
    total, what = stage_kind(spec.kind).step_batch(spec.settings)
    if total % processes:
        raise HarnessError(
            f"stage {spec.name}: {what} = {total} does not split evenly over {processes} processes "
            "(each process takes an equal share of every batch)"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def die_with_parent() -> None:
    """Asks the kernel to SIGKILL this process when its parent dies (Linux), so no rank outlives a killed run."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def launch_command(launcher: Launcher, job: Path, threads: int) -> list[str]:
    """Returns the `accelerate launch` command line that trains the stage described by `job`."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if launcher.config:
        command += ["--config_file", launcher.config]
        if launcher.processes:
            command += ["--num_processes", str(launcher.processes)]
    else:
        n = launcher.total_processes()
        # --multi_gpu selects torch.distributed.run, which starts the N processes; without a GPU
        # they fall back to the CPU and gloo. (--cpu would select accelerate's one-process launcher.)
        command += ["--num_processes", str(n), "--num_machines", "1", "--mixed_precision", "no"]
        command += ["--dynamo_backend", "no", "--main_process_port", str(_free_port())]
        command += ["--multi_gpu"] if n > 1 else []
    command += ["--num_cpu_threads_per_process", str(threads), "-m", "harness.training.launched", str(job)]
    return command


def launch(job: StageJob, work: Path, launcher: Launcher, what: str) -> None:
    """Trains a stage under `accelerate launch`; returns when every process has ended well, else HarnessError.

    Each process runs at this process's torch thread count.
    """
    import torch

    threads = torch.get_num_threads()
    path = work / f"launch-machine{launcher.machine_rank()}.pkl"
    with path.open("wb") as handle:
        pickle.dump({"job": job, "threads": threads}, handle)
    # The launched processes import torch first thing: the numeric pin must be in their environment already.
    env = {**os.environ, **environ.harness_env(os.environ), "OMP_NUM_THREADS": str(threads)}
    sys.stdout.flush()
    sys.stderr.flush()
    with progress.active().handover():  # process 0 prints the stage's progress lines itself
        code = subprocess.run(launch_command(launcher, path, threads), env=env, preexec_fn=die_with_parent).returncode
    if code != 0:
        raise HarnessError(
            f"the {launcher.total_processes()} processes training {what} ended with exit code {code} "
            "(their output is above); rerun the same command to resume from the stage's last checkpoint"
        )


def mark_launched() -> None:
    """Marks this process as one of a launch's training processes (`launched` then returns True)."""
    global _LAUNCHED
    _LAUNCHED = True
