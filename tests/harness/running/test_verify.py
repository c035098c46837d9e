"""`harness verify`: a fresh summary table against a reference, on hand-made numbers (nothing trains)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.cli.main import main
from harness.core.config import load_profile
from harness.core.runs import dumps, run_dir, write_run
from harness.evaluation.evaluate import run_key
from harness.running.verify import (
    EXACT,
    Tolerance,
    choose_comparison,
    compare_tables,
    environment_differences,
    render_checks,
    seed_spread,
    shown_differences,
    tolerances,
)

NAN = float("nan")
PIN = "ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"
VERSIONS = {
    "torch": "2.13.0+cpu",
    "trl": "1.16.0",
    "python": "3.11.7",
    "torch_threads": "1",
    "cpu_model": "AMD EPYC",
    "cpu_capability": "AVX2",
    "numerics": PIN,
}


def table(**overrides) -> pd.DataFrame:
    row = {
        "task": "graph-nav",
        "method": "react",
        "seeds": 2,
        "episodes": 24,
        "success": 0.625,
        "success_std": 0.1767766952966369,
        "ece_all": NAN,
        "success_per_seed": "0.50 0.75",
        "random_policy": 0.25,
        "training_tokens": 4000.0,
    }
    return pd.DataFrame([{**row, **overrides}])


def failed(checks) -> list[str]:
    return sorted(c.column for c in checks if not c.ok)


def test_identical_tables_pass_and_missing_values_agree() -> None:
    checks = compare_tables(table(), table(), tolerances(same_environment=True))
    assert failed(checks) == [] and len(checks) == 8
    assert "pass" in render_checks(checks)


def test_same_environment_allows_no_more_than_float_printing() -> None:
    assert failed(compare_tables(table(), table(success=0.625 + 1e-12), tolerances(True))) == []
    assert failed(compare_tables(table(), table(success=0.625 + 1e-6), tolerances(True))) == ["success"]
    assert failed(compare_tables(table(), table(ece_all=0.1), tolerances(True))) == ["ece_all"]
    assert failed(compare_tables(table(), table(success_per_seed="0.50 0.67"), tolerances(True))) == [
        "success_per_seed"
    ]


def test_statistical_comparison_allows_three_sigma_of_a_seed_mean_difference() -> None:
    other = tolerances(same_environment=False)
    # seeds 2, std 0.1: 3 * 0.1 * sqrt(2 / 2) = 0.3 around the reference mean 0.5.
    two = {"seeds": 2, "success": 0.5, "success_std": 0.1, "success_per_seed": "0.40 0.60"}
    assert failed(compare_tables(table(**two), table(**{**two, "success": 0.79}), other)) == []
    assert failed(compare_tables(table(**two), table(**{**two, "success": 0.81}), other)) == ["success"]
    # seeds 8, std 0.1: 3 * 0.1 * sqrt(2 / 8) = 0.15.
    eight = {**two, "seeds": 8}
    assert failed(compare_tables(table(**eight), table(**{**eight, "success": 0.64}), other)) == []
    assert failed(compare_tables(table(**eight), table(**{**eight, "success": 0.66}), other)) == ["success"]
    # One seed (no std): the floor 0.1 alone; --atol replaces the floor, not the spread.
    one = {"seeds": 1, "success": 0.5, "success_std": NAN, "success_per_seed": "0.50"}
    assert failed(compare_tables(table(**one), table(**{**one, "success": 0.59}), other)) == []
    assert failed(compare_tables(table(**one), table(**{**one, "success": 0.61}), other)) == ["success"]
    assert failed(compare_tables(table(**one), table(**{**one, "success": 0.69}), tolerances(False, 0.2))) == []
    assert failed(compare_tables(table(**two), table(**{**two, "success": 0.79}), tolerances(False, 0.01))) == []


def test_statistical_comparison_of_per_seed_std_and_other_columns() -> None:
    other = tolerances(same_environment=False)
    two = {"seeds": 2, "success": 0.5, "success_std": 0.1, "success_per_seed": "0.40 0.60"}
    # One seed against one seed: 3 * 0.1 * sqrt(2) = 0.4243, plus 0.005 of printing.
    assert failed(compare_tables(table(**two), table(**{**two, "success_per_seed": "0.82 0.60"}), other)) == []
    assert failed(compare_tables(table(**two), table(**{**two, "success_per_seed": "0.84 0.60"}), other)) == [
        "success_per_seed"
    ]
    # A std column within the floor 0.1; a metric without a std column (ece_all) too.
    assert failed(compare_tables(table(**two), table(**{**two, "success_std": 0.19}), other)) == []
    assert failed(compare_tables(table(**two), table(**{**two, "success_std": 0.21}), other)) == ["success_std"]
    assert failed(compare_tables(table(ece_all=0.3), table(ece_all=0.39), other)) == []
    assert failed(compare_tables(table(ece_all=0.3), table(ece_all=0.41), other)) == ["ece_all"]
    assert failed(compare_tables(table(), table(training_tokens=4399.0), other)) == []  # within 10%
    assert failed(compare_tables(table(), table(training_tokens=4401.0), other)) == ["training_tokens"]
    # Seeds, episodes and the random policy depend on the seeds alone: exact anywhere.
    assert failed(compare_tables(table(), table(random_policy=0.26, episodes=23), other)) == [
        "episodes",
        "random_policy",
    ]
    checks = compare_tables(table(**two), table(**{**two, "success": 0.81}), other)
    assert "FAIL success 0.5 -> 0.81 (allowed 0.3)" in render_checks(checks)


def test_seed_spread_by_hand() -> None:
    row = {"seeds": 3, "success_std": 0.06, "ece_all_std": NAN}
    assert math.isclose(seed_spread("success", row), 3 * 0.06 * math.sqrt(2 / 3))
    assert math.isclose(seed_spread("success_per_seed", row), 3 * 0.06 * math.sqrt(2))
    assert seed_spread("ece_all", row) == seed_spread("success_std", row) == seed_spread("brier", row) == 0.0


def test_missing_and_extra_rows_and_columns_fail() -> None:
    reference = pd.concat([table(), table(method="sft-mimic")], ignore_index=True)
    checks = compare_tables(reference, table(method="vanilla-rl"), tolerances(True))
    notes = sorted((c.method, c.note) for c in checks if not c.ok)
    assert notes == [
        ("react", "row missing from the fresh results"),
        ("sft-mimic", "row missing from the fresh results"),
        ("vanilla-rl", "row not in the reference"),
    ]
    assert failed(compare_tables(table(), table().drop(columns=["ece_all"]), tolerances(True))) == ["ece_all"]


def test_a_reference_without_new_metric_columns_verifies_the_shared_ones() -> None:
    fresh = table(brier_skill_first=0.125, format_rate_t1=0.9)
    checks = compare_tables(table(), fresh, tolerances(True))
    assert all(c.ok for c in checks)
    assert {c.column for c in checks} == set(table().columns) - {"task", "method"}
    # The shared columns are still compared: a changed success fails.
    assert failed(compare_tables(table(), table(success=0.7, brier_skill_first=0.1), tolerances(True))) == ["success"]


def test_tolerance_formula() -> None:
    assert Tolerance(0.1).allows(0.5, 0.6) and not Tolerance(0.1).allows(0.5, 0.61)
    assert Tolerance(0.0, 0.1).allows(1000.0, 1100.0) and not Tolerance(0.0, 0.1).allows(1000.0, 1101.0)
    assert EXACT.allows(NAN, NAN) and not EXACT.allows(NAN, 0.0) and not EXACT.allows(0.0, NAN)


def test_environment_differences() -> None:
    env = {"versions": {k: [v] for k, v in VERSIONS.items()}}
    assert environment_differences(env, env) == []
    other = {"versions": {**env["versions"], "torch_threads": ["2"]}}
    assert environment_differences(env, other) == ["torch_threads: 1 -> 2"]
    assert environment_differences(None, env) == ["the reference records no environment (no tables/environment.json)"]


def test_the_comparison_is_bytes_only_on_the_same_numeric_path_and_environment() -> None:
    env = {"versions": {k: [v] for k, v in VERSIONS.items()}}
    assert choose_comparison(env, env, None).kind == "bytes"
    assert "tolerance 1e-09 on every column" in choose_comparison(env, env, None).lines()[0]
    # Another CPU model under the same capability and pin: the same kernels, so still bytes.
    model = {"versions": {**env["versions"], "cpu_model": ["Intel(R) Xeon(R) Gold 6130"]}}
    assert choose_comparison(env, model, None).kind == "bytes"
    assert shown_differences(env, model) == ["cpu_model: AMD EPYC -> Intel(R) Xeon(R) Gold 6130"]
    native = {"versions": {**env["versions"], "cpu_capability": ["AVX512"], "numerics": ["native"]}}
    found = choose_comparison(env, native, None)
    assert found.kind == "statistical"
    assert found.differences == ["cpu_capability: AVX2 -> AVX512", f"numerics: {PIN} -> native"]
    assert found.lines()[0].startswith("comparison: statistical: the numeric path differs from the reference")
    torch_only = {"versions": {**env["versions"], "torch": ["2.12.0+cpu"]}}
    assert (
        choose_comparison(env, torch_only, None)
        .lines()[0]
        .startswith("comparison: statistical: environment differs from the reference")
    )
    # A reference made before the numeric path was recorded cannot promise bytes.
    old = {"versions": {k: v for k, v in env["versions"].items() if k not in ("cpu_capability", "numerics")}}
    assert choose_comparison(old, env, None).differences == ["cpu_capability: ? -> AVX2", f"numerics: ? -> {PIN}"]


# The command line end to end, on a run store written by hand: verify's reproduction finds every
# run complete, so it trains nothing and only rebuilds and compares the tables.

PROFILE = """
seeds: [0, 1]
ablation_seeds: [0]
methods: [react, sft-mimic]
ablations: []
tasks:
  graph-nav: {n_nodes: 8, horizon: 6, n_train: 40, n_dev: 4, n_test: 12}
