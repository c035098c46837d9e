"""Profiles (smoke, default, paper) as data: YAML files of overrides onto config dataclasses.

A profile names the task knobs, the model, the data recipes, the stage budgets and the
evaluation settings. Code never branches on a profile's name; it reads the resolved config:
`load_profile` resolves the stages, eval and tasks into frozen typed values (`resolve`), and
`set_dotted` is the one way a dotted key ("stages.fc-rl.steps") reaches a profile.
`config_hash` gives the stable hash that stage caching and run manifests use.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from harness.core.errors import HarnessError, did_you_mean
from harness.core.fields import as_dict, build_dataclass, doc

PROFILE_DIR = Path(__file__).parent.parent / "profiles"
T = TypeVar("T")


SEED_MAX = 2**32 - 1
"""The largest seed: seeds go into numpy's and torch's seeding, and [0, 2**32 - 1] is what every one of them takes."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model a run starts from: the tiny default built from a config, or a local checkpoint."""

    hidden_size: int = doc(128, "tiny model: width of the residual stream (a multiple of n_heads)", ge=1)
    n_layers: int = doc(4, "tiny model: transformer blocks", ge=1)
    n_heads: int = doc(4, "tiny model: attention heads", ge=1)
    intermediate_size: int = doc(512, "tiny model: width of the MLP", ge=1)
    max_positions: int = doc(1024, "tiny model: longest sequence in tokens", ge=1)
    path: str = doc("", "a local HF causal LM (directory or .gguf) instead of the tiny model; empty = tiny")
    lora: bool = doc(False, "wrap a --model checkpoint with PEFT LoRA adapters in every stage")
    lora_rank: int = doc(16, "LoRA rank", ge=1)

    def problem(self) -> str | None:
        """Returns why the tiny model cannot be built (heads that do not divide the width), or None."""
        if not self.path and self.hidden_size % self.n_heads:
            return f"n_heads ({self.n_heads}) must divide hidden_size ({self.hidden_size})"
        return None


@dataclass(frozen=True)
class DataSpec:
    """The data recipes (docs/design.md#data-recipes)."""

    look_k: int = doc(2, "actions per plan in a foresight block (and observations per rollout)", ge=1)
    world_episodes: int = doc(1000, "exploration episodes behind D_world (random, epsilon-greedy, noisy-expert)", ge=1)
    outcome_every: int = doc(2, "write a 'state, plan -> outcome' line at every n-th exploration state", ge=1)
    expert_share: float = doc(
        0.2, "share of D_world tokens that are D_expert episodes (keeps the policy)", ge=0.0, lt=1.0
    )
    reference_success: float = doc(
        0.5,
        "success rate, from the train instances' start states, of the reference policy whose value D_look's p "
        "states: an epsilon-noisy expert, epsilon solved per task and seed (about the trained agents' dev success)",
        ge=0.0,
        le=1.0,
    )


@dataclass(frozen=True)
class EvalSettings:
    """How the test split (or, for model selection, the dev split) is played: the profile's `eval:` section."""

    batch_size: int = doc(64, "episodes advanced together in one batch", ge=1)
    max_turn_tokens: int = doc(48, "longest agent turn in tokens", ge=1)
    candidates: int = doc(8, "first moves sampled per test instance for selection gain (0 = skip)", ge=0)
    candidate_temperature: float = doc(1.0, "sampling temperature of those candidates", gt=0.0)
    split: str = doc(
        "test",
        "the split played: test, or dev to choose a configuration without looking at test",
        choices=("test", "dev"),
    )


class Stages(dict):
    """A profile's `stages`: stage name -> frozen trainer settings, read by the methods through `read`."""

    def read(self, key: str, kind: type[T]) -> T:
        """Returns the settings under `key`, a `kind` (its defaults where none are set); HarnessError for another type.

        Loading replaces this mapping by one that records `kind` for every name (config.resolve_stages).
        """
        value = self.get(key)
        if value is None:
            return kind()
        if not isinstance(value, kind):
            raise HarnessError(f"stages.{key} holds {type(value).__name__}, not the {kind.__name__} its stage reads")
        return value


