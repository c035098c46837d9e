"""Figures from a fabricated run store: every file written, readable, not blank; the loader's rows exact."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from harness.core.errors import HarnessError
from harness.reporting import plots
from harness.reporting.plots import load_metrics, plot_all

TASKS = ("countdown", "graph-nav")
METHODS = ("react", "sft-mimic", "foresight")
STAGES = {"react": ("sft",), "sft-mimic": ("sft",), "foresight": ("wm-amt", "fe-sft", "fc-rl")}
FIGURES = ("success", "reliability", "fidelity", "format_capability", "training_curves", "selection_gain")


def _bins(p_shift: float, seed: int) -> list[dict]:
    """Returns ten reliability bins, the top two empty (null mean_p and accuracy)."""
    bins = []
    for i in range(10):
        lo, hi = i / 10, (i + 1) / 10
        empty = i >= 8
        bins.append(
            {
                "lo": lo,
                "hi": hi,
                "count": 0 if empty else 5 + i + seed,
                "mean_p": None if empty else lo + 0.05,
                "accuracy": None if empty else min(1.0, max(0.0, lo + 0.05 + p_shift)),
            }
        )
    return bins


def _metrics(task: str, method: str, seed: int) -> dict:
    """Returns a plausible metrics.json; react has no p and no rollouts, so those are null."""
    has_p = method != "react"
    base = {"react": 0.3, "sft-mimic": 0.45, "foresight": 0.6}[method] + 0.1 * TASKS.index(task) + 0.02 * seed
    stages = {n: {"hash": f"{method}-{n}-{task}-{seed}", "tokens_seen": 1000, "steps": 4} for n in STAGES[method]}
    return {
        "success": base,
        "success_ci": {"mean": base, "ci_low": base - 0.08, "ci_high": base + 0.08, "n": 50},
        "format_rate": (0.97 if method == "sft-mimic" else 0.9) - 0.04 * TASKS.index(task),
        "ece_first": 0.1 if has_p else None,
        "ece_all": (0.3 if method == "sft-mimic" else 0.08) if has_p else None,
        "brier": 0.2 if has_p else None,
        "auroc": 0.7 if has_p else None,
        "q_error": 0.15 if has_p else None,
        "selection_gain": (0.01 if method == "sft-mimic" else 0.06 + 0.01 * seed) if has_p else None,
        "fidelity@1": (0.2 if method == "sft-mimic" else 0.7) + 0.05 * TASKS.index(task) if has_p else None,
        "fidelity@2": (0.1 if method == "sft-mimic" else 0.5) if has_p else None,
        "fidelity@3": (0.05 if method == "sft-mimic" else 0.35) if has_p else None,
        "reliability": _bins(-0.2 if method == "sft-mimic" else 0.02, seed) if has_p else None,
        "reliability_bins_first": _bins(-0.1 if method == "sft-mimic" else 0.0, seed) if has_p else None,
        "cost": {"training_tokens": 1000 * len(stages), "stages": stages},
        "random_policy_success": 0.1 + 0.05 * TASKS.index(task),
        "identity": {"method": method, "task": task, "profile": "smoke", "seed": seed},
        "n_episodes": 50,
    }


def _store(root: Path) -> tuple[Path, Path]:
    """Returns (runs, cache) holding 2 tasks x 3 methods x 2 seeds, and an incomplete run to ignore."""
    runs, cache = root / "runs", root / "cache"
    for task in TASKS:
        for method in METHODS:
            for seed in (0, 1):
                run = runs / "smoke" / task / method / f"seed{seed}"
                run.mkdir(parents=True)
                metrics = _metrics(task, method, seed)
                stages = [{"name": n, **s} for n, s in metrics["cost"]["stages"].items()]
                (run / "manifest.json").write_text(json.dumps({"stages": stages}))
                (run / "metrics.json").write_text(json.dumps(metrics))
                for stage in stages:
                    log = cache / stage["hash"] / "log.jsonl"
                    log.parent.mkdir(parents=True)
                    rl, offset = stage["name"].endswith("rl"), 0.3 * TASKS.index(task) + 0.2 * METHODS.index(method)
                    lines = [
                        {"step": s, "loss": 2 / s + offset, "num_tokens": 100 * s, **({"reward": s / 10} if rl else {})}
                        for s in range(1, 6)
                    ]
                    lines.append({"step": 5, "train_runtime": 3.0})  # the trainer's closing summary has no loss
                    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    (runs / "smoke" / "countdown" / "vanilla-rl" / "seed0").mkdir(parents=True)  # no metrics.json: incomplete
    return runs, cache


def test_load_metrics_rows_and_values(tmp_path: Path) -> None:
    runs, _ = _store(tmp_path)
    frame = load_metrics(runs, "smoke")
    assert len(frame) == 12
    assert "vanilla-rl" not in set(frame["method"])
    assert list(dict.fromkeys(frame["method"])) == ["react", "sft-mimic", "foresight"]
    row = frame[(frame["task"] == "graph-nav") & (frame["method"] == "foresight") & (frame["seed"] == 1)].iloc[0]
    assert row["success"] == pytest.approx(0.6 + 0.1 + 0.02)
    assert row["ci_low"] == pytest.approx(0.72 - 0.08)
    assert row["fidelity@2"] == pytest.approx(0.5)
    assert row["training_tokens"] == 3000
    assert len(row["reliability"]) == 10
    react = frame[frame["method"] == "react"]
    assert react["ece_all"].isna().all() and react["reliability"].isna().all()


def test_plot_all_writes_every_figure(tmp_path: Path) -> None:
    runs, cache = _store(tmp_path)
    out = tmp_path / "figures"
    paths = plot_all(runs, cache, "smoke", out)
    expected = {out / f"{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")}
    assert set(paths) == expected
    assert {p.name for p in out.iterdir()} == {p.name for p in expected}  # no temp files left behind
    for path in expected:
        if path.suffix == ".pdf":
            assert path.read_bytes().startswith(b"%PDF")
            continue
        image = mpimg.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 200
        assert image.std() > 0


def test_figures_without_data_are_skipped(tmp_path: Path) -> None:
    runs, cache = _store(tmp_path)
    (runs / "smoke" / "countdown" / "react" / "seed1" / "metrics.json").unlink()  # one seed: bootstrap CI bars
    paths = plot_all(runs, tmp_path / "empty-cache", "smoke", tmp_path / "figures", methods=["react"])
    assert sorted(p.name for p in paths) == ["success.pdf", "success.png"]


def test_empty_store_raises(tmp_path: Path) -> None:
    (tmp_path / "runs" / "smoke" / "countdown" / "react" / "seed0").mkdir(parents=True)
    with pytest.raises(HarnessError, match="no complete runs"):
        plot_all(tmp_path / "runs", tmp_path / "cache", "smoke", tmp_path / "figures")


def test_figures_get_the_mode_the_umask_implies(tmp_path: Path) -> None:
    runs, _ = _store(tmp_path)
    saved = os.umask(0o002)
    try:
        paths = plot_all(runs, tmp_path / "empty-cache", "smoke", tmp_path / "figures", methods=["react"])
    finally:
        os.umask(saved)
    assert paths and {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o664}


def test_reliability_is_one_panel_per_method_of_first_turn_p_with_counts_on_the_bars(tmp_path: Path) -> None:
    runs, _ = _store(tmp_path)
    frame = load_metrics(runs, "smoke")
    fig = plots._reliability(frame, list(METHODS), dict(plots.METHOD_COLORS))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t.splitlines()[0] for t in titles] == ["sft-mimic", "foresight"]  # react writes no p: no panel
    # Bin i (i < 8) holds 5 + i + seed first turns per run; pooled over 2 tasks x seeds 0, 1: 22 + 4 i.
    labels = [[t.get_text() for t in ax.texts] for ax in fig.axes if ax.texts]
    assert labels == [[str(22 + 4 * i) for i in range(8)]] * 2
    assert all("n = 288 episodes, 2 tasks, 4 runs" in t for t in titles)  # sum of 22 + 4 i over i < 8
