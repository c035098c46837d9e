"""The numeric variables a Ray task's runtime_env carries (Ray starts its worker with them, before torch loads)."""

from __future__ import annotations

import pytest

from harness.core import environ
from harness.running.ray_backend import numeric_env

PIN = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


@pytest.fixture
def x86(monkeypatch):
    monkeypatch.setattr(environ.platform, "machine", lambda: "x86_64")


def test_a_ray_task_gets_the_drivers_pin_or_its_opt_out(x86) -> None:
    assert numeric_env({"PATH": "/bin"}) == PIN  # a library driver that never pinned: the pin
    assert numeric_env({**PIN, "ATEN_CPU_CAPABILITY": "default"}) == {**PIN, "ATEN_CPU_CAPABILITY": "default"}
    assert numeric_env({"HARNESS_NUMERICS": "native"}) == {"HARNESS_NUMERICS": "native"}


def test_a_ray_task_of_an_arm_driver_gets_no_pin(monkeypatch) -> None:
    monkeypatch.setattr(environ.platform, "machine", lambda: "aarch64")
    assert numeric_env({"PATH": "/bin"}) == {}
