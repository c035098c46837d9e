"""Every registered task takes any action text at any state without raising (property tests).

A model writes whatever it writes; the world must answer with an observation, never an exception,
draw exactly one uniform number per step (so noise stays paired across methods), and give Q* of
any plan, however malformed, as a probability.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.config import load_profile
from harness.core.registry import make_task, task_names
from harness.core.traces import RESERVED
from tasks.base import Step
from tests.synth_data import knobs_for

SMOKE = load_profile("smoke")


@functools.cache
def task_and_states(name: str) -> tuple[object, list]:
    """Returns the task at smoke knobs and states along expert episodes of a few train instances."""
    task = make_task(name, knobs_for(name, SMOKE.tasks.get(name)))
    rng = np.random.default_rng(0)
    states = []
    for instance in task.splits(0).train[:4]:
        state = task.reset(instance)
        while not state.done:
            states.append(state)
            state = task.step(state, task.expert(state), rng).state
    return task, states


def actions(name: str) -> st.SearchStrategy[str]:
    """Returns arbitrary text, and word salads of the task's own words, format words and numbers."""
    task, _ = task_and_states(name)
    words = sorted(task.vocabulary()) + sorted(RESERVED) + ["-1", "0", "1e9", "nan", "7.5", ";", "->", "", "  "]
    salad = st.lists(st.sampled_from(words), max_size=6).map(" ".join)
    return st.one_of(st.text(max_size=40), salad)


@pytest.mark.parametrize("name", task_names())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_step_and_q_star_take_any_action(name: str, data: st.DataObject) -> None:
    task, states = task_and_states(name)
    state = states[data.draw(st.integers(0, len(states) - 1), label="state")]
    action = data.draw(actions(name), label="action")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32), label="seed"))
    probe = np.random.default_rng()
    probe.bit_generator.state = rng.bit_generator.state
    probe.random()
    result = task.step(state, action, rng)
    assert isinstance(result, Step) and isinstance(result.observation, str) and result.observation
    assert result.reward in (0.0, 1.0) and isinstance(result.done, bool)
    assert rng.bit_generator.state == probe.bit_generator.state, "a step draws exactly one uniform number"
    plan = data.draw(st.lists(actions(name), max_size=3), label="plan")
    assert 0.0 <= task.q_star(state, plan) <= 1.0
