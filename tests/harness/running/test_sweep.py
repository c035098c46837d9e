"""`harness sweep`'s grid: parsing --vary, the points as profile variants, chains across points, the report section."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.registry import method_factory
from harness.reporting.sweeps import budget_section, budget_section_for, figure_name, plot_claims
from harness.running.sweep import parse_vary, points, sweep_spec, sweep_work
from harness.running.sweep_results import move_rows


@pytest.fixture(scope="module")
def smoke():
    return load_profile("smoke")


def test_parse_vary_reads_each_value_as_yaml() -> None:
    axes = parse_vary(["stages.fc-rl.steps=20,80,320", "stages.fc-rl.beta=0.1,0", "model.lora=true,false"])
    assert axes == {"stages.fc-rl.steps": [20, 80, 320], "stages.fc-rl.beta": [0.1, 0], "model.lora": [True, False]}
    assert isinstance(axes["stages.fc-rl.beta"][1], int)  # coerced to float by the profile, not here
    for bad in ("stages.fc-rl.steps", "=1,2", "stages.fc-rl.steps="):
        with pytest.raises(HarnessError, match="is not KEY=V1,V2"):
            parse_vary([bad])


def test_points_are_profile_variants_named_for_where_their_runs_go(smoke) -> None:
    spec = sweep_spec(smoke, "rl", parse_vary(["stages.fc-rl.steps=1,3", "stages.fc-rl.beta=0.1,0"]),
                      ["graph-nav"], ["foresight", "vanilla-rl"], [0, 2])  # fmt: skip
    found = points(smoke, spec)
    assert [p.values for p in found] == [
        {"stages.fc-rl.steps": 1, "stages.fc-rl.beta": 0.1},
        {"stages.fc-rl.steps": 1, "stages.fc-rl.beta": 0},
        {"stages.fc-rl.steps": 3, "stages.fc-rl.beta": 0.1},
        {"stages.fc-rl.steps": 3, "stages.fc-rl.beta": 0},
    ]
    assert found[1].profile.name == "smoke~rl/stages.fc-rl.steps=1,stages.fc-rl.beta=0"
    for point in found:
        prof = point.profile
        assert list(prof.tasks) == ["graph-nav"] and prof.methods == ["foresight", "vanilla-rl"]
        assert prof.seeds == prof.ablation_seeds == [0, 2] and prof.ablations == []
        fc_rl = method_factory("foresight")(prof).stages[-1].settings
        assert (fc_rl.steps, fc_rl.beta) == (point.values["stages.fc-rl.steps"], point.values["stages.fc-rl.beta"])
        assert fc_rl.lr == smoke.stages["fc-rl"].lr  # the rest of the stage is the profile's
        rl = method_factory("vanilla-rl")(prof).stages[-1].settings
        assert rl.steps == smoke.stages["rl"].steps  # vanilla-rl reads stages.rl, which is not varied


def test_a_profile_sweep_is_read_and_the_command_line_adds_an_axis(smoke) -> None:
    import dataclasses

    prof = dataclasses.replace(
        smoke, sweeps={"ladder": {"vary": {"stages.fc-rl.steps": [1, 2]}, "methods": ["foresight"], "seeds": [1]}}
    )
    spec = sweep_spec(prof, "ladder")
    assert spec.vary == {"stages.fc-rl.steps": [1, 2]} and spec.methods == ["foresight"] and spec.seeds == [1]
    assert spec.tasks == list(smoke.tasks)
    wider = sweep_spec(prof, "ladder", {"model.hidden_size": [32, 48]})
    assert list(wider.vary) == ["stages.fc-rl.steps", "model.hidden_size"]
    assert points(prof, wider)[3].profile.model.hidden_size == 48


def test_keys_joined_by_plus_are_one_axis(smoke) -> None:
    spec = sweep_spec(smoke, "rl", {"stages.fc-rl.steps+stages.rl.steps": [3, 5]}, ["graph-nav"],
                      ["foresight", "vanilla-rl"], [0])  # fmt: skip
    found = points(smoke, spec)
    assert [p.profile.name for p in found] == [f"smoke~rl/stages.fc-rl.steps+stages.rl.steps={s}" for s in (3, 5)]
    for point, steps in zip(found, (3, 5)):
        assert method_factory("foresight")(point.profile).stages[-1].settings.steps == steps
        assert method_factory("vanilla-rl")(point.profile).stages[-1].settings.steps == steps
    with pytest.raises(HarnessError, match="cannot vary 'seeds'"):
        points(smoke, sweep_spec(smoke, "bad", {"stages.rl.steps+seeds": [1, 2]}))


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        ({}, "varies nothing"),
        ({"seeds": [0, 1]}, "cannot vary 'seeds'"),
        ({"stages.fc-rl.stepz": [1, 2]}, "unknown key 'stepz'"),
        ({"stages.nope.steps": [1, 2]}, "unknown stage 'nope'"),
        ({"tasks.hotpotqa.n_train": [8, 9]}, "task 'hotpotqa' is not in the sweep"),
        ({"model.width": [1, 2]}, "unknown key 'width'"),
        ({"tasks.graph-nav.n_nodes": [8, 2]}, "n_nodes"),
        ({"stages.fc-rl.steps": []}, "non-empty list"),
        ({"stages.fc-rl.steps": [1, 1]}, "repeats a value"),
    ],
)
def test_bad_sweeps_fail_before_any_work(smoke, vary, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        points(smoke, sweep_spec(smoke, "bad", vary))


def test_runs_sharing_a_first_stage_are_one_chain_across_points(smoke, tmp_path: Path) -> None:
    """A steps ladder on fc-rl: foresight and foresight-no-rl of every point start with the same wm-amt,
    so per (task, seed) they form one chain (wm-amt and fe-sft trained once); react is a chain of its own."""
    spec = sweep_spec(smoke, "s", {"stages.fc-rl.steps": [1, 2, 3]}, ["graph-nav", "countdown"],
                      ["react", "foresight", "foresight-no-rl"], [0])  # fmt: skip
    work = sweep_work(points(smoke, spec), tmp_path / "runs", tmp_path / "cache")
    shapes = sorted(sorted((run.profile.name.rsplit("=", 1)[-1], run.method) for run in chain) for chain in work)
    per_task = [
        [("1", "foresight"), ("1", "foresight-no-rl"), ("2", "foresight"), ("2", "foresight-no-rl"),
         ("3", "foresight"), ("3", "foresight-no-rl")],
        [("1", "react"), ("2", "react"), ("3", "react")],
    ]  # fmt: skip
    assert shapes == sorted(per_task * 2)
    assert all(len({run.task for run in chain}) == 1 for chain in work)  # a chain never mixes tasks


def _claims() -> pd.DataFrame:
    rows = []
    points = ((20, 0.02, -0.05, 0.09, "inconclusive"), (80, -0.10, -0.16, -0.04, "supports"))
    for steps, diff, low, high, verdict in points:
        rows.append({"claim": "C2", "test": "foresight vs foresight-no-rl: ece_all", "why": "", "task": "graph-nav",
                     "method": 0.5, "baseline": 0.5 - diff, "diff": diff, "ci_low": low, "ci_high": high, "seeds": 3,
                     "episodes": 300, "verdict": verdict, "stages.fc-rl.steps": steps})  # fmt: skip
    return pd.DataFrame(rows)


def test_budget_section_by_hand() -> None:
    text = budget_section(_claims(), ["stages.fc-rl.steps"], "rl-steps", "results/sweeps/rl-steps/figures")
    assert text.startswith("## How the verdicts move with budget\n")
    assert "| comparison | task | stages.fc-rl.steps=20 | stages.fc-rl.steps=80 | smallest -> largest |" in text
    row = "| foresight vs foresight-no-rl: ece_all | graph-nav | +0.020 [-0.050, +0.090] inconclusive "
    assert row + "| -0.100 [-0.160, -0.040] supports | inconclusive -> supports |" in text


def test_one_figure_per_claim_comparison(tmp_path: Path) -> None:
    claims = pd.concat([_claims(), _claims().assign(task="kb-search", diff=0.0)], ignore_index=True)
    written = plot_claims(claims, ["stages.fc-rl.steps"], tmp_path)
    name = figure_name("foresight vs foresight-no-rl: ece_all")
    assert name == "foresight_vs_foresight-no-rl_ece_all"
    assert sorted(p.name for p in written) == [f"{name}.pdf", f"{name}.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_the_section_reads_back_from_claims_csv(tmp_path: Path) -> None:
    folder = tmp_path / "rl-steps"
    folder.mkdir()
    _claims().to_csv(folder / "claims.csv", index=False)
    expected = budget_section(_claims(), ["stages.fc-rl.steps"], "rl-steps", str(folder / "figures"))
    assert budget_section_for(folder) == expected


def _write_run(path: Path, successes: list[int]) -> None:
    """Writes a complete react run (no p) whose episodes succeed as given."""
    path.mkdir(parents=True)
    records = [
        {"instance_id": f"i{i}", "success": bool(s), "turns": [{"parsed": {"action": "a"}}], "candidates": []}
        for i, s in enumerate(successes)
    ]
    (path / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "manifest.json").write_text("{}")
    (path / "metrics.json").write_text("{}")


def test_moves_pair_each_method_with_itself_at_the_first_value(smoke, tmp_path: Path) -> None:
    """Two axes: each point is compared with the first steps value at the same lr, episode by episode."""
    spec = sweep_spec(smoke, "s", {"stages.fc-rl.steps": [1, 2], "stages.fc-rl.lr": [0.1, 0.2]}, ["graph-nav"],
                      ["react"], [0, 1])  # fmt: skip
    found = points(smoke, spec)
    runs = tmp_path / "runs"
    successes = {  # (steps, lr) -> per seed
        (1, 0.1): [[0, 0, 1, 1], [0, 1, 0, 1]],
        (2, 0.1): [[1, 1, 1, 1], [0, 1, 1, 1]],  # +3 of 8 episodes over (1, 0.1): +0.375
        (1, 0.2): [[1, 1, 1, 1], [1, 1, 1, 1]],
        (2, 0.2): [[1, 1, 0, 0], [1, 1, 1, 1]],  # -2 of 8 over (1, 0.2): -0.25
    }
    for point in found:
        key = (point.values["stages.fc-rl.steps"], point.values["stages.fc-rl.lr"])
        for seed in (0, 1):
            _write_run(runs / point.profile.name / "graph-nav" / "react" / f"seed{seed}", successes[key][seed])
    moves = move_rows(spec, found, runs)
    success = moves[moves["metric"] == "success"]
    assert list(success["stages.fc-rl.steps"]) == [2, 2] and list(success["stages.fc-rl.lr"]) == [0.1, 0.2]
    assert list(success["diff"]) == pytest.approx([0.375, -0.25])
    assert list(success["first_value"]) == pytest.approx([0.5, 1.0])
    assert list(success["episodes"]) == [8, 8] and list(success["seeds"]) == [2, 2]
    assert (success["ci_low"] <= success["diff"]).all() and (success["diff"] <= success["ci_high"]).all()
    # lr 0.2: seed 0's episode differences are 0, 0, -1, -1 and seed 1's all 0. The bootstrap draws seed 0
    # twice with probability 1/4; then the -1s drawn are Binomial(8, 1/2), and 6 or more of them (a mean of
    # -6/8 or below) have probability 37/256: P(mean <= -6/8) = 37/1024 = 0.036 >= 2.5% while
    # P(mean <= -7/8) = 9/1024 = 0.009 < 2.5%. The upper bound is the largest value, 0: the CI is [-6/8, 0].
    assert (success["ci_low"].iloc[1], success["ci_high"].iloc[1]) == (-0.75, 0.0)
    assert set(moves["method"]) == {"react"} and set(moves["task"]) == {"graph-nav"}


def test_moves_skip_a_seed_missing_at_either_point(smoke, tmp_path: Path) -> None:
    spec = sweep_spec(smoke, "s", {"stages.fc-rl.steps": [1, 2]}, ["graph-nav"], ["react"], [0, 1])
    found = points(smoke, spec)
    runs = tmp_path / "runs"
    _write_run(runs / found[0].profile.name / "graph-nav" / "react" / "seed0", [0, 0])
    _write_run(runs / found[0].profile.name / "graph-nav" / "react" / "seed1", [0, 0])
    _write_run(runs / found[1].profile.name / "graph-nav" / "react" / "seed0", [1, 0])
    success = move_rows(spec, found, runs).query("metric == 'success'")
    assert list(success["diff"]) == [0.5] and list(success["episodes"]) == [2]
