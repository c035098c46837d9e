"""The launcher's settings, its command line and the even split of batches (harness.training.distributed).

The 2-process runs themselves are in tests/integration/test_devices.py (heavy).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core import environ
from harness.core.errors import HarnessError
from harness.training import distributed
from harness.training.stages import GrpoSettings, SftSettings, StageSpec


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(distributed.ENV, raising=False)
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    yield
    # configure() writes os.environ itself, which monkeypatch does not undo: a launcher left set here
    # made every later test in the same session train its stages under 4 processes.
    os.environ.pop(distributed.ENV, None)


def test_no_launcher_trains_in_process_and_clears_an_earlier_one() -> None:
    distributed.configure("accelerate", 2, None)
    assert distributed.current() == distributed.Launcher(2, None)
    assert distributed.configure("none", None, None) is None
    assert distributed.current() is None


@pytest.mark.parametrize(
    ("launcher", "processes", "config", "message"),
    [
        ("mpi", None, None, "unknown launcher 'mpi'"),
        ("none", 2, None, "--processes and --accelerate-config need --launcher accelerate"),
        ("accelerate", 0, None, "--processes must be at least 1, got 0"),
        ("accelerate", None, "missing.yaml", "accelerate config .*missing.yaml does not exist"),
    ],
)
def test_bad_launcher_options_fail_before_any_work(
    tmp_path: Path, launcher: str, processes: int | None, config: str | None, message: str
) -> None:
    with pytest.raises(HarnessError, match=message):
        distributed.configure(launcher, processes, tmp_path / config if config else None)
    assert distributed.current() is None


def test_a_config_file_gives_processes_and_machine_rank(tmp_path: Path) -> None:
    config = tmp_path / "node1.yaml"
    config.write_text("num_machines: 2\nmachine_rank: 1\nnum_processes: 4\nmain_process_ip: 10.0.0.1\n")
    chosen = distributed.configure("accelerate", None, config)
    assert chosen is not None and (chosen.total_processes(), chosen.machine_rank()) == (4, 1)
    assert json.loads(distributed.os.environ[distributed.ENV])["config"] == str(config.resolve())
    command = distributed.launch_command(chosen, tmp_path / "job.pkl", threads=1)
    assert command[command.index("--config_file") + 1] == str(config.resolve())
    assert "--multi_gpu" not in command and "--num_processes" not in command  # the file says
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(HarnessError, match="must be a mapping"):
        distributed.configure("accelerate", None, tmp_path / "bad.yaml")


def test_the_launch_command_starts_n_processes_of_the_stage_worker(tmp_path: Path) -> None:
    command = distributed.launch_command(distributed.Launcher(2, None), tmp_path / "job.pkl", threads=1)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "2" and "--multi_gpu" in command
    assert command[command.index("--num_cpu_threads_per_process") + 1] == "1"
    assert command[-3:] == ["-m", "harness.training.launched", str(tmp_path / "job.pkl")]
    one = distributed.launch_command(distributed.Launcher(1, None), tmp_path / "job.pkl", threads=2)
    assert "--multi_gpu" not in one


def test_batches_split_evenly_or_the_stage_is_refused() -> None:
    sft = StageSpec("sft", "sft", "expert", "react", SftSettings(batch_size=8))
    distributed.check_split(sft, 2)
    with pytest.raises(HarnessError, match=r"stage sft: batch_size = 8 does not split evenly over 3 processes"):
        distributed.check_split(sft, 3)
    wm_amt = StageSpec("wm-amt", "wm-amt", "world", "react", SftSettings(batch_size=6))
    with pytest.raises(HarnessError, match=r"stage wm-amt: batch_size = 6 does not split evenly over 4 processes"):
        distributed.check_split(wm_amt, 4)
    distributed.check_split(
        StageSpec("rl", "grpo", "prompts", "react", GrpoSettings(prompts_per_step=2, num_generations=4)), 4
    )
    rl = StageSpec("rl", "grpo", "prompts", "react", GrpoSettings(prompts_per_step=3, num_generations=2))
    with pytest.raises(HarnessError, match=r"stage rl: prompts_per_step \* num_generations = 6 does not split evenly"):
        distributed.check_split(rl, 4)


def test_each_process_takes_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (distributed.rank(), distributed.world_size(), distributed.per_process(8, "batch_size")) == (0, 1, 8)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert (distributed.rank(), distributed.per_process(8, "batch_size")) == (1, 4)
    assert not distributed.launched()


def test_launched_processes_start_with_the_numeric_pin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A library caller that never pinned its own process: the stage processes still start pinned.
    monkeypatch.setattr(environ.platform, "machine", lambda: "x86_64")
    for key in (*environ.NUMERIC_PIN, environ.NUMERICS_ENV):
        monkeypatch.delenv(key, raising=False)
    started = {}

    def run(command: list[str], env: dict[str, str], preexec_fn: object) -> subprocess.CompletedProcess:
        started.clear()
        started.update(env)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(distributed.subprocess, "run", run)
    distributed.launch({"stage": {}}, tmp_path, distributed.Launcher(2, None), "stage sft")
    assert {k: started[k] for k in environ.NUMERIC_PIN} == environ.NUMERIC_PIN
    monkeypatch.setenv(environ.NUMERICS_ENV, "native")
    distributed.launch({"stage": {}}, tmp_path, distributed.Launcher(2, None), "stage sft")
    assert started[environ.NUMERICS_ENV] == "native" and not set(environ.NUMERIC_PIN) & set(started)