@dataclass(frozen=True)
class Profile:
    """A resolved profile: everything a run depends on besides the seed and the code."""

    name: str = doc("custom", "profile name: the folder its runs go in (runs/<name>/), so a plain folder name")
    description: str = doc("", "what the profile is for")
    seeds: list[int] = doc([0], "seeds of the main comparison", ge=0, le=SEED_MAX)
    ablation_seeds: list[int] = doc([0], "seeds of the ablations", ge=0, le=SEED_MAX)
    methods: list[str] = doc(
        ["react", "sft-mimic", "vanilla-rl", "foresight"], "methods of the main comparison (reproduce)"
    )
    ablations: list[str] = doc(
        ["foresight-no-rl", "foresight-no-amt", "foresight-success-only", "foresight-no-order"],
        "ablations, run on ablation_seeds (reproduce)",
    )
    method: str = doc("foresight", "the method whose claims the report tests")
    baselines: list[str] = doc(["react", "sft-mimic", "vanilla-rl"], "what the report compares the method against")
    tasks: dict[str, Any] = doc(
        {}, "task name -> its knobs (the task's frozen Config, resolved at load); these tasks make up the suite"
    )
    model: ModelSpec = doc(ModelSpec(), "the starting model")
    data: DataSpec = doc(DataSpec(), "data recipes")
    stages: dict[str, Any] = doc(
        {},
        "stage name -> frozen trainer settings (SftSettings or GrpoSettings, by the kind of stage that reads the "
        "name; harness/training/stages.py), every name a registered method reads, resolved at load",
    )
    match_budget: bool = doc(True, "give sft-mimic the token budget of wm-amt + fe-sft")
    eval: EvalSettings = doc(EvalSettings(), "evaluation settings")
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

    def __post_init__(self) -> None:
        # Methods read their settings through Stages.read, whichever mapping the profile was given.
        if not isinstance(self.stages, Stages):
            object.__setattr__(self, "stages", Stages(self.stages))

    def task_knobs(self, task: str) -> Any:
        """Returns the knobs (the task's Config, once resolved) of one of the profile's tasks; HarnessError for a
        task it lacks."""
        if task not in self.tasks:
            raise HarnessError(f"task {task!r} is not in profile {self.name} (its tasks: {', '.join(self.tasks)})")
        return self.tasks[task]


def check_folder_name(name: str, what: str) -> None:
    """Raises HarnessError unless `name` is one plain folder name: not empty, no separator, no leading dot.

    Profile and sweep names become folders of the run store and the results; `../x` or `/x` would write outside.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise HarnessError(f"{what} {name!r} must be a plain folder name")


def _profile_path(name_or_path: str) -> Path:
    """Returns the file of a shipped profile's name or of a path; HarnessError for neither."""
    path = Path(name_or_path)
    if not path.suffix:
        shipped = PROFILE_DIR / f"{name_or_path}.yaml"
        if shipped.exists():
            return shipped
        if path.is_dir():
            raise HarnessError(f"profile {name_or_path} is a directory, not a profile (a .yaml file)")
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        hint = did_you_mean(name_or_path, known)
        raise HarnessError(
            f"unknown profile {name_or_path!r} ({hint}known: {', '.join(known)}, or a path to a .yaml file)"
        )
    if not path.exists():
        raise HarnessError(f"profile file {path} does not exist")
    if not path.is_file():
        raise HarnessError(f"profile {path} is not a file")
    return path


def load_profile(name_or_path: str, overrides: dict[str, Any] | None = None) -> Profile:
    """Returns the profile named `smoke`, `default` or `paper`, or read from a YAML path, resolved (`resolve`).

    `overrides` maps dotted keys (`set_dotted`: "model.path", "stages.fc-rl.steps", "a+b") to the values they take.
    """
    path = _profile_path(name_or_path)
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
            set_dotted(values, key, value)
    if isinstance(values, dict) and isinstance(values.get("name"), str):
        check_folder_name(values["name"], f"profile {path.name}: name")
    return build_profile(values, f"profile {path.name}")


def build_profile(values: Any, where: str) -> Profile:
    """Returns the Profile built from a mapping of its fields and resolved; HarnessError begins with `where`."""
    try:
        profile = build_dataclass(Profile, values, "")
    except HarnessError as exc:
        raise HarnessError(f"{where}: {exc}") from None
    return resolve(profile, where)


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """Sets `values[a][b][c] = value` for key "a.b.c", and each key of "a.b+c.d" (keys that move together).

    The one way a dotted key reaches a profile (load_profile's overrides, --model and --data, sweep axes). A
    missing section is made; the keys are checked when the profile is built and resolved, where an unknown
    one at any depth (section, stage, setting, task, knob) is refused naming the closest known one.
    HarnessError here for an empty part or a key that runs through a value that is not a section.
    """
    for part in key.split("+"):
        names = part.split(".")
        if not all(name.strip() for name in names):
            raise HarnessError(f"profile key {part!r} has an empty part")
        node = values
        for i, name in enumerate(names[:-1]):
            if node.get(name) is None:
                node[name] = {}
            if not isinstance(node[name], dict):
                raise HarnessError(
                    f"cannot set {part!r}: {'.'.join(names[: i + 1])} is {node[name]!r}, not a section of keys"
                )
            node = node[name]
        node[names[-1]] = value


class _StageProbe(Stages):
    """The stages methods are built against at load: the kind each name is read as, and its settings built."""

    def __init__(self, given: dict[str, Any]) -> None:
        super().__init__(given)
        self.built: dict[str, Any] = {}

    def read(self, key: str, kind: type[T]) -> T:
        if key in self.built and not isinstance(self.built[key], kind):
            raise HarnessError(f"stages.{key} is read as both {type(self.built[key]).__name__} and {kind.__name__}")
        value = self.get(key)
        self.built[key] = value if isinstance(value, kind) else build_dataclass(kind, value or {}, f"stages.{key}")
        return self.built[key]


