"""Profiles (smoke, default, paper) as data: YAML files of overrides onto config dataclasses.

A profile names the task knobs, the model, the data recipes, the stage budgets and the
evaluation settings. Code never branches on a profile's name; it reads the resolved config.
`config_hash` gives the stable hash that stage caching and run manifests use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import HarnessError

PROFILE_DIR = Path(__file__).parent.parent / "profiles"


def doc(default: Any, help: str) -> Any:
    """Returns a dataclass field carrying its help text (the field's docstring)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ModelSpec:
    """Which model a run starts from: the tiny default built from a config, or a local checkpoint."""

    hidden_size: int = doc(128, "tiny model: width of the residual stream")
    n_layers: int = doc(4, "tiny model: transformer blocks")
    n_heads: int = doc(4, "tiny model: attention heads")
    intermediate_size: int = doc(512, "tiny model: width of the MLP")
    max_positions: int = doc(1024, "tiny model: longest sequence in tokens")
    path: str = doc("", "a local HF causal LM (directory or .gguf) instead of the tiny model; empty = tiny")
    lora: bool = doc(False, "wrap a --model checkpoint with PEFT LoRA adapters in every stage")
    lora_rank: int = doc(16, "LoRA rank")


@dataclass(frozen=True)
class DataSpec:
    """The data recipes (docs/design.md#data-recipes)."""

    look_k: int = doc(2, "actions per plan in a foresight block (and observations per rollout)")
    world_episodes: int = doc(1000, "exploration episodes behind D_world (random, epsilon-greedy, noisy-expert)")
    outcome_every: int = doc(2, "write a 'state, plan -> outcome' line at every n-th exploration state")
    expert_share: float = doc(0.2, "share of D_world tokens that are D_expert episodes (keeps the policy)")
    reference_success: float = doc(
        0.5,
        "success rate, from the train instances' start states, of the reference policy whose value D_look's p "
        "states: an epsilon-noisy expert, epsilon solved per task and seed (about the trained agents' dev success)",
    )


@dataclass(frozen=True)
class Profile:
    """A resolved profile: everything a run depends on besides the seed and the code."""

    name: str = doc("custom", "profile name, for display only")
    description: str = doc("", "what the profile is for")
    seeds: list[int] = doc([0], "seeds of the main comparison")
    ablation_seeds: list[int] = doc([0], "seeds of the ablations")
    methods: list[str] = doc(
        ["react", "sft-mimic", "vanilla-rl", "foresight"], "methods of the main comparison (reproduce)"
    )
    ablations: list[str] = doc(
        ["foresight-no-rl", "foresight-no-amt", "foresight-success-only", "foresight-no-order"],
        "ablations, run on ablation_seeds (reproduce)",
    )
    method: str = doc("foresight", "the method whose claims the report tests")
    baselines: list[str] = doc(["react", "sft-mimic", "vanilla-rl"], "what the report compares the method against")
    tasks: dict[str, dict[str, Any]] = doc({}, "task name -> knob overrides; these tasks make up the suite")
    model: ModelSpec = doc(ModelSpec(), "the starting model")
    data: DataSpec = doc(DataSpec(), "data recipes")
    stages: dict[str, dict[str, Any]] = doc({}, "stage name -> trainer settings (harness/training/stages.py)")
    match_budget: bool = doc(True, "give sft-mimic the token budget of wm-amt + fe-sft")
    eval: dict[str, Any] = doc({}, "evaluation settings")
    sweeps: dict[str, dict[str, Any]] = doc(
        {},
        "sweep name -> {vary: {dotted profile key: [values]}, tasks: [...], methods: [...], seeds: [...]} "
        "(`harness sweep`, harness/running/sweep.py)",
    )
    reference: str = doc(
        "",
        "results folder (relative to the repository root) holding this profile's committed reference tables, "
        "tables/summary.csv and tables/environment.json, that `harness verify` checks a fresh reproduction "
        "against; empty = no committed reference",
    )

    def task_knobs(self, task: str) -> dict[str, Any]:
        """Returns the knob overrides of one of the profile's tasks; HarnessError for a task it lacks."""
        if task not in self.tasks:
            raise HarnessError(f"task {task!r} is not in profile {self.name} (its tasks: {', '.join(self.tasks)})")
        return self.tasks[task]


def build_dataclass(cls: type, values: Any, where: str) -> Any:
    """Returns `cls` built from a mapping, or raises HarnessError naming the bad key."""
    if not isinstance(values, dict):
        raise HarnessError(f"{where} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise HarnessError(f"unknown key {key!r} in {where} (known: {', '.join(fields)})")
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise HarnessError(f"{where} must be a list, got {value!r}")
        (inner,) = typing.get_args(hint)[:1]
        return [_coerce(inner, v, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise HarnessError(f"{where} must be a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    wrong_bool = isinstance(value, bool) != (origin is bool)
    if origin in (int, float, str, bool) and (not isinstance(value, origin) or wrong_bool):
        raise HarnessError(f"{where} must be {origin.__name__}, got {value!r}")
    if origin is Any or isinstance(origin, types.UnionType):
        return value
    return value


def load_profile(name_or_path: str, overrides: dict[str, Any] | None = None) -> Profile:
    """Returns the profile named `smoke`, `default` or `paper`, or read from a YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
            raise HarnessError(f"unknown profile {name_or_path!r} (known: {known}, or a path to a .yaml file)")
    if not path.exists():
        raise HarnessError(f"profile file {path} does not exist")
    if not path.is_file():
        raise HarnessError(f"profile {path} is not a file")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise HarnessError(f"profile {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HarnessError(f"profile {path} is not valid YAML: {first}") from None
    values = dict(values or {}) if isinstance(values, dict) else values
    if isinstance(values, dict):
        values.setdefault("name", path.stem)
        for key, value in (overrides or {}).items():
            section, _, sub = key.partition(".")
            if sub:
                values.setdefault(section, {})[sub] = value
            else:
                values[key] = value
    profile = build_dataclass(Profile, values, f"profile {path.name}")
    check_profile(profile, path.name)
    return profile


def check_profile(profile: Profile, where: str) -> None:
    """Raises HarnessError for a profile no run can use: no tasks or seeds, a negative seed, an unknown task or knob."""
    from harness.core.registry import task_class

    if not profile.tasks:
        raise HarnessError(f"profile {where} names no tasks")
    if not profile.seeds:
        raise HarnessError(f"profile {where} lists no seeds")
    for seed in profile.seeds + profile.ablation_seeds:
        if seed < 0:
            raise HarnessError(f"profile {where} has a negative seed {seed} (seeds are integers >= 0)")
    for section, entries in (("tasks", profile.tasks), ("stages", profile.stages)):
        for name, value in entries.items():
            if value is not None and not isinstance(value, dict):
                raise HarnessError(f"profile {where}: {section}.{name} must be a mapping, got {value!r}")
    for name, knobs in profile.tasks.items():
        try:
            task_class(name).Config.from_knobs(name, knobs)
        except HarnessError as exc:
            raise HarnessError(f"profile {where}: {exc}") from None


def canonical_json(obj: Any) -> str:
    """Returns `obj` (dataclasses, dicts, lists, scalars) as sorted, compact JSON."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"))


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def config_hash(*parts: Any) -> str:
    """Returns a 16-hex-digit sha256 of the canonical JSON of `parts`."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]


def as_dict(obj: Any) -> Any:
    """Returns a dataclass tree as plain dicts and lists (for manifests)."""
    return _plain(obj)
