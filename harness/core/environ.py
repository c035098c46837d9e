"""The environment variables every harness process sets before it imports torch, transformers or datasets.

Two groups: QUIET_ENV (offline, no progress bars) and, on x86-64, NUMERIC_PIN, which caps torch's
kernels (ATen's dispatch, MKL, oneDNN) at AVX2 so that the same seed gives the same bits on any
x86-64 CPU that has AVX2, with or without AVX-512. `harness_env` says what a process lacks of
them; a variable the user already set wins over both, and HARNESS_NUMERICS=native drops the pin.
docs/reliability.md ("Numeric path") describes what the user sees.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, MutableMapping

from harness.core.errors import HarnessError

QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
"""Offline and quiet; set unless the user set them (the command line, and each Ray worker for itself)."""

NUMERICS_ENV = "HARNESS_NUMERICS"
"""`pinned` (the default: NUMERIC_PIN on x86-64) or `native` (no pin: the CPU's own fastest kernels)."""
NUMERICS_MODES = ("pinned", "native")
NUMERIC_PIN = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
"""The kernel caps of one numeric path on x86-64. torch reads each once, at its first use of the
library concerned (not at import), so they take hold in a process that set them before any tensor op."""
X86_64 = ("x86_64", "amd64")


def numerics_mode(environ: Mapping[str, str]) -> str:
    """Returns the numeric mode `environ` asks for (`pinned` unless HARNESS_NUMERICS says otherwise).

    HarnessError for a value other than `pinned` or `native`.
    """
    mode = environ.get(NUMERICS_ENV, "pinned")
    if mode not in NUMERICS_MODES:
        raise HarnessError(f"{NUMERICS_ENV} must be one of {', '.join(NUMERICS_MODES)}, got {mode!r}")
    return mode


def pinnable(machine: str | None = None) -> bool:
    """Returns whether this machine (or `machine`, as platform.machine() names it) has NUMERIC_PIN's variables."""
    return (machine or platform.machine()).lower() in X86_64


def harness_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Returns the variables a harness process sets that `environ` lacks: QUIET_ENV, and NUMERIC_PIN when pinned.

    The pin applies on x86-64 only, and not under HARNESS_NUMERICS=native; a variable present in
    `environ` is never overridden.
    """
    wanted = dict(QUIET_ENV)
    if numerics_mode(environ) == "pinned" and pinnable():
        wanted.update(NUMERIC_PIN)
    return {key: value for key, value in wanted.items() if key not in environ}


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets in `environ` (this process's environment by default) what `harness_env` says it lacks; returns nothing.

    Call it before torch runs its first operation, so that this process and every process it
    starts follow the pin.
    """
    environ.update(harness_env(environ))


def numeric_path(environ: Mapping[str, str] = os.environ, capability: str | None = None) -> str:
    """Returns the numeric path in force: `environ`'s kernel caps as `VAR=value ...`, or `native`.

    `capability` is what torch reports it dispatches to; when it contradicts `environ`'s
    ATEN_CPU_CAPABILITY, the caps came after torch had chosen its kernels (a notebook that ran
    torch before the harness could pin) and the path in force is `native`. On a machine without
    NUMERIC_PIN's variables: `native (<machine>: no pin)`.
    """
    if not pinnable():
        return f"native ({platform.machine() or 'unknown machine'}: no pin)"
    aten = environ.get("ATEN_CPU_CAPABILITY")
    if capability is not None and aten is not None and aten.upper() != capability.upper():
        return "native"
    caps = [f"{key}={environ[key]}" for key in NUMERIC_PIN if key in environ]
    return " ".join(caps) or "native"


def cpu_model() -> str:
    """Returns the CPU's model name from /proc/cpuinfo, else as platform names it, else `unknown`."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
