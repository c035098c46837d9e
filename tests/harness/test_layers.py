"""The layers of harness/ (docs/development.md, "Where things are"): no import runs from a lower layer to a higher one.

Imports are read with `ast`, never by importing, so a function-level import counts as much as a
top-level one. `tasks/` may import only `harness.core`; `method/` and `baselines/` only
`harness.core` and `harness.training` (and each other).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. A module may import its own layer and any below it.
LAYERS = ("core", "agent", "data", "training", "evaluation", "reporting", "running", "cli")
# What a plugin package may import of harness/.
PLUGIN_ALLOWED = {"tasks": {"core"}, "method": {"core", "training"}, "baselines": {"core", "training"}}


def harness_layer(module: str) -> str | None:
    """Returns the layer of a dotted module under `harness`, or None for anything else."""
    parts = module.split(".")
    if parts[0] != "harness":
        return None
    if len(parts) == 1 or parts[1] in ("__main__", "__init__"):
        return "cli"  # the package itself and `python -m harness` sit at the top
    return parts[1] if parts[1] in LAYERS else "cli"


def imported_modules(path: Path, package: str) -> list[str]:
    """Returns every module a file imports, as dotted names (`from harness.core import x` gives `harness.core.x`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def layer_violations(root: Path) -> list[str]:
    """Returns one 'file: import X (layer a -> layer b)' line per import that runs upward."""
    problems = []
    for top in ("harness", "tasks", "method", "baselines"):
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root)
            package = ".".join(rel.with_suffix("").parts[:-1])
            if top == "harness":
                own = harness_layer(".".join(rel.with_suffix("").parts))
                allowed = set(LAYERS[: LAYERS.index(own) + 1])
            else:
                own, allowed = top, PLUGIN_ALLOWED[top]
            for module in imported_modules(path, package):
                target = harness_layer(module)
                if target is not None and target not in allowed:
                    problems.append(f"{rel}: import {module} ({own} -> {target})")
                if top == "tasks" and module.split(".")[0] in ("method", "baselines"):
                    problems.append(f"{rel}: import {module} (tasks -> {module.split('.')[0]})")
    return problems


def test_no_import_runs_upward() -> None:
    assert layer_violations(ROOT) == []


def test_every_layer_is_a_package_with_a_docstring() -> None:
    for layer in LAYERS:
        if layer == "agent":
            assert (ROOT / "harness" / "agent.py").is_file()
            continue
        init = ROOT / "harness" / layer / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"
    # Nothing is left loose at the top but the agent loop and the package's entry files.
    loose = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "agent.py"]


def plant(tmp_path: Path, file: str, line: str) -> Path:
    """Returns a copy of the importable tree with `line` appended to `file`."""
    for top in ("harness", "tasks", "method", "baselines"):
        shutil.copytree(ROOT / top, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / file, "a") as f:
        f.write(f"\n{line}\n")
    return tmp_path


def test_a_planted_upward_import_is_named(tmp_path: Path) -> None:
    root = plant(tmp_path, "harness/core/store.py", "def later():\n    from harness.training import train")
    assert layer_violations(root) == ["harness/core/store.py: import harness.training.train (core -> training)"]


def test_a_relative_upward_import_is_named(tmp_path: Path) -> None:
    root = plant(tmp_path, "harness/training/sft.py", "from ..evaluation.metrics import ece")
    assert layer_violations(root) == [
        "harness/training/sft.py: import harness.evaluation.metrics.ece (training -> evaluation)"
    ]


def test_tasks_may_import_only_core(tmp_path: Path) -> None:
    root = plant(tmp_path, "tasks/graph_nav.py", "import harness.agent")
    assert layer_violations(root) == ["tasks/graph_nav.py: import harness.agent (tasks -> agent)"]


def test_methods_may_not_import_evaluation(tmp_path: Path) -> None:
    root = plant(tmp_path, "method/foresight.py", "from harness.evaluation.metrics import ece")
    assert layer_violations(root) == [
        "method/foresight.py: import harness.evaluation.metrics.ece (method -> evaluation)"
    ]


def module_name(root: Path, path: Path) -> str:
    """Returns the dotted module of a file under `root` (a package's __init__.py is the package)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Returns, per module of the project, the project modules it imports (at the top or inside a function).

    `from a import b` points at module a.b when that is a module, else at a. An import of a.b also runs
    a's __init__.py; that edge is left out: no __init__.py of the project imports a project module by
    name (tasks/, method/ and baselines/ load their modules with pkgutil, the registries' discovery).
    An import inside a function counts as an edge: lazy or not, the two modules then depend on each
    other, and a module that must come first is a layer to split off (harness.training.launched).
    """
    files = {
        module_name(root, p): p
        for top in ("harness", "tasks", "method", "baselines")
        for p in (root / top).rglob("*.py")
    }
    graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for name in imported_modules(path, package):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Returns the strongly connected components of more than one module (Tarjan), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_on_a_hand_made_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}, "g": set()}
    assert import_cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_in_the_package() -> None:
    """Imports inside functions count: a lazy import still makes the two modules depend on each other."""
    assert import_cycles(import_graph(ROOT)) == []


def test_a_planted_lazy_import_cycle_is_found(tmp_path: Path) -> None:
    root = plant(tmp_path, "harness/training/stages.py", "def later():\n    from harness.training import train")
    # train reaches stages directly and through distributed, job, methods and resume: all five join the cycle.
    modules = ["distributed", "job", "methods", "resume", "stages", "train"]
    assert import_cycles(import_graph(root)) == [[f"harness.training.{m}" for m in modules]]
