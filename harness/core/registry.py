"""Registries from the kebab-case name a user types to a factory, filled by decorators at import.

The engine finds tasks and methods only through these dicts; it never imports a task or method
module by name. `load_plugins()` imports the top-level packages that hold them so their
decorators run, then the user's own, from outside the repository:

- installed packages that declare an entry point in the group `foresight_harness.plugins`
  (as pytest plugins do): `[project.entry-points."foresight_harness.plugins"] my_tasks = "my_tasks"`;
- folders named by `harness --include-path DIR` (or the HARNESS_INCLUDE_PATH variable, folders
  separated by the path separator), as lm-eval's `--include_path`: every module and package in
  such a folder is imported.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError, did_you_mean

TASKS: dict[str, Callable[..., Any]] = {}
METHODS: dict[str, Callable[..., Any]] = {}

PLUGIN_PACKAGES = ("tasks", "baselines", "method")


def _register(table: dict[str, Callable[..., Any]], kind: str, name: str):
    def decorate(factory):
        if name in table:
            raise ValueError(f"{kind} {name!r} registered twice")
        table[name] = factory
        return factory

    return decorate


def register_task(name: str):
    """Registers a Task class under `name` (kebab-case, e.g. `graph-nav`)."""
    return _register(TASKS, "task", name)


def register_method(name: str):
    """Registers a method factory under `name` (kebab-case, e.g. `sft-mimic`)."""
    return _register(METHODS, "method", name)


ENTRY_POINT_GROUP = "foresight_harness.plugins"
INCLUDE_ENV = "HARNESS_INCLUDE_PATH"
_LOADED: set[str] = set()
"""Entry points and include folders already imported in this process."""


def load_plugins() -> None:
    """Imports the task and method packages, then the entry-point plugins and include folders, once each."""
    for package in PLUGIN_PACKAGES:
        importlib.import_module(package)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry:{entry.name}={entry.value}"
        if key not in _LOADED:
            _LOADED.add(key)
            _import_plugin(lambda entry=entry: entry.load(), f"plugin {entry.name} ({entry.value})")
    for folder in include_paths():
        key = f"folder:{folder}"
        if key not in _LOADED:
            _LOADED.add(key)
            _import_folder(folder)


def include_paths() -> list[Path]:
    """Returns the folders of HARNESS_INCLUDE_PATH, resolved, in order."""
    return [Path(p).resolve() for p in os.environ.get(INCLUDE_ENV, "").split(os.pathsep) if p]


def _import_folder(folder: Path) -> None:
    """Imports every module (*.py) and package (a folder with __init__.py) directly inside `folder`."""
    if not folder.is_dir():
        raise HarnessError(f"include path {folder} is not a folder")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    for path in sorted(folder.iterdir()):
        if path.suffix == ".py" and path.stem.isidentifier():
            name = path.stem
        elif path.is_dir() and (path / "__init__.py").is_file() and path.name.isidentifier():
            name = path.name
        else:
            continue
        _import_plugin(lambda name=name: importlib.import_module(name), f"{path} (from the include path)")


def _import_plugin(load: Callable[[], Any], what: str) -> None:
    try:
        load()
    except (ImportError, SyntaxError, ValueError) as exc:
        # A plugin that does not import (or registers a name twice) is the user's to fix: one line.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"{what} failed to load: {first}") from None


def _lookup(table: dict[str, Callable[..., Any]], kind: str, name: str):
    load_plugins()
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise HarnessError(f"unknown {kind} {name!r} ({did_you_mean(name, table)}known: {known})")
    return table[name]


def task_class(name: str):
    """Returns the registered Task class for `name`, or raises HarnessError naming the known ones."""
    return _lookup(TASKS, "task", name)


def method_factory(name: str):
    """Returns the registered method factory for `name`, or raises HarnessError."""
    return _lookup(METHODS, "method", name)


def task_names() -> list[str]:
    """Returns the registered task names, sorted."""
    load_plugins()
    return sorted(TASKS)


def method_names() -> list[str]:
    """Returns the registered method names, sorted."""
    load_plugins()
    return sorted(METHODS)


TASK_METHODS = (
    "splits", "sample_instance", "reset", "prompt", "describe", "thought", "step", "outcomes",
    "legal_actions", "expert", "q_star", "items", "required", "vocabulary",
)  # fmt: skip
"""The methods of the Task protocol (tasks/base.py; a test keeps the two lists equal). The engine calls
each, so a task of a plugin that lacks one is refused when it is built, not midway through a command."""


def make_task(name: str, knobs: dict[str, Any] | None = None):
    """Returns the task `name` built with `knobs` (validated; HarnessError names a bad knob or a missing method)."""
    cls = task_class(name)
    missing = [m for m in TASK_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise HarnessError(
            f"task {name} ({cls.__module__}.{cls.__qualname__}) lacks {', '.join(missing)}: "
            "a task implements every method of the Task protocol in tasks/base.py"
        )
    return cls(cls.Config.from_knobs(name, knobs))
