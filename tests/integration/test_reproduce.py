"""`harness reproduce` end to end on a reduced smoke profile, then `harness verify` and `harness probe` on it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from harness.cli.main import cli
from harness.core.config import PROFILE_DIR, load_profile
from harness.core.registry import make_task
from harness.core.runs import run_dir
from harness.evaluation.probes.items import probe_items
from tests.cli_inprocess import run
from tests.cli_processes import start

pytestmark = pytest.mark.slow
METHODS, ABLATIONS = ["react", "vanilla-rl", "foresight"], ["foresight-no-rl"]
SMOKE_DATA = load_profile("smoke").data


def smoke_variant(path: Path, tasks: list[str], methods: list[str], ablations: list[str]) -> Path:
    """Writes smoke's knobs and budgets, on `tasks` with `methods` and `ablations` only, to `path`."""
    values = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    values.update(tasks={t: values["tasks"][t] for t in tasks}, methods=methods, ablations=ablations)
    values.pop("reference")
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> tuple[Path, Path]:
    """Returns (profile path, folder) after one `harness reproduce` of a reduced smoke profile into
    folder/runs, folder/cache and folder/results: smoke's knobs and budgets on one task, with every
    stage kind (sft, grpo, wm-amt, fe-sft, fc-rl)."""
    tmp = tmp_path_factory.mktemp("reproduce")
    profile = smoke_variant(tmp / "mini-smoke.yaml", ["graph-nav"], METHODS, ABLATIONS)
    folder = tmp / "first"
    result = CliRunner().invoke(
        cli,
        ["reproduce", "--profile", str(profile), "--runs", str(folder / "runs"), "--cache", str(folder / "cache"),
         "--results", str(folder / "results")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 run(s) trained and evaluated" in result.output
    return profile, folder


def test_reproduce_then_verify_a_fresh_reproduction(monkeypatch, capsys, tmp_path: Path, reproduced) -> None:
    profile, folder = reproduced
    results = folder / "results"
    for name in ("tables/summary.csv", "tables/summary.md", "tables/environment.json", "REPORT.md"):
        assert (results / name).is_file(), name
    assert list((results / "figures").glob("*.png"))
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert summary["method"].tolist() == METHODS + ABLATIONS and set(summary["task"]) == {"graph-nav"}
    assert (summary["episodes"] == 12).all() and (summary["training_tokens"] > 0).all()
    env = json.loads((results / "tables" / "environment.json").read_text())
    assert env["versions"]["torch_threads"] == [str(torch.get_num_threads())]
    # A second reproduction from nothing (fresh runs and cache, every stage trained again) must
    # give the very same numbers: verify compares it with the first at 1e-9.
    code, out, err = run(
        monkeypatch, capsys, "verify", "--profile", str(profile), "--reference", str(results),
        "--workdir", str(tmp_path / "second"),
    )  # fmt: skip
    assert code == 0, err + out
    assert "same environment as the reference" in out and "verified: all 4 rows" in out
    # It trained afresh: the initial model and the five stages (sft, rl, wm-amt, fe-sft, fc-rl).
    assert len(list((tmp_path / "second" / "cache").glob("*/stage.json"))) == 6


def test_a_profile_edit_redoes_the_runs_it_changes_and_no_other(tmp_path: Path, reproduced) -> None:
    """A run is complete only under the config it was made with: fc-rl at 3 steps instead of 2 redoes
    foresight (the one method of the plan that uses fc-rl) and says why; react, vanilla-rl and
    foresight-no-rl stay as they were, byte for byte. Before run keys, this printed "0 run(s)" and
    reported the 2-step numbers."""
    profile, folder = reproduced
    for part in ("runs", "cache"):
        shutil.copytree(folder / part, tmp_path / part)
    values = yaml.safe_load(profile.read_text())
    values["stages"]["fc-rl"]["steps"] = 3
    edited = tmp_path / "edited" / profile.name  # the same file name: the same profile name, the same runs
    edited.parent.mkdir()
    edited.write_text(yaml.safe_dump(values))
    runs = tmp_path / "runs" / profile.stem / "graph-nav"
    before = {m: (runs / m / "seed0" / "metrics.json").read_bytes() for m in METHODS + ABLATIONS}
    result = CliRunner().invoke(
        cli,
        ["reproduce", "--profile", str(edited), "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"),
         "--results", str(tmp_path / "results")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "redoing foresight on graph-nav seed 0: it was made under another config" in result.output
    assert "redoing" not in result.output.replace("redoing foresight on graph-nav", "")
    assert "1 run(s) trained and evaluated" in result.output
    after = {m: (runs / m / "seed0" / "metrics.json").read_bytes() for m in METHODS + ABLATIONS}
    assert [m for m in before if before[m] != after[m]] == ["foresight"]
    steps = json.loads(after["foresight"])["cost"]["stages"]["fc-rl"]["steps"]
    assert steps == 3


def test_probe_a_stored_method_writes_probes_json_into_its_run(monkeypatch, capsys, reproduced) -> None:
    profile, folder = reproduced
    code, out, err = run(
        monkeypatch, capsys, "probe", "--method", "foresight", "--task", "graph-nav", "--profile", str(profile),
        "--runs", str(folder / "runs"), "--cache", str(folder / "cache"),
    )  # fmt: skip
    assert code == 0, err
    run_path = run_dir(folder / "runs", "mini-smoke", "graph-nav", "foresight", 0)
    assert (run_path / "metrics.json").is_file() and f"written to {run_path / 'probes.json'}" in out
    report = json.loads((run_path / "probes.json").read_text())
    assert report["method"] == "foresight" and report["profile"] == "mini-smoke" and report["limit"] is None
    found = report["tasks"]["graph-nav"]
    items = probe_items(make_task("graph-nav", load_profile(str(profile)).tasks["graph-nav"]), SMOKE_DATA, 0)
    for name, metrics in (("next_obs", ("exact_match",)), ("calibration", ("brier", "ece", "q_error", "mean_p"))):
        assert found[name]["items"] == found[name]["items_available"] == len(items[name])
        assert all(0.0 <= found[name][m] <= 1.0 for m in metrics), found[name]


def test_jobs_at_one_thread_give_the_numbers_of_one_process_at_one_thread(monkeypatch, capsys, tmp_path: Path) -> None:
    """`--jobs 2 --threads 1` runs each run in a worker process at 1 thread: the same table, bit for bit,
    as the same runs made in this process at 1 thread (so the jobs change the speed, not the numbers)."""
    profile = smoke_variant(tmp_path / "react-smoke.yaml", ["graph-nav", "countdown"], ["react"], [])
    threads = torch.get_num_threads()
    tables = {}
    for name, jobs in (("workers", ["--jobs", "2", "--threads", "1"]), ("inprocess", [])):
        folder = tmp_path / name
        torch.set_num_threads(1 if not jobs else threads)
        try:
            code, out, err = run(
                monkeypatch, capsys, "reproduce", "--profile", str(profile), *jobs, "--runs", str(folder / "runs"),
                "--cache", str(folder / "cache"), "--results", str(folder / "results"),
            )  # fmt: skip
        finally:
            torch.set_num_threads(threads)
        assert code == 0, err + out
        assert "2 run(s) trained and evaluated" in out
        env = json.loads((folder / "results" / "tables" / "environment.json").read_text())
        assert env["versions"]["torch_threads"] == ["1"]
        tables[name] = (folder / "results" / "tables" / "summary.csv").read_text()
    assert tables["workers"] == tables["inprocess"]


def test_a_killed_jobs_worker_is_one_error_and_a_rerun_resumes(monkeypatch, capsys, tmp_path: Path) -> None:
    """A worker killed mid-stage (SIGKILL from the fault hook) ends `reproduce --jobs 2` with one line
    and exit 2; the rerun finishes every run, with the numbers of a run never killed."""
    profile = smoke_variant(tmp_path / "two-smoke.yaml", ["countdown"], ["react", "sft-mimic"], [])

    def reproduce(name: str) -> tuple[int, str, str]:
        folder = tmp_path / name
        return run(
            monkeypatch, capsys, "reproduce", "--profile", str(profile), "--jobs", "2", "--threads", "1",
            "--runs", str(folder / "runs"), "--cache", str(folder / "cache"), "--results", str(folder / "results"),
        )  # fmt: skip

    monkeypatch.setenv("HARNESS_KILL_AT", "sft-step:3")  # each worker kills itself at its 3rd sft step
    code, out, err = reproduce("killed")
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "a reproduce worker process died" in errors[0], err
    assert not list((tmp_path / "killed" / "runs").glob("*/*/*/*/metrics.json"))
    monkeypatch.delenv("HARNESS_KILL_AT")
    code, out, err = reproduce("killed")
    assert code == 0 and "2 run(s) trained and evaluated" in out, err + out
    code, out, err = reproduce("unbroken")
    assert code == 0, err + out
    for method in ("react", "sft-mimic"):
        found = [(tmp_path / n / "runs" / "two-smoke" / "countdown" / method / "seed0").joinpath("metrics.json")
                 for n in ("killed", "unbroken")]  # fmt: skip
        assert found[0].read_bytes() == found[1].read_bytes()


def _workers_of(pid: int) -> list[int]:
    """Returns the pids of the spawned worker processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from Linux /proc")
def test_a_sigtermed_reproduce_leaves_no_worker_behind(tmp_path: Path) -> None:
    """SIGTERM to `reproduce --jobs 2` (a scheduler's time limit, `kill PID`) ends its workers too: none
    trains on, writing to the store, after the command it belongs to has gone."""
    profile = smoke_variant(tmp_path / "two-smoke.yaml", ["countdown"], ["react", "sft-mimic"], [])
    folder = tmp_path / "store"
    running = start(
        ["reproduce", "--profile", str(profile), "--jobs", "2", "--threads", "1", "--quiet", "--runs",
         str(folder / "runs"), "--cache", str(folder / "cache"), "--results", str(folder / "results")],
        tmp_path / "logs",
    )  # fmt: skip
    deadline, workers = time.time() + 300, []
    while time.time() < deadline and len(workers) < 2 and running.process.is_alive():
        workers = _workers_of(running.pid)
        time.sleep(0.2)
    assert len(workers) == 2, running.stderr_so_far()
    os.kill(running.pid, signal.SIGTERM)
    assert running.finish(60).code == -signal.SIGTERM
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)  # leave nothing running whatever the outcome
    assert not left, f"workers {left} outlived the SIGTERMed reproduce"
