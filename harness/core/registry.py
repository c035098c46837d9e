"""Registries from the kebab-case name a user types to a factory, filled by decorators at import.

The engine finds tasks and methods only through these dicts; it never imports a task or method
module by name. `load_plugins()` imports the top-level packages that hold them so their
decorators run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from harness.core.errors import HarnessError

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


def load_plugins() -> None:
    """Imports the task and method packages so that their registrations run."""
    for package in PLUGIN_PACKAGES:
        importlib.import_module(package)


def _lookup(table: dict[str, Callable[..., Any]], kind: str, name: str):
    load_plugins()
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise HarnessError(f"unknown {kind} {name!r} (known: {known})")
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


def make_task(name: str, knobs: dict[str, Any] | None = None):
    """Returns the task `name` built with `knobs` (validated; HarnessError names a bad one)."""
    cls = task_class(name)
    return cls(cls.Config.from_knobs(name, knobs))
