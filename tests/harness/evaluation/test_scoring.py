"""Whatever a model writes, scoring never raises and every unparsed turn counts against the format rate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.agent import AgentEpisode, Turn, action_of
from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.core.traces import ParseError, normalize, parse_turn
from harness.evaluation.scoring import episode_record, point_metrics, run_metrics
from tasks.base import NoisyExpert

SMOKE = load_profile("smoke")
TASK = make_task("graph-nav", SMOKE.tasks["graph-nav"])
INSTANCES = TASK.splits(0).test[:3]
WORDS = sorted(TASK.vocabulary())
REFERENCE = NoisyExpert(TASK, 0.3)


def _foresight_like() -> st.SearchStrategy[str]:
    """Returns texts shaped like foresight blocks: mostly well formed, some with a wrong count, p or action."""
    step = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
    p = st.one_of(st.sampled_from(["0.0", "0.3", "1.0"]), st.floats(allow_nan=True, allow_infinity=True).map(str))

    @st.composite
    def block(draw: st.DrawFn) -> str:
        n = draw(st.integers(1, 3))
        plan = draw(st.lists(step, min_size=n, max_size=n))
        rollout = draw(st.lists(step, min_size=n, max_size=n + draw(st.integers(0, 1))))
        action = draw(st.one_of(st.just(plan[0]), step))
        steps = " ; ".join(f"{a} -> {o}" for a, o in zip(plan, rollout)) + "".join(f" ; {o}" for o in rollout[n:])
        return f"think {draw(step)} plan {steps} p {draw(p)} act {action}"

    return block()


OUTPUTS = st.lists(st.one_of(st.text(max_size=60), _foresight_like()), min_size=1, max_size=8)


def play(outputs: list[str], instance, seed: int) -> AgentEpisode:
    """Returns the episode the agent loop makes of these outputs, one per turn (until the world says done)."""
    rng = np.random.default_rng(seed)
    state = TASK.reset(instance)
    episode = AgentEpisode(instance.id, TASK.prompt(state))
    for output in outputs:
        if state.done:
            break
        parsed = parse_turn(output, "foresight")
        action = normalize(action_of(parsed))
        result = TASK.step(state, action, rng)
        episode.turns.append(Turn(state, normalize(output), parsed, action, result.observation))
        state = result.state
        episode.success = result.reward > 0
    episode.final_state = state
    return episode


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OUTPUTS, min_size=1, max_size=3), st.integers(0, 1000))
def test_any_output_is_scored_and_parse_failures_count_in_the_format_rate(outputs, seed: int) -> None:
    episodes = [play(out, INSTANCES[i], seed) for i, out in enumerate(outputs)]
    rng = np.random.default_rng(seed)
    records = [json.loads(json.dumps(episode_record(TASK, i, e, rng, REFERENCE))) for i, e in enumerate(episodes)]
    metrics = run_metrics(records, True, seed, SMOKE.data.look_k)
    turns = [t for e in episodes for t in e.turns]
    parsed = [not isinstance(t.parsed, ParseError) for t in turns]
    assert metrics["format_rate"] == sum(parsed) / len(turns)
    recorded = [t for r in records for t in r["turns"]]
    assert [t["parsed"] is not None for t in recorded] == parsed
    assert all(t["error"] for t, ok in zip(recorded, parsed) if not ok)
    if not any(parsed):
        assert metrics["ece_all"] is None and metrics["fidelity@1"] is None  # a dash, not a zero


def _turn(p: float | None) -> dict:
    """Returns a recorded turn: a parsed foresight block writing `p`, or (None) a turn that did not parse."""
    if p is None:
        return {"output": "", "parsed": None, "error": "not a block", "action": "a", "observation": "o"}
    parsed = {"thought": "", "plan": ["a"], "rollout": ["o"], "p": p}
    return {"output": "", "parsed": parsed, "error": None, "q_ref": 0.5, "q_star": 1.0, "actual": ["o"]}


def _episode(success: bool, ps: list[float | None]) -> dict:
    return {"success": success, "turns": [_turn(p) for p in ps], "candidates": [], "p_first": None}


def test_first_turn_calibration_coverage_and_format_by_turn_by_hand() -> None:
    records = [
        _episode(True, [0.8, None, 0.4, 0.4]),
        _episode(False, [0.2, None]),
        _episode(False, [0.8]),
        _episode(True, [0.5]),
        _episode(True, [None, 0.9]),  # its first turn did not parse: no first-turn p
    ]
    out = run_metrics(records, True, 0, 1)
    # Turn 1: 4 of 5 parsed; turn 2: 1 of 3 (A, B, E); turns 3+: A's two, both parsed. All: 7 of 10.
    assert (out["format_rate_t1"], out["format_rate_t2"], out["format_rate_t3plus"]) == pytest.approx((0.8, 1 / 3, 1))
    assert out["format_rate"] == pytest.approx(0.7) and out["p_coverage"] == pytest.approx(0.7)
    assert out["first_p_coverage"] == pytest.approx(0.8)
    # First turns p = 0.8, 0.2, 0.8, 0.5 with outcomes 1, 0, 0, 1 (hand-computed in test_metrics.py).
    first = ("brier_first", "brier_skill_first", "auroc_first", "reliability_first", "resolution_first")
    assert [out[k] for k in first] == pytest.approx([0.2425, 0.03, 0.625, 0.1175, 0.125])
    assert (out["uncertainty_first"], out["ece_first"]) == pytest.approx((0.25, 0.325))
    # All 7 p turns: squared errors 0.04 + 2 * 0.36 + 0.04 + 0.64 + 0.25 + 0.01 = 1.70; base rate 5/7.
    assert out["brier"] == pytest.approx(1.7 / 7)
    assert out["brier_skill_all"] == pytest.approx(1 - (1.7 / 7) / (5 / 7 * 2 / 7))
    assert [b["count"] for b in out["reliability_bins_first"]] == [0, 0, 1, 0, 0, 1, 0, 0, 2, 0]
    # Without a verbal p the format is still counted by turn; the p columns are None.
    react = run_metrics(records, False, 0, 1)
    assert react["format_rate_t1"] == pytest.approx(0.8) and react["brier_skill_first"] is None
    assert react["p_coverage"] is None and react["reliability_bins_first"] is None
    assert run_metrics([_episode(True, [0.5])], True, 0, 1)["format_rate_t2"] is None


def test_selection_gain_scores_candidates_by_q_ref_and_keeps_q_star_beside_it() -> None:
    """On a deterministic world Q* of every plan is 1 (the expert then finishes it): Q* can tell no
    candidate from another, and the gain under it is 0. Q_ref, the noisy reference policy's value, can.
    Episode 1: own p picks the candidate with Q_ref 0.9 (mean 0.6): +0.3. Episode 2: p ties on 0.7
    between Q_ref 0.2 and 0.4, a uniform pick gives 0.3 against a mean of 0.5: -0.2. Mean gain 0.05."""
    first = _episode(True, [0.5])
    first["candidates"] = [{"p": 0.8, "q_ref": 0.9, "q_star": 1.0}, {"p": 0.3, "q_ref": 0.3, "q_star": 1.0}]
    second = _episode(False, [0.5])
    second["candidates"] = [
        {"p": 0.7, "q_ref": 0.2, "q_star": 1.0},
        {"p": 0.7, "q_ref": 0.4, "q_star": 1.0},
        {"p": 0.1, "q_ref": 0.9, "q_star": 1.0},
    ]
    values = point_metrics([first, second], True, 2)
    assert values["selection_gain"] == pytest.approx(0.05)
    assert values["selection_gain_star"] == 0.0
    assert point_metrics([first, second], False, 2)["selection_gain"] is None  # no verbal p: a dash