def resolve_stages(profile: Any) -> Stages:
    """Returns the profile's stages as frozen settings: every name the methods read, by the kind that reads it.

    The engine names no method: which stage names mean something, and whether a name holds SftSettings or
    GrpoSettings, is what the methods' factories ask for; each is built to learn it. The profile's own names
    come first, in its order. HarnessError for a setting out of range or a name no method reads.
    """
    from harness.core.registry import METHODS, load_plugins  # the registry imports nothing of config

    load_plugins()
    probe = _StageProbe(profile.stages)
    view = dataclasses.replace(profile, stages=probe)
    for factory in METHODS.values():
        factory(view)
    for name in profile.stages:
        if name not in probe.built:
            hint = did_you_mean(name, probe.built)
            read = ", ".join(sorted(probe.built))
            raise HarnessError(f"unknown stage {name!r} ({hint}the registered methods read: {read})")
    order = [*profile.stages, *(name for name in probe.built if name not in profile.stages)]
    return Stages({name: probe.built[name] for name in order})


def resolve(profile: Profile, where: str) -> Profile:
    """Returns the profile with its tasks as their frozen Configs and its stages as frozen trainer settings.

    HarnessError for a profile no run can use: no tasks or seeds, an unknown task or knob, a stage name no
    registered method reads, or a setting out of range (each method is built to learn its stages' kinds).
    A resolved profile resolves to itself.
    """
    from harness.core.registry import task_class

    if not profile.tasks:
        raise HarnessError(f"{where} names no tasks")
    if not profile.seeds:
        raise HarnessError(f"{where} lists no seeds")
    for section, entries in (("tasks", profile.tasks), ("stages", profile.stages)):
        for name, value in entries.items():
            if value is not None and not isinstance(value, dict) and not dataclasses.is_dataclass(value):
                raise HarnessError(f"{where}: {section}.{name} must be a mapping, got {value!r}")
    try:
        tasks = {name: task_class(name).Config.from_knobs(name, knobs) for name, knobs in profile.tasks.items()}
        stages = resolve_stages(profile)
    except HarnessError as exc:
        raise HarnessError(f"{where}: {exc}") from None
    return dataclasses.replace(profile, tasks=tasks, stages=stages)


def profile_fields(profile: Profile) -> list[tuple[str, str, Any, str]]:
    """Returns (section, dotted key, value, help) for every resolved field of the profile, section by section.

    Sections: profile (its top-level values), model, data, stages.<name> for each stage, eval, tasks.<name>
    for each task (its knobs), sweeps (one row per sweep, or one for the empty section). The keys are the
    ones overrides and sweep axes take (`set_dotted`).
    """
    nested = {"model", "data", "stages", "eval", "tasks", "sweeps"}
    rows = [
        ("profile", f.name, getattr(profile, f.name), _help(f))
        for f in dataclasses.fields(profile)
        if f.name not in nested
    ]
    sections = [("model", profile.model), ("data", profile.data)]
    sections += [(f"stages.{name}", settings) for name, settings in profile.stages.items()]
    sections += [("eval", profile.eval)]
    sections += [(f"tasks.{name}", config) for name, config in profile.tasks.items()]
    for section, value in sections:
        rows += [(section, f"{section}.{f.name}", getattr(value, f.name), _help(f)) for f in dataclasses.fields(value)]
    sweeps_help = next(f.metadata["help"] for f in dataclasses.fields(profile) if f.name == "sweeps")
    rows += [("sweeps", f"sweeps.{name}", spec, sweeps_help) for name, spec in profile.sweeps.items()]
    return rows if profile.sweeps else [*rows, ("sweeps", "sweeps", {}, sweeps_help)]


def _help(f: dataclasses.Field) -> str:
    """Returns a field's help with the values it allows: "optimizer steps (>= 1)", "... (one of test, dev)"."""
    allowed = [str(f.metadata["bounds"])] if "bounds" in f.metadata else []
    allowed += [f"one of {', '.join(f.metadata['choices'])}"] if "choices" in f.metadata else []
    return f.metadata.get("help", "") + (f" ({'; '.join(allowed)})" if allowed else "")


def render_profile(profile: Profile) -> str:
    """Returns `harness profile show`'s text: per section a header (a stage's or task's with the class of its
    settings), then one line per field: dotted key, value as JSON, help."""
    kinds = {f"stages.{k}": v for k, v in profile.stages.items()} | {f"tasks.{k}": v for k, v in profile.tasks.items()}
    lines: list[str] = []
    for section, rows in itertools.groupby(profile_fields(profile), key=lambda row: row[0]):
        kind = f" {type(kinds[section]).__name__}" if section in kinds else ""
        lines += [*([""] if lines else []), f"[{section}]{kind}"]
        lines += [f"  {key:<40} {json.dumps(as_dict(value)):<12} {help}" for _, key, value, help in rows]
    return "\n".join(lines)
