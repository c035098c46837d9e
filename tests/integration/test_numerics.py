"""The numeric pin: the same seed gives the same weights on a CPU with AVX-512 and on one capped at AVX2.

Three fresh `harness eval` processes train smoke's sft-mimic on countdown (one sft stage) from
nothing, each in its own stage cache, as if on three machines: this one under the default pin,
this one under HARNESS_NUMERICS=native, and one "AVX2 machine": a process started with torch's
kernels already capped at AVX2 (ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 ONEDNN_MAX_CPU_ISA=AVX2),
which is what torch does on a CPU without AVX-512. Real processes (not forked from the test's),
so that each torch picks its kernels from nothing. The three run at the same time (about 10 s each).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.environ import NUMERIC_PIN, NUMERICS_ENV, pinnable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not pinnable(), reason=f"the numeric pin exists on x86-64 only, not {platform.machine()}"),
]

HARNESS = str(Path(sys.executable).parent / "harness")
PIN = " ".join(f"{k}={v}" for k, v in NUMERIC_PIN.items())
MACHINES = {"pinned": {}, "native": {NUMERICS_ENV: "native"}, "avx2-machine": NUMERIC_PIN}


def _clean_env() -> dict[str, str]:
    """Returns this process's environment without numeric settings (an in-process `main` may have pinned it)."""
    return {k: v for k, v in os.environ.items() if k not in (*NUMERIC_PIN, NUMERICS_ENV)}


def _weights(cache: Path) -> dict[str, str]:
    """Returns {stage hash: sha256 of its model.safetensors} of a stage cache."""
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cache.glob("*/model.safetensors")}


def test_pinned_weights_are_the_same_on_avx512_and_avx2(tmp_path: Path) -> None:
    started = {}
    for name, extra in MACHINES.items():
        argv = ["eval", "--method", "sft-mimic", "--task", "countdown", "--profile", "smoke"]
        argv += ["--cache", str(tmp_path / name / "cache"), "--runs", str(tmp_path / name / "runs")]
        env = {**_clean_env(), **extra}
        started[name] = subprocess.Popen([HARNESS, *argv], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    for name, process in started.items():
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, f"{name}: {err}"
    weights = {name: _weights(tmp_path / name / "cache") for name in MACHINES}
    manifests = {
        name: json.loads((tmp_path / name / "runs/smoke/countdown/sft-mimic/seed0/manifest.json").read_text())
        for name in MACHINES
    }
    recorded = {name: (m["versions"]["cpu_capability"], m["versions"]["numerics"]) for name, m in manifests.items()}
    # Two checkpoints per cache: the initial model (no training, the same everywhere) and the sft stage.
    assert len(weights["pinned"]) == 2
    assert weights["pinned"] == weights["avx2-machine"]
    assert recorded["pinned"] == recorded["avx2-machine"] == ("AVX2", PIN)
    native_capability, native_path = recorded["native"]
    assert native_path == "native"
    if native_capability == "AVX512":
        # Only where torch itself reports AVX-512 do the native kernels differ from the pinned ones:
        # there the sft stage's weights must differ, or the pin would be shown to change nothing.
        assert weights["native"].keys() == weights["pinned"].keys()
        differing = [h for h in weights["native"] if weights["native"][h] != weights["pinned"][h]]
        assert len(differing) == 1
    else:
        # On a CPU without AVX-512 (torch reports AVX2 natively) the pin is the CPU's own path.
        assert native_capability == "AVX2" and weights["native"] == weights["pinned"]
