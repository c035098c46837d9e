"""Every command shown in README.md and docs/*.md stays true (`make docs-check` runs this file; so does `make test`).

- `harness ...` commands, in code blocks or inline code: the sub-command exists and every option
  shown is one of its options, and `harness <sub-command> --help` succeeds; the cheap ones (listing
  and showing tasks, methods and profiles, with no placeholder) run for real and must exit 0.
- `make <target>`: the Makefile defines the target.
- Every relative link (docs/ pages, the README, figures) resolves.
Commands that train or reproduce are not run here: the integration tests run them on the smoke profile.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CHEAP = {("tasks", "list"), ("tasks", "show"), ("methods", "list"), ("profile", "show")}
_FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
_INLINE = re.compile(r"`((?:harness|make) [^`]+)`")


def shown_commands(text: str) -> list[str]:
    """Returns every `harness ...` or `make ...` command in a page's code blocks and inline code."""
    found = []
    for block in _FENCE.findall(text):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():  # a shell line continued with a backslash
            line = line.strip().removeprefix("$ ")
            if line.startswith(("harness ", "make ")):
                found.append(line)
    found += _INLINE.findall(_FENCE.sub("", text))
    return [c.split("  ")[0].split(" #")[0].strip() for c in found]


def resolve(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """Returns the command a `harness` word list names, its path and the words after it.

    The group's own options before the sub-command (`harness --include-path DIR tasks list`) must
    be options of the group; they are left out of the path.
    """
    command: click.Command = cli
    path: list[str] = []
    while words and words[0].startswith("--") and words[0] != "--help":
        option = next((o for o in cli.params if words[0] in o.opts), None)
        assert option is not None, f"{words[0]} is not an option of harness"
        del words[: 1 if getattr(option, "is_flag", False) else 2]
    while isinstance(command, click.Group) and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    return command, path, words


def _cases() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), c) for page in PAGES for c in shown_commands(page.read_text())]


def test_the_pages_show_commands() -> None:
    assert len([c for _, c in _cases() if c.startswith("harness ")]) >= 20


@pytest.mark.parametrize(("page", "command"), _cases(), ids=[f"{p}:{c[:60]}" for p, c in _cases()])
def test_a_shown_command_is_true(page: str, command: str) -> None:
    words = shlex.split(command.replace("[", " ").replace("]", " "))
    if words[0] == "make":
        targets = re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M)
        for target in [w for w in words[1:] if "=" not in w and not w.startswith("-")]:
            assert target in targets, f"{page}: make {target} is not a Makefile target"
        return
    if "|" in words[1]:  # `harness train|eval|reproduce ... --launcher accelerate`: each one must hold
        for alternative in words[1].split("|"):
            _check_harness(page, f"harness {alternative}", ["harness", alternative, *words[2:]])
        return
    _check_harness(page, command, words)


def _check_harness(page: str, command: str, words: list[str]) -> None:
    """Asserts that a `harness` command names a sub-command with the options shown, and runs the cheap ones."""
    command_obj, path, rest = resolve(words[1:])
    if not path:  # `harness --help`, or `harness COMMAND ...` with a placeholder for the command
        assert rest[0] == "--help" or rest[0].isupper(), f"{page}: `{command}` names no harness command"
        assert CliRunner().invoke(cli, ["--help"]).exit_code == 0
        return
    options = {o for p in command_obj.params for o in p.opts + p.secondary_opts}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in options, (
                f"{page}: `{command}`: {word} is not an option of harness {' '.join(path)}"
            )
    runner = CliRunner()
    assert runner.invoke(cli, [*path, "--help"]).exit_code == 0
    concrete = not any(w.isupper() or "|" in w or w in ("...",) for w in rest) and "[" not in command
    if tuple(path) in CHEAP and concrete:
        result = runner.invoke(cli, [*path, *rest])
        assert result.exit_code == 0, f"{page}: `{command}` failed: {result.output}"


def test_every_relative_link_resolves() -> None:
    """Every link of README.md and docs/ that is not a web address names a file or folder of the repository."""
    checked = 0
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            checked += 1
            path = target.split("#")[0]
            assert (page.parent / path).exists(), f"{page.relative_to(ROOT)} links to a missing {target}"
    assert checked >= 20
