"""The lm-eval probes on SmolLM2-135M-Instruct (BPE tokenizer), the pretrained model the Makefile installs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.evaluation.probes.items import CHOICES, probe_items
from harness.evaluation.probes.runner import probe_tasks
from harness.evaluation.probes.scoring import success_probability
from harness.training.models import load_model

pytestmark = [pytest.mark.slow, pytest.mark.heavy]
LIMIT = 3


def log_likelihood(model, tokenizer, context: str, word: str) -> float:
    """Returns log P(" word" | context), splitting the tokens of the whole text after the context's."""
    context_ids = tokenizer(context)["input_ids"]
    whole = tokenizer(context + " " + word)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].log_softmax(-1)
    return float(sum(logits[i - 1, whole[i]] for i in range(len(context_ids), len(whole))))


def test_probes_on_smollm2(smollm2_checkpoint: Path) -> None:
    model, tokenizer = load_model(smollm2_checkpoint)
    profile = load_profile("smoke")
    report = probe_tasks(model, tokenizer, profile, ["countdown"], 0, LIMIT, "smollm2-135m-instruct")
    found = report["tasks"]["countdown"]
    assert found["next_obs"]["items"] == found["calibration"]["items"] == LIMIT
    assert 0.0 <= found["next_obs"]["exact_match"] <= 1.0
    for metric in ("brier", "ece", "q_error", "mean_p", "choice_mass"):
        assert 0.0 <= found["calibration"][metric] <= 1.0
    # p through HFLM's BPE context/continuation split equals p from the logits directly.
    rows = probe_items(make_task("countdown", profile.tasks["countdown"]), profile.data, 0)["calibration"][:LIMIT]
    ps = [success_probability(*(log_likelihood(model, tokenizer, r["context"], w) for w in CHOICES)) for r in rows]
    assert found["calibration"]["mean_p"] == pytest.approx(sum(ps) / LIMIT, abs=1e-5)
