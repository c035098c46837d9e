"""Profiles load as data, reject malformed input with a HarnessError, and hash stably."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml

from harness.core.config import (
    PROFILE_DIR,
    SEED_MAX,
    DataSpec,
    EvalSettings,
    ModelSpec,
    check_folder_name,
    load_profile,
    render_profile,
    resolve,
    set_dotted,
)
from harness.core.errors import HarnessError, did_you_mean
from harness.core.fields import Bounds, as_dict, build_dataclass, config_hash
from harness.core.registry import METHODS, method_factory, task_class
from harness.evaluation.evaluate import run_key
from harness.training.methods import sft_settings
from harness.training.stages import GrpoSettings, SftSettings, settings_for
from harness.training.train import stage_chain

WORLDS = {"graph-nav", "kb-search", "countdown"}


@pytest.mark.parametrize(
    ("name", "tasks"),
    [
        ("smoke", WORLDS),
        ("default", WORLDS),
        ("paper", WORLDS | {"gsm8k", "hotpotqa"}),
        ("pretrained-smoke", {"gsm8k", "hotpotqa"}),
    ],
)
def test_shipped_profiles_load(name: str, tasks: set[str]) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert set(profile.tasks) == tasks
    assert isinstance(profile.model, ModelSpec) and isinstance(profile.data, DataSpec)


def test_default_profile_has_three_seeds() -> None:
    assert load_profile("default").seeds == [0, 1, 2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks: [1, 2", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("tasks: {graph-nav: {}}\nbogus: 1\n", "unknown key 'bogus'"),
        ("tasks: {graph-nav: {}}\ndata: {look_k: two}\n", "data.look_k must be int"),
        ("tasks: {graph-nav: {}}\nseeds: 3\n", "seeds must be a list"),
        ("seeds: [0]\n", "names no tasks"),
        ("tasks: {graph-nav: {}}\nmodel: {lora: 1}\n", "model.lora must be bool"),
    ],
)
def test_malformed_profiles(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(HarnessError, match=message):
        load_profile(str(path))


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(HarnessError, match="unknown profile 'fast'.*default.*paper.*smoke"):
        load_profile("fast")


def test_overrides_apply() -> None:
    profile = load_profile("smoke", {"data.look_k": 3, "seeds": [4]})
    assert profile.data.look_k == 3 and profile.seeds == [4]


def test_config_hash_changes_with_any_field() -> None:
    base = config_hash(DataSpec(), "graph-nav", 0)
    assert base == config_hash(DataSpec(), "graph-nav", 0)
    assert base != config_hash(DataSpec(look_k=3), "graph-nav", 0)
    assert base != config_hash(DataSpec(), "graph-nav", 1)
    assert len(base) == 16


# Ranges, stage names and suggestions (issue 28).

BOUNDED = (ModelSpec, DataSpec, EvalSettings, SftSettings, GrpoSettings)


@pytest.mark.parametrize(
    ("bounds", "value", "problem"),
    [
        (Bounds(ge=1), 0, "must be >= 1"),
        (Bounds(ge=1), 1, None),
        (Bounds(gt=0.0), 0.0, "must be > 0"),
        (Bounds(gt=0.0), 1e-9, None),
        (Bounds(ge=0.0, lt=1.0), 1.0, "must be in [0, 1)"),
        (Bounds(ge=0.0, lt=1.0), 0.0, None),
        (Bounds(ge=0.0, lt=0.5), -0.1, "must be in [0, 0.5)"),
        (Bounds(le=5), 6, "must be <= 5"),
        (Bounds(ge=0, le=SEED_MAX), 2**32, "must be in [0, 4294967295]"),
    ],
)
def test_bounds_name_the_interval_a_value_misses(bounds: Bounds, value: float, problem: str | None) -> None:
    assert bounds.problem(value) == problem


@pytest.mark.parametrize("cls", BOUNDED, ids=lambda c: c.__name__)
def test_every_number_has_a_range_and_its_default_lies_in_it(cls: type) -> None:
    hints = typing.get_type_hints(cls)
    numbers = [f for f in dataclasses.fields(cls) if {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}]
    assert numbers and all("bounds" in f.metadata for f in numbers), [
        f.name for f in numbers if "bounds" not in f.metadata
    ]
    assert build_dataclass(cls, as_dict(cls()), "x") == cls()


def _just_outside(bounds: Bounds, kind: type) -> float:
    step = 1 if kind is int else 0.01
    if bounds.ge is not None:
        return bounds.ge - step
    if bounds.gt is not None:
        return bounds.gt
    return bounds.le + step if bounds.le is not None else bounds.lt


@pytest.mark.parametrize("cls", BOUNDED, ids=lambda c: c.__name__)
def test_a_value_just_outside_each_range_is_refused_naming_the_field(cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "bounds" in f.metadata:
            kind = int if hints[f.name] is int else float
            bad = _just_outside(f.metadata["bounds"], kind)
            with pytest.raises(HarnessError, match=rf"^x\.{f.name} must be .*, got {re.escape(repr(kind(bad)))}$"):
                build_dataclass(cls, {f.name: kind(bad)}, "x")


def test_the_stage_settings_of_the_issue_are_refused() -> None:
    with pytest.raises(HarnessError, match=r"^stages\.fc-rl\.steps must be >= 1, got -2$"):
        settings_for("grpo", {"steps": -2}, "stages.fc-rl")
    with pytest.raises(HarnessError, match=r"^stages\.sft\.tokens must be >= 1, got -4000$"):
        settings_for("sft", {"tokens": -4000}, "stages.sft")
    with pytest.raises(HarnessError, match=r"^s\.p_smoothing must be in \[0, 0\.5\), got 0\.5$"):
        settings_for("sft", {"p_smoothing": 0.5}, "s")
    with pytest.raises(HarnessError, match=r"^s\.scale_rewards must be one of group, batch, none, got 'std'$"):
        settings_for("grpo", {"scale_rewards": "std"}, "s")


def test_an_optional_number_is_checked_as_a_number_or_none() -> None:
    with pytest.raises(HarnessError, match=r"^s\.p_temperature must be float, got 'hot'$"):
        settings_for("grpo", {"p_temperature": "hot"}, "s")
    assert settings_for("grpo", {"p_temperature": None}, "s").p_temperature is None
    assert settings_for("grpo", {"p_temperature": 2}, "s").p_temperature == 2.0


def test_heads_must_divide_the_width_of_the_tiny_model_only() -> None:
    with pytest.raises(HarnessError, match=r"^m: n_heads \(3\) must divide hidden_size \(32\)$"):
        build_dataclass(ModelSpec, {"hidden_size": 32, "n_heads": 3}, "m")
    assert build_dataclass(ModelSpec, {"hidden_size": 32, "n_heads": 3, "path": "some/model"}, "m").n_heads == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"stages.fcrl": {"lambda_cal": 9.0}},
            "unknown stage 'fcrl' (did you mean 'fc-rl'? the registered methods read",
        ),
        ({"stages.wm-amtt": {"tokens": 9}}, "unknown stage 'wm-amtt' (did you mean 'wm-amt'?"),
        ({"stages.fc-rl": {"steps": -2}}, "profile default.yaml: stages.fc-rl.steps must be >= 1, got -2"),
        ({"stages.sft": {"tokens": -4000}}, "stages.sft.tokens must be >= 1, got -4000"),
        ({"stages.rl": {"stepz": 3}}, "unknown key 'stepz' in stages.rl (did you mean 'steps'? known: steps,"),
        ({"eval.batch_size": 0}, "profile default.yaml: eval.batch_size must be >= 1, got 0"),
        ({"eval.split": "train"}, "eval.split must be one of test, dev, got 'train'"),
        ({"eval.batchsize": 4}, "unknown key 'batchsize' in eval (did you mean 'batch_size'?"),
        ({"data.look_k": 0}, "data.look_k must be >= 1, got 0"),
        ({"data.lookk": 2}, "(did you mean 'look_k'?"),
        ({"model.hidden_size": -32}, "model.hidden_size must be >= 1, got -32"),
        ({"model.n_heads": 3}, "n_heads (3) must divide hidden_size (128)"),
        ({"seeds": [2**32]}, "seeds must be in [0, 4294967295], got 4294967296"),
        ({"ablation_seeds": [-1]}, "ablation_seeds must be in [0, 4294967295], got -1"),
        ({"name": "../../x"}, "profile default.yaml: name '../../x' must be a plain folder name"),
        ({"name": "/tmp/x"}, "name '/tmp/x' must be a plain folder name"),
        (
            {"tasks": {"countdown": {"n_trian": 4}}},
            "unknown key 'n_trian' in tasks.countdown (did you mean 'n_train'?",
        ),
        ({"tasks": {"countdwn": {}}}, "unknown task 'countdwn' (did you mean 'countdown'?"),
    ],
)
def test_bad_values_are_refused_at_load(overrides: dict, message: str) -> None:
    with pytest.raises(HarnessError) as caught:
        load_profile("default", overrides)
    assert message in str(caught.value)


def test_values_at_the_ends_of_their_ranges_load() -> None:
    profile = load_profile("smoke", {"seeds": [0, SEED_MAX], "stages.rl": {"num_generations": 2}, "eval.candidates": 0})
    assert profile.seeds == [0, SEED_MAX] and profile.stages["rl"] == GrpoSettings(num_generations=2)


def test_stage_names_are_what_the_registered_methods_read(monkeypatch: pytest.MonkeyPatch) -> None:
    stages = load_profile("smoke").stages
    assert {name: type(settings) for name, settings in stages.items()} == {
        "sft": SftSettings, "wm-amt": SftSettings, "fe-sft": SftSettings, "rl": GrpoSettings, "fc-rl": GrpoSettings
    }  # fmt: skip
    with pytest.raises(HarnessError, match="unknown stage 'probe-sft'"):
        load_profile("smoke", {"stages.probe-sft": {"tokens": 7}})

    def reads_probe_sft(profile):
        return sft_settings(profile, "probe-sft")

    monkeypatch.setitem(METHODS, "probe-method", reads_probe_sft)  # a plugin's method with a stage of its own
    assert load_profile("smoke", {"stages.probe-sft": {"tokens": 7}}).stages["probe-sft"] == SftSettings(tokens=7)
    with pytest.raises(HarnessError, match="stages.probe-sft.tokens must be >= 1, got 0"):
        load_profile("smoke", {"stages.probe-sft": {"tokens": 0}})


@pytest.mark.parametrize(
    ("name", "known", "hint"),
    [
        ("fcrl", ["sft", "wm-amt", "fe-sft", "rl", "fc-rl"], "did you mean 'fc-rl'? "),
        ("smok", ["default", "paper", "smoke"], "did you mean 'smoke'? "),
        ("maze", ["graph-nav", "countdown", "kb-search"], ""),
    ],
)
def test_did_you_mean_names_the_closest_known_name(name: str, known: list[str], hint: str) -> None:
    assert did_you_mean(name, known) == hint


def test_unknown_names_suggest_the_closest(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"unknown profile 'smok' \(did you mean 'smoke'\? known:"):
        load_profile("smok")
    with pytest.raises(HarnessError, match=r"unknown task 'grph-nav' \(did you mean 'graph-nav'\? known:"):
        task_class("grph-nav")
    with pytest.raises(HarnessError, match=r"unknown method 'foresigt' \(did you mean 'foresight'\? known:"):
        method_factory("foresigt")
    with pytest.raises(HarnessError, match=rf"^profile {re.escape(str(tmp_path))} is a directory, not a profile"):
        load_profile(str(tmp_path))


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("smoke", True),
        ("default~rl-steps", True),
        ("../../x", False),
        ("/tmp/x", False),
        ("", False),
        (".hidden", False),
        ("a\\b", False),
    ],
)
def test_folder_names_are_plain(name: str, plain: bool) -> None:
    if plain:
        check_folder_name(name, "profile name")
    else:
        with pytest.raises(HarnessError, match=r"^profile name .* must be a plain folder name$"):
            check_folder_name(name, "profile name")


# Typed at load, one validator, one override function, `profile show` (issue 29).

SHIPPED_TASKS = ("graph-nav", "kb-search", "countdown", "gsm8k", "hotpotqa")


def test_a_profile_resolves_at_load_into_frozen_typed_values() -> None:
    profile = load_profile("default")
    raw = yaml.safe_load((PROFILE_DIR / "default.yaml").read_text())
    assert profile.eval == EvalSettings(**raw["eval"])
    assert profile.stages["fc-rl"] == GrpoSettings(**raw["stages"]["fc-rl"])  # every field it leaves out at its default
    assert profile.tasks == {name: task_class(name).Config(**knobs) for name, knobs in raw["tasks"].items()}
    assert set(profile.stages) == {"sft", "wm-amt", "fe-sft", "rl", "fc-rl"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.stages["fc-rl"].steps = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.tasks["countdown"].n_train = 5  # type: ignore[misc]
    assert resolve(profile, "again") == profile  # resolving a resolved profile changes nothing


def test_methods_read_the_resolved_settings_with_their_overrides_replaced() -> None:
    profile = load_profile("smoke")
    fc_rl = method_factory("foresight-success-only")(profile).stages[-1].settings
    assert fc_rl == dataclasses.replace(profile.stages["fc-rl"], lambda_cal=0.0, lambda_fid=0.0)
    assert method_factory("foresight")(profile).stages[-1].settings == profile.stages["fc-rl"]


def test_an_unset_setting_hashes_as_its_default_set_explicitly() -> None:
    """Typed values carry every field: a setting left out of the YAML and one written at its default
    give the same stage chain and run key (the hashes cover the resolved values, not the YAML's keys),
    while another value gives another chain."""
    smoke = load_profile("smoke")
    assert "lambda_cal" not in (PROFILE_DIR / "smoke.yaml").read_text()  # left at its default there
    explicit = load_profile("smoke", {"stages.fc-rl.lambda_cal": 0.5, "eval.candidates": smoke.eval.candidates})
    other = load_profile("smoke", {"stages.fc-rl.lambda_cal": 0.25})
    for method, task in (("react", "countdown"), ("foresight", "graph-nav")):
        assert stage_chain(method, task, explicit, 0) == stage_chain(method, task, smoke, 0)
        assert run_key(method, task, explicit, 0) == run_key(method, task, smoke, 0)
    assert stage_chain("foresight", "graph-nav", other, 0)[:2] == stage_chain("foresight", "graph-nav", smoke, 0)[:2]
    assert stage_chain("foresight", "graph-nav", other, 0)[2] != stage_chain("foresight", "graph-nav", smoke, 0)[2]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("stages.fc-rll.steps", "unknown stage 'fc-rll' (did you mean 'fc-rl'?"),
        ("stages.fc-rl.stpes", "unknown key 'stpes' in stages.fc-rl (did you mean 'steps'?"),
        ("tasks.countdown.n_trian", "unknown key 'n_trian' in tasks.countdown (did you mean 'n_train'?"),
        ("eval.candidats", "unknown key 'candidats' in eval (did you mean 'candidates'?"),
        ("modle.path", "unknown key 'modle' (did you mean 'model'?"),
        ("model.hidden_size.width", "cannot set 'model.hidden_size.width': model.hidden_size is 32, not a section"),
        ("stages..steps", "profile key 'stages..steps' has an empty part"),
    ],
)
def test_a_misspelt_override_at_any_depth_is_refused_naming_the_closest_key(key: str, message: str) -> None:
    with pytest.raises(HarnessError) as caught:
        load_profile("smoke", {key: 3})
    assert message in str(caught.value)


def test_overrides_reach_any_depth_and_joined_keys_move_together() -> None:
    profile = load_profile("smoke", {"stages.fc-rl.steps+stages.rl.steps": 7, "tasks.countdown.n_train": 9})
    assert profile.stages["fc-rl"].steps == profile.stages["rl"].steps == 7
    assert profile.stages["fc-rl"].lr == load_profile("smoke").stages["fc-rl"].lr  # the rest stays the profile's
    assert profile.tasks["countdown"].n_train == 9
    values: dict = {"stages": {"sft": {"tokens": 1}}}
    set_dotted(values, "stages.sft.lr+eval.candidates", 0.5)
    assert values == {"stages": {"sft": {"tokens": 1, "lr": 0.5}}, "eval": {"candidates": 0.5}}


def test_a_knob_is_a_doc_field_checked_by_the_one_validator() -> None:
    (n_numbers,) = [f for f in dataclasses.fields(task_class("countdown").Config) if f.name == "n_numbers"]
    assert n_numbers.metadata["bounds"] == Bounds(ge=2, le=6)
    with pytest.raises(HarnessError, match=r"^tasks\.countdown\.n_numbers must be in \[2, 6\], got 7$"):
        task_class("countdown").Config.from_knobs("countdown", {"n_numbers": 7})


@pytest.mark.parametrize("name", SHIPPED_TASKS)
def test_every_knob_just_outside_its_range_is_refused(name: str) -> None:
    test_a_value_just_outside_each_range_is_refused_naming_the_field(task_class(name).Config)


def test_profile_show_prints_every_field_of_the_default_profile() -> None:
    profile = load_profile("default")
    text = render_profile(profile)
    printed = {line.split()[0] for line in text.splitlines() if line.startswith("  ")}
    nested = {"model", "data", "stages", "eval", "tasks", "sweeps"}
    expected = {f.name for f in dataclasses.fields(profile) if f.name not in nested}
    expected |= {f"model.{f.name}" for f in dataclasses.fields(ModelSpec)}
    expected |= {f"data.{f.name}" for f in dataclasses.fields(DataSpec)}
    expected |= {f"eval.{f.name}" for f in dataclasses.fields(EvalSettings)}
    for stage, kind in (("sft", SftSettings), ("wm-amt", SftSettings), ("fe-sft", SftSettings),
                        ("rl", GrpoSettings), ("fc-rl", GrpoSettings)):  # fmt: skip
        expected |= {f"stages.{stage}.{f.name}" for f in dataclasses.fields(kind)}
    for task in ("graph-nav", "kb-search", "countdown"):
        expected |= {f"tasks.{task}.{f.name}" for f in dataclasses.fields(task_class(task).Config)}
    expected |= {f"sweeps.{name}" for name in profile.sweeps} | {"sweeps.rl-steps"}
    assert printed == expected
    assert "[stages.fc-rl] GrpoSettings" in text and "[tasks.countdown] CountdownConfig" in text
    assert "  eval.split " in text and "one of test, dev" in text
    assert re.search(r"^  stages\.fc-rl\.steps +20 +optimizer steps \(>= 1\)$", text, re.M)
