"""REPORT.md's "Where the time goes": the cost tables of a hand-made run store, summed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.config import load_profile
from harness.core.runs import run_dir
from harness.reporting.cost_tables import complete_manifests, cost_tables, method_table, stage_table

PROFILE = load_profile("smoke", {"seeds": [0, 1]})


def _stage(name: str, key: str, tokens: int, steps: int, wall: float, corpus: int | None = None) -> dict:
    stats = {"tokens_seen": tokens, "steps": steps, "wall_s": wall, "peak_rss_mb": 500.0}
    return {"name": name, "hash": key, "reused": False, **stats, **({"corpus_tokens": corpus} if corpus else {})}


def _plant(runs: Path, method: str, seed: int, stages: list[dict], eval_s: float, complete: bool = True) -> None:
    path = run_dir(runs, PROFILE.name, "countdown", method, seed)
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"stages": stages, "wall_s": {"train": 9.0, "eval": eval_s}}))
    if complete:
        (path / "metrics.json").write_text("{}")


def _store(runs: Path) -> None:
    # react and vanilla-rl share their sft stage (hash s0); seed 1 of react has its own (s1).
    sft0, sft1 = _stage("sft", "s0", 1000, 10, 2.0, corpus=400), _stage("sft", "s1", 600, 6, 1.0, corpus=200)
    _plant(runs, "react", 0, [sft0], eval_s=1.5)
    _plant(runs, "react", 1, [sft1], eval_s=2.5)
    _plant(runs, "vanilla-rl", 0, [sft0, _stage("rl", "r0", 300, 3, 6.0)], eval_s=4.0)
    _plant(runs, "foresight", 0, [_stage("wm-amt", "w0", 800, 4, 0.0, corpus=800)], eval_s=1.0)
    # Not finished: no metrics.json, so none of its cost counts.
    _plant(runs, "sft-mimic", 0, [_stage("sft", "m0", 5000, 50, 50.0, corpus=100)], eval_s=9.0, complete=False)


def test_stage_table_counts_each_hash_once(tmp_path: Path) -> None:
    _store(tmp_path)
    assert stage_table(PROFILE, list(complete_manifests(PROFILE, tmp_path)))[2:] == [
        "| grpo | rl | 1 | 300 | - | 3 | 6.0 | 50 |",  # 300 tokens / 6 s; grpo reads no corpus
        # s0 once though two runs hold it: 1000 + 600 tokens, 10 + 6 steps, 2 + 1 s, 1600 / 3 s = 533;
        # epochs mean(1000 / 400, 600 / 200) = mean(2.5, 3.0)
        "| sft | sft | 2 | 1600 | 2.75 | 16 | 3.0 | 533 |",
        "| wm-amt | wm-amt | 1 | 800 | 1.00 | 4 | 0.0 | - |",  # no wall recorded: no rate
    ]


def test_method_table_counts_a_shared_stage_in_each_method(tmp_path: Path) -> None:
    _store(tmp_path)
    assert method_table(PROFILE, list(complete_manifests(PROFILE, tmp_path)))[2:] == [
        "| react | 2 | 2 | 1 | 1600 | 3.0 | 4.0 |",  # s0 + s1; s0 is vanilla-rl's too; eval 1.5 + 2.5
        "| vanilla-rl | 1 | 2 | 1 | 1300 | 8.0 | 4.0 |",  # s0 + r0: 1000 + 300 tokens, 2 + 6 s
        "| foresight | 1 | 1 | 0 | 800 | 0.0 | 1.0 |",
    ]


def test_section_says_when_no_run_is_complete(tmp_path: Path) -> None:
    _plant(tmp_path, "react", 0, [_stage("sft", "s0", 1000, 10, 2.0)], eval_s=1.0, complete=False)
    assert cost_tables(PROFILE, tmp_path) == ["### Where the time goes", "", "No complete run in the store.", ""]
    _store(tmp_path / "full")
    lines = cost_tables(PROFILE, tmp_path / "full")
    assert lines.count("| sft | sft | 2 | 1600 | 2.75 | 16 | 3.0 | 533 |") == 1
    assert lines.count("| react | 2 | 2 | 1 | 1600 | 3.0 | 4.0 |") == 1
