"""Shared fixtures: seeded generators and the registered tasks at small knobs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from harness.core import environ

# The test process takes the numeric pin the `harness` command takes (docs/reliability.md), before any
# test runs a tensor op: runs made in this process then have the bytes of the CLI processes they meet.
os.environ.update({k: v for k, v in environ.harness_env(os.environ).items() if k in environ.NUMERIC_PIN})


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
