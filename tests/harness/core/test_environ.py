"""What a harness process sets before torch loads: quiet variables and the numeric pin, and what it records."""

from __future__ import annotations

import pytest

from harness.core import environ
from harness.core.environ import NUMERIC_PIN, QUIET_ENV, harness_env, numeric_path
from harness.core.errors import HarnessError

PIN = "ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"


@pytest.fixture
def x86(monkeypatch):
    monkeypatch.setattr(environ.platform, "machine", lambda: "x86_64")


def test_default_pins_x86_64_at_avx2(x86) -> None:
    assert harness_env({}) == {**QUIET_ENV, **NUMERIC_PIN}
    assert numeric_path(harness_env({})) == PIN


def test_a_value_the_user_set_wins_and_native_drops_the_pin(x86) -> None:
    assert harness_env({"MKL_CBWR": "COMPATIBLE"})["ATEN_CPU_CAPABILITY"] == "avx2"
    assert "MKL_CBWR" not in harness_env({"MKL_CBWR": "COMPATIBLE"})
    assert harness_env({"HARNESS_NUMERICS": "native"}) == QUIET_ENV
    assert harness_env({"HARNESS_NUMERICS": "pinned", **NUMERIC_PIN, **QUIET_ENV}) == {}
    # A user's own caps are recorded as they are, in NUMERIC_PIN's order.
    assert numeric_path({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512"}) == (
        "ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX512_CORE"
    )
    assert numeric_path({"HARNESS_NUMERICS": "native"}) == "native"


def test_a_pin_set_after_torch_chose_its_kernels_is_recorded_as_native(x86) -> None:
    assert numeric_path(NUMERIC_PIN, capability="AVX2") == PIN
    assert numeric_path(NUMERIC_PIN, capability="AVX512") == "native"
    assert numeric_path({"ATEN_CPU_CAPABILITY": "default"}, capability="DEFAULT") == "ATEN_CPU_CAPABILITY=default"
    assert numeric_path({"MKL_CBWR": "AVX2"}, capability="AVX512") == "MKL_CBWR=AVX2"


def test_apply_fills_in_what_is_missing(x86) -> None:
    env = {"ATEN_CPU_CAPABILITY": "default", "HF_HUB_OFFLINE": "0"}
    environ.apply(env)
    assert env == {**QUIET_ENV, **NUMERIC_PIN, "ATEN_CPU_CAPABILITY": "default", "HF_HUB_OFFLINE": "0"}


def test_other_platforms_pin_nothing_and_say_so(monkeypatch) -> None:
    monkeypatch.setattr(environ.platform, "machine", lambda: "aarch64")
    assert harness_env({}) == QUIET_ENV
    assert numeric_path({}) == numeric_path(NUMERIC_PIN) == "native (aarch64: no pin)"


def test_an_unknown_mode_is_bad_input() -> None:
    with pytest.raises(HarnessError, match="HARNESS_NUMERICS must be one of pinned, native, got 'avx2'"):
        harness_env({"HARNESS_NUMERICS": "avx2"})