"""
SUCCESS = {("react", 0): 0.5, ("react", 1): 0.75, ("sft-mimic", 0): 0.25, ("sft-mimic", 1): 0.25}
# By hand: react mean 0.625, std sqrt(((0.5-0.625)^2 + (0.75-0.625)^2) / 1) = 0.17677669529663687;
# sft-mimic mean 0.25, std 0; its ece_all 0.2 and 0.4 give 0.30000000000000004 and 0.1414213562373095.
COLUMNS = "task,method,seeds,episodes,success,success_std,ece_all,ece_all_std,success_per_seed,random_policy"
REFERENCE_CSV = f"""{COLUMNS},training_tokens
graph-nav,react,2,24,0.625,0.1767766952966369,,,0.50 0.75,0.25,4000.0
graph-nav,sft-mimic,2,24,0.25,0.0,0.30000000000000004,0.1414213562373095,0.25 0.25,0.25,8000.0
"""


def fabricate_runs(runs: Path, profile: Path) -> None:
    """Writes the runs of SUCCESS, each current under `profile` (its run key), so verify's reproduce reuses them."""
    mini = load_profile(str(profile))
    for (method, seed), success in SUCCESS.items():
        metrics = {
            "n_episodes": 12,
            "success": success,
            "ece_all": None if method == "react" else (0.2 if seed == 0 else 0.4),
            "random_policy_success": 0.25,
            "cost": {"training_tokens": 4000 if method == "react" else 8000},
        }
        manifest = {"versions": VERSIONS, "git_commit": "abc", "run_key": run_key(method, "graph-nav", mini, seed)}
        records = [{"success": i < 12 * success, "turns": []} for i in range(12)]  # as many as n_episodes says
        write_run(run_dir(runs, "mini", "graph-nav", method, seed), manifest, records, metrics)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("harness.running.reproduce.TABLE_METRICS", ("success", "ece_all"))
    threads = torch.get_num_threads()
    (tmp_path / "mini.yaml").write_text(PROFILE)
    fabricate_runs(tmp_path / "work" / "runs", tmp_path / "mini.yaml")
    reference = tmp_path / "reference" / "tables"
    reference.mkdir(parents=True)
    (reference / "summary.csv").write_text(REFERENCE_CSV)
    env = {"profile": "mini", "versions": {k: [v] for k, v in VERSIONS.items()}, "git_commits": ["abc"]}
    (reference / "environment.json").write_text(dumps(env))
    yield tmp_path
    torch.set_num_threads(threads)  # verify runs at the reference's thread count


