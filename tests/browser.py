"""Finds (or installs) Debian's chromium for the browser tests, or says why there is none."""

from __future__ import annotations

import os
import shutil
import subprocess

CANDIDATES = ("chromium", "chromium-browser")
REQUIRE = "HARNESS_REQUIRE_BROWSER"
"""Set to 1 (as `make test-browser` and CI do), a missing Chromium fails the browser tests instead of skipping them."""


def browser_required(environ: dict[str, str] | None = None) -> bool:
    """Returns whether a missing Chromium must fail the browser tests: under CI or HARNESS_REQUIRE_BROWSER=1."""
    environ = os.environ if environ is None else environ
    return environ.get(REQUIRE, "") == "1" or environ.get("CI", "").lower() in ("1", "true", "yes")


def find_chromium() -> str | None:
    """Returns the path of a chromium executable on PATH, or None."""
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def chromium_or_reason() -> tuple[str | None, str]:
    """Returns (path, "") of chromium, installing Debian's package when missing and allowed; else (None, why).

    The Makefile's test-heavy target and .ci/run install it first; this is for a direct pytest run.
    """
    found = find_chromium()
    if found:
        return found, ""
    if not shutil.which("apt-get"):
        return None, "no chromium on PATH and no apt-get to install Debian's chromium package"
    if os.geteuid() != 0:
        return None, "no chromium on PATH; install it with `sudo apt-get install -y chromium`"
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if done.returncode:
            return None, f"`{' '.join(command)}` failed: {done.stderr.strip().splitlines()[-1:]}"
    found = find_chromium()
    return (found, "") if found else (None, "apt-get installed chromium but no executable is on PATH")
