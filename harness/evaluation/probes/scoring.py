"""Metric functions of the calibration probe, named by calibration.yaml with `!function`.

lm-eval calls `calibration_results` once per item with the log-likelihoods of the two choices
("success", "failure") and aggregates each metric's per-item values with the function the YAML
names; Brier, ECE and Q-error are harness.evaluation.metrics's, so the probe and the agent's own
success estimates are scored by the same formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness.evaluation.metrics import brier, ece, q_error


def success_probability(ll_success: float, ll_failure: float) -> float:
    """Returns p = P(success) / (P(success) + P(failure)) = 1 / (1 + exp(ll_failure - ll_success))."""
    diff = ll_failure - ll_success
    # Written both ways so that exp never overflows, whichever word the model prefers.
    if diff >= 0:
        return math.exp(-diff) / (1.0 + math.exp(-diff))
    return 1.0 / (1.0 + math.exp(diff))


def calibration_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Returns one item's metric inputs: (p, outcome) for Brier and ECE, (p, Q_ref) for Q-error (the
    reference policy's value, as the outcome samples it), p, and
    choice_mass = P(success) + P(failure), the share of the model's next-word probability the two
    words take (near 1 for a model trained on D_world, small for one that never saw the format)."""
    (ll_success, _), (ll_failure, _) = results
    p = success_probability(ll_success, ll_failure)
    outcome = float(doc["outcome"])
    return {
        "brier": (p, outcome),
        "ece": (p, outcome),
        "q_error": (p, float(doc["q_ref"])),
        "mean_p": p,
        "choice_mass": math.exp(ll_success) + math.exp(ll_failure),
    }


def brier_of_pairs(items: Sequence[tuple[float, float]]) -> float | None:
    """Returns the Brier score mean((p - outcome)^2) of (p, outcome) pairs."""
    return brier([p for p, _ in items], [y for _, y in items])


def ece_of_pairs(items: Sequence[tuple[float, float]]) -> float | None:
    """Returns the ECE (10 equal-width bins of p) of (p, outcome) pairs."""
    return ece([p for p, _ in items], [y for _, y in items])


def q_error_of_pairs(items: Sequence[tuple[float, float]]) -> float | None:
    """Returns the Q-error mean(|p - Q_ref|) of (p, Q_ref) pairs."""
    return q_error([p for p, _ in items], [q for _, q in items])
