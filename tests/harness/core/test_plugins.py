"""Tasks and methods from outside the repository: an installed entry-point package and an --include-path folder.

The test writes a tiny task package (an echo world and a method that reuses react's stage), installs
it into this venv with pip from the local folder (no index, no network), and checks that a fresh
`harness` process lists and uses them; PLUGIN_PACKAGES is never edited. It uninstalls it after.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.registry import ENTRY_POINT_GROUP, PLUGIN_PACKAGES, TASK_METHODS, make_task

HARNESS = str(Path(sys.executable).parent / "harness")

TASK_MODULE = '''
"""An echo world: the prompt names a word; answering it is a success."""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.core.registry import register_method, register_task
from tasks.base import INVALID_ACTION, Splits, Step, TaskConfig

WORDS = ("red", "green", "blue", "gold", "grey", "pink")


@dataclass(frozen=True)
class Word:
    id: str
    word: str


@dataclass(frozen=True)
class EchoState:
    word: str
    t: int
    done: bool
    success: bool


@register_task("NAME-echo")
class Echo:
    name: ClassVar[str] = "NAME-echo"
    family: ClassVar[str] = "search"
    version: ClassVar[int] = 1
    Config: ClassVar[type] = TaskConfig

    def __init__(self, config):
        self.config = config

    def splits(self, seed):
        words = [Word(f"w{i}", w) for i, w in enumerate(WORDS)]
        return Splits(tuple(words[:4]), tuple(words[4:5]), tuple(words[5:]))

    def sample_instance(self, rng):
        return self.splits(0).train[int(rng.integers(4))]

    def reset(self, instance):
        return EchoState(instance.word, 0, False, False)

    def prompt(self, state):
        return f"say {state.word}"

    def describe(self, state):
        return f"say {state.word} turn {state.t}"

    def thought(self, state):
        return f"need {state.word}"

    def step(self, state, action, rng):
        rng.random()
        verb, _, rest = action.partition(" ")
        ok = verb == "answer" and rest == state.word
        obs = ("correct" if ok else "wrong") if verb == "answer" else INVALID_ACTION
        return Step(EchoState(state.word, state.t + 1, True, ok), obs, True, float(ok))

    def outcomes(self, state, action):
        return [(1.0, self.step(state, action, np.random.default_rng(0)))]

    def legal_actions(self, state):
        return [f"answer {w}" for w in WORDS]

    def expert(self, state):
        return f"answer {state.word}"

    def q_star(self, state, plan):
        return float(bool(plan) and plan[0] == self.expert(state)) if plan else 1.0

    def items(self, state, action, nxt):
        return frozenset()

    def required(self, instance):
        return frozenset()

    def vocabulary(self):
        return ["say", "need", "answer", "correct", "wrong", "turn", "0", "1", *WORDS, *INVALID_ACTION.split()]


@register_method("NAME-react")
def method(profile):
    from baselines.react import react

    return react(profile)
'''


def write_package(root: Path, name: str) -> Path:
    """Returns a folder holding an installable package `name` that declares its entry point."""
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(TASK_MODULE.replace("NAME", name))
    (root / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.0.1"

[project.entry-points."{ENTRY_POINT_GROUP}"]
{name} = "{name}"

[tool.setuptools]
packages = ["{name}"]
"""
    )
    return root


def harness(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([HARNESS, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)


@pytest.mark.heavy  # pip installs a package, then four harness processes
def test_an_installed_entry_point_package_registers_its_task_and_method(tmp_path: Path) -> None:
    name = "fh_plugin_probe"
    source = write_package(tmp_path / "src", name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(source)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    try:
        listed = harness("tasks", "list", "--profile", "smoke", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        line = next(x for x in listed.stdout.splitlines() if x.startswith(f"{name}-echo"))
        assert line.split()[:2] == [f"{name}-echo", "search"]
        methods = harness("methods", "list", "--profile", "smoke", cwd=tmp_path)
        assert any(x.split()[:2] == [f"{name}-react", "react"] for x in methods.stdout.splitlines())
        # The engine runs the plugin's task like its own: data recipes and probes items built from it.
        built = harness("data", "build", "--task", f"{name}-echo", "--profile", "smoke", "--out", "d", cwd=tmp_path)
        assert built.returncode == 0, built.stderr
        assert "expert success on train: 100%" in built.stdout
        assert len((tmp_path / "d" / "D_expert.jsonl").read_text().splitlines()) == 4
        assert name not in PLUGIN_PACKAGES
    finally:
        subprocess.run([*pip, "uninstall", "-y", name], capture_output=True)
    gone = harness("tasks", "list", "--profile", "smoke", cwd=tmp_path)
    assert f"{name}-echo" not in gone.stdout


def test_an_include_path_folder_registers_its_modules(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "my_echo.py").write_text(TASK_MODULE.replace("NAME", "inc"))
    listed = harness("--include-path", str(folder), "tasks", "list", "--profile", "smoke", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(x.split()[:2] == ["inc-echo", "search"] for x in listed.stdout.splitlines())
    by_env = harness("methods", "list", "--profile", "smoke", cwd=tmp_path, env={"HARNESS_INCLUDE_PATH": str(folder)})
    assert any(x.split()[:2] == ["inc-react", "react"] for x in by_env.stdout.splitlines())
    assert "inc-echo" not in harness("tasks", "list", "--profile", "smoke", cwd=tmp_path).stdout
    (folder / "broken.py").write_text("import not_a_module_anywhere\n")
    failed = harness("--include-path", str(folder), "tasks", "list", "--profile", "smoke", cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1
    assert failed.stderr.endswith(
        f"{folder / 'broken.py'} (from the include path) failed to load: No module named 'not_a_module_anywhere'\n"
    )
    missing = harness("--include-path", str(tmp_path / "nope"), "tasks", "list", "--profile", "smoke", cwd=tmp_path)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


def test_the_engine_knows_every_method_of_the_task_protocol() -> None:
    from tasks.base import Task

    protocol = [name for name, value in vars(Task).items() if callable(value) and not name.startswith("_")]
    assert sorted(protocol) == sorted(TASK_METHODS)


def test_a_task_without_a_protocol_method_is_refused_in_one_line(monkeypatch) -> None:
    from harness.core import registry
    from tasks.base import TaskConfig

    class Partial:
        Config = TaskConfig

        def __init__(self, config) -> None:
            self.config = config

    for method in TASK_METHODS:
        if method != "outcomes":
            setattr(Partial, method, lambda self, *args: None)
    monkeypatch.setitem(registry.TASKS, "partial-echo", Partial)
    with pytest.raises(HarnessError, match=r"^task partial-echo \(.*Partial\) lacks outcomes: a task implements"):
        make_task("partial-echo")
