"""`harness sweep`: a named grid over profile fields; each point a full profile variant with its own runs.

    harness sweep --profile default --name rl-steps --vary stages.fc-rl.steps=20,80,320 \\
        --vary stages.fc-rl.beta=0.1,0 --tasks graph-nav,kb-search --methods foresight,foresight-no-rl --seeds 0,1,2

A sweep is declared in a profile's `sweeps:` section (vary, tasks, methods, seeds) or on the command
line; `--vary KEY=V1,V2,...` (repeatable) names a dotted key into the profile (`stages.fc-rl.steps`,
`model.hidden_size`, `tasks.graph-nav.n_train`, `data.world_episodes`, `eval.candidates`) and adds
or replaces that axis; keys joined by `+` are one axis whose value each of them takes
(`stages.fc-rl.steps+stages.rl.steps=20,80,320` gives vanilla-rl the steps FC-RL gets). The grid
is every combination of the axes; the first axis is the one the
figures put on their x axis. A point's runs live in the run store under the profile name
`<profile>~<sweep>/<key>=<value>,...`, so each point is an ordinary profile that `harness compare`
and `harness report` can read. Stages the points share are trained once: the stage cache is keyed
by content, and runs whose first stage is the same (across points too) are chained into one task.

A steps axis is NOT read off the checkpoints of one longer run: every stage decays its learning
rate to zero over its own length (GRPO: TRL's linear schedule over `steps`; SFT: cosine over its
token budget), so step 20 of a 320-step run has trained at a higher rate than the end of a 20-step
run and is a different model. Each point trains its own last stage; what it reuses are the stages
before the varied one.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.config import Profile, build_profile, check_folder_name, set_dotted
from harness.core.errors import HarnessError, did_you_mean
from harness.core.fields import as_dict, config_hash
from harness.core.registry import make_task, method_factory
from harness.core.runs import RunSpec
from harness.running.reproduce import RUN_TOKENS, must_make
from harness.running.workers import execute
from harness.training.stages import StageSpec, stage_cost, stage_hash
from harness.training.train import data_hash, initial_checkpoint

VARIABLE_ROOTS = ("model", "data", "stages", "tasks", "eval", "match_budget")
"""The profile sections a sweep may vary (its tasks, methods and seeds have their own options)."""
SWEEP_KEYS = ("vary", "tasks", "methods", "seeds")


@dataclass(frozen=True)
class Sweep:
    """A named grid: the axes (dotted profile key -> values, the first on the x axis) and what runs at each point."""

    name: str
    vary: dict[str, list[Any]]
    tasks: list[str]
    methods: list[str]
    seeds: list[int]


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its value on every axis and the profile variant whose name is where its runs go."""

    values: dict[str, Any]
    profile: Profile = field(repr=False)


def parse_vary(texts: Sequence[str]) -> dict[str, list[Any]]:
    """Returns {key: values} from `KEY=V1,V2,...` texts (each value read as YAML: 20 -> int, 0.1 -> float)."""
    axes: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, rest = text.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise HarnessError(f"--vary {text!r} is not KEY=V1,V2,... (e.g. stages.fc-rl.steps=20,80,320)")
        values = [yaml.safe_load(v.strip()) for v in rest.split(",") if v.strip()]
        axes[key.strip()] = values
    return axes


def _name_list(value: Any, where: str) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value:
        raise HarnessError(f"{where} must be a non-empty list, got {value!r}")
    return value


