"""The wiring half of the calibration mechanism check (issue 15 item 4), in `make test`: a reward on p
alone reaches the p token. What the calibration reward itself teaches is
test_calibration_mechanism.py (heavy; measured numbers in docs/calibration.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import harness.training.grpo as grpo_module
from harness.core.traces import ForesightBlock
from tests.integration.test_calibration_mechanism import LAST, MARGIN, P_TEMPERATURE, STEPS, always_certain, fc_rl

pytestmark = pytest.mark.slow


def test_a_reward_on_p_alone_reaches_the_p_token(tmp_path: Path, monkeypatch) -> None:
    """The wiring half of the check, on graph-nav: with the calibration reward replaced by 1 - p (the
    turn's p only, whatever the outcome), every other weight 0, the rollouts' mean first-turn p must
    fall by at least MARGIN (measured: 0.646 -> 0.487 over 40 steps; 20 steps moved it 0.613 -> 0.557),
    while every weight 0 leaves the model's weights exactly as they were. Advantages, the completion
    mask and where p sits in the tokens are then right."""

    def low_p(episode) -> float:
        scores = [1.0 - t.parsed.p if isinstance(t.parsed, ForesightBlock) else 0.0 for t in episode.turns]
        return float(np.mean(scores)) if scores else 0.0

    start = always_certain("graph-nav", tmp_path)
    _, before, after = fc_rl(start, "graph-nav", tmp_path / "zero", 2, lambda_cal=0.0, p_temperature=P_TEMPERATURE)
    assert all(torch.equal(before[k], after[k]) for k in before), "zero rewards changed the weights"
    monkeypatch.setattr(grpo_module, "calibration_reward", low_p)
    trained, _, _ = fc_rl(start, "graph-nav", tmp_path / "low-p", STEPS, lambda_cal=1.0, p_temperature=P_TEMPERATURE)
    p_start = float(np.mean([r["train/p_first_mean"] for r in trained[:LAST]]))
    p_end = float(np.mean([r["train/p_first_mean"] for r in trained[-LAST:]]))
    print(f"graph-nav, reward 1 - p: mean first-turn p {p_start:.3f} -> {p_end:.3f}")
    assert p_end <= p_start - MARGIN, (p_start, p_end)