def verify(monkeypatch, capsys, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    args = ["--profile", str(tmp_path / "mini.yaml"), "--reference", str(tmp_path / "reference")]
    monkeypatch.setattr(sys, "argv", ["harness", "verify", *args, "--workdir", str(tmp_path / "work"), *extra])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_verify_passes_against_hand_computed_reference(monkeypatch, capsys, setup: Path) -> None:
    code, out, err = verify(monkeypatch, capsys, setup)
    assert code == 0, err
    assert "same environment as the reference" in out and "verified: all 2 rows" in out
    written = pd.read_csv(setup / "work" / "results" / "tables" / "summary.csv")
    assert written["success"].tolist() == [0.625, 0.25]
    assert math.isclose(written["success_std"][0], 0.17677669529663687)


def test_verify_fails_on_a_changed_number_with_one_line(monkeypatch, capsys, setup: Path) -> None:
    csv = setup / "reference" / "tables" / "summary.csv"
    csv.write_text(REFERENCE_CSV.replace("0.25,0.0,0.30000000000000004", "0.25,0.0,0.31"))
    code, out, err = verify(monkeypatch, capsys, setup)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "verify failed: 1 of 2 rows" in err
    assert "FAIL ece_all 0.31 -> 0.3" in out
    # In another environment the same difference is within 0.1.
    env = json.loads((csv.parent / "environment.json").read_text())
    env["versions"]["torch"] = ["2.12.0+cpu"]
    (csv.parent / "environment.json").write_text(dumps(env))
    code, out, _ = verify(monkeypatch, capsys, setup)
    assert code == 0 and "torch: 2.12.0+cpu -> 2.13.0+cpu" in out
    assert "comparison: statistical: environment differs from the reference" in out


def test_verify_on_another_numeric_path_says_so_and_checks_the_seed_spread(monkeypatch, capsys, setup: Path) -> None:
    csv = setup / "reference" / "tables" / "summary.csv"
    env = json.loads((csv.parent / "environment.json").read_text())
    env["versions"].update({"cpu_capability": ["AVX512"], "numerics": ["native"]})
    (csv.parent / "environment.json").write_text(dumps(env))
    # sft-mimic's ece_all (fresh 0.3, reference std 0.1414 over 2 seeds) may differ by 3 * 0.1414 * sqrt(2 / 2)
    # = 0.424 from the reference's: a reference of 0.70 passes, 0.73 does not.
    csv.write_text(REFERENCE_CSV.replace("0.25,0.0,0.30000000000000004", "0.25,0.0,0.70"))
    code, out, err = verify(monkeypatch, capsys, setup)
    assert code == 0, err
    assert "comparison: statistical: the numeric path differs from the reference" in out
    assert f"cpu_capability: AVX512 -> AVX2; numerics: native -> {PIN}" in out
    csv.write_text(REFERENCE_CSV.replace("0.25,0.0,0.30000000000000004", "0.25,0.0,0.73"))
    code, out, err = verify(monkeypatch, capsys, setup)
    assert code == 2 and "verify failed: 1 of 2 rows" in err
    assert "FAIL ece_all 0.73 -> 0.3 (allowed 0.424)" in out


def test_verify_without_reference_exits_2_before_any_work(monkeypatch, capsys, setup: Path) -> None:
    (setup / "reference" / "tables" / "summary.csv").unlink()
    code, out, err = verify(monkeypatch, capsys, setup)
    assert code == 2 and "no reference table at" in err and len(err.strip().splitlines()) == 1
    assert "reproducing" not in out
    monkeypatch.setattr(sys, "argv", ["harness", "verify", "--profile", str(setup / "mini.yaml")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "names no committed reference" in capsys.readouterr().err