def sweep_spec(
    profile: Profile,
    name: str,
    vary: dict[str, list[Any]] | None = None,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> Sweep:
    """Returns the sweep `name` of the profile's `sweeps:` section with the command line's axes and lists applied.

    A name the profile does not declare is a new sweep made of the given axes alone. HarnessError for
    a sweep without axes, an axis without values, or a malformed `sweeps:` entry.
    """
    declared = profile.sweeps.get(name) or {}
    if not isinstance(declared, dict):
        raise HarnessError(f"sweeps.{name} of profile {profile.name} must be a mapping, got {declared!r}")
    unknown = sorted(set(declared) - set(SWEEP_KEYS))
    if unknown:
        raise HarnessError(f"unknown key {unknown[0]!r} in sweeps.{name} (known: {', '.join(SWEEP_KEYS)})")
    axes = dict(declared.get("vary") or {})
    axes.update(vary or {})
    if not axes:
        known = ", ".join(profile.sweeps) or "none"
        raise HarnessError(f"sweep {name!r} varies nothing: give --vary KEY=V1,V2 (sweeps of {profile.name}: {known})")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise HarnessError(f"sweep {name!r}: axis {key} needs a non-empty list of values, got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise HarnessError(f"sweep {name!r}: axis {key} repeats a value ({values})")
    check_folder_name(name, "sweep name")
    return Sweep(
        name=name,
        vary=axes,
        tasks=list(tasks or _name_list(declared.get("tasks", list(profile.tasks)), f"sweeps.{name}.tasks")),
        methods=list(methods or _name_list(declared.get("methods", profile.methods), f"sweeps.{name}.methods")),
        seeds=[int(s) for s in (seeds or _name_list(declared.get("seeds", profile.seeds), f"sweeps.{name}.seeds"))],
    )


def check_axis(key: str, tasks: Sequence[str]) -> None:
    """Raises HarnessError for an axis a sweep may not vary: a root outside VARIABLE_ROOTS, or a task outside
    the sweep's tasks (its points would drop the task, and the axis with it). Other keys are checked as any
    profile key is (`set_dotted`, then resolving each point)."""
    for part in key.split("+"):
        names = part.split(".")
        if names[0] not in VARIABLE_ROOTS:
            raise HarnessError(f"cannot vary {part!r}: a sweep varies keys under {', '.join(VARIABLE_ROOTS)}")
        if names[0] == "tasks" and len(names) > 1 and names[1] not in tasks:
            hint = did_you_mean(names[1], tasks)
            raise HarnessError(
                f"cannot vary {part!r}: task {names[1]!r} is not in the sweep ({hint}its tasks: {', '.join(tasks)})"
            )


def point_slug(values: dict[str, Any]) -> str:
    """Returns a point's folder name: "key=value,key=value" in axis order."""
    return ",".join(f"{k}={v}" for k, v in values.items())


def points(profile: Profile, sweep: Sweep) -> list[Point]:
    """Returns every point of the grid as a checked profile variant (unknown keys, tasks or methods fail here)."""
    base = as_dict(profile)
    missing = [t for t in sweep.tasks if t not in profile.tasks]
    if missing:
        raise HarnessError(
            f"task {missing[0]!r} is not in profile {profile.name} (its tasks: {', '.join(profile.tasks)})"
        )
    for key in sweep.vary:
        check_axis(key, sweep.tasks)
    found = []
    for combo in itertools.product(*sweep.vary.values()):
        chosen = dict(zip(sweep.vary, combo))
        values = copy.deepcopy(base)
        for key, value in chosen.items():
            set_dotted(values, key, value)  # keys joined by + move together (fc-rl and rl steps)
        values.update(
            name=f"{profile.name}~{sweep.name}/{point_slug(chosen)}",
            tasks={t: values["tasks"][t] for t in sweep.tasks},
            methods=list(sweep.methods),
            ablations=[],
            seeds=list(sweep.seeds),
            ablation_seeds=list(sweep.seeds),
            sweeps={},
            reference="",
        )
        variant = build_profile(values, f"sweep {sweep.name} point {point_slug(chosen)}")
        for method in sweep.methods:
            method_factory(method)(variant)  # an unknown method fails before any work
        found.append(Point(chosen, variant))
    return found


def _first_stage_key(run: RunSpec, cache: Path) -> str | None:
    """Returns the cache key of a run's first stage, or None for a run without stages."""
    profile = run.profile
    stages = method_factory(run.method)(profile).stages
    if not stages:
        return None
    start = initial_checkpoint(profile, run.seed, cache).hash
    return stage_hash(stages[0], start, data_hash(make_task(run.task, profile.tasks[run.task]), profile, run.seed))


def _cost(chain: Sequence[RunSpec]) -> int:
    """Returns a rough cost of a chain in sft tokens, for ordering work only (as reproduce's chain_cost)."""
    seen: dict[str, StageSpec] = {}
    for run in chain:
        profile = run.profile
        for spec in method_factory(run.method)(profile).stages:
            seen[config_hash(spec, profile.model, profile.data, profile.tasks[run.task])] = spec
    return len(chain) * RUN_TOKENS + sum(stage_cost(spec) for spec in seen.values())


def sweep_work(
    found: Sequence[Point], runs: Path, cache: Path, echo: Callable[[str], None] = lambda _: None
) -> list[list[RunSpec]]:
    """Returns the missing or stale runs of every point as chains that share no stage, the costliest first.

    Runs whose first stage has the same cache key, in whichever point, form one chain: a stage the
    points share is then trained once, by one worker, and no other worker waits for it.
    """
    chains: dict[object, list[RunSpec]] = {}
    for point in found:
        prof = point.profile
        for seed in prof.seeds:
            for task in prof.tasks:
                for method in prof.methods:
                    run = RunSpec(prof, method, task, seed)
                    if not must_make(run, runs, echo):
                        continue
                    key = _first_stage_key(run, cache) or (prof.name, method, task, seed)
                    chains.setdefault(key, []).append(run)
    return sorted(chains.values(), key=lambda c: -_cost(c))


def run_sweep(
    found: Sequence[Point],
    runs: Path,
    cache: Path,
    jobs: int,
    threads: int,
    echo: Callable[[str], None],
    backend: str = "local",
    address: str | None = None,
) -> int:
    """Trains and evaluates every missing run of the points; returns how many it ran (a rerun resumes)."""
    work = sweep_work(found, runs, cache, echo)
    return execute(work, runs, cache, jobs, threads, echo, backend, address) if work else 0
