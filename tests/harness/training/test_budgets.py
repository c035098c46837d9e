"""Stage budgets in epochs of the corpus each stage reads (what `harness data build` prints)."""

from __future__ import annotations

from harness.core.config import load_profile
from harness.training.budgets import StageBudget, epoch_lines, stage_budgets


def test_the_smoke_profiles_stages_and_the_tokens_each_reads() -> None:
    """smoke: sft, wm-amt and fe-sft at 4000 tokens; sft-mimic at wm-amt + fe-sft (match_budget) = 8000."""
    found = {(b.stage, b.corpus, b.tokens): b.methods for b in stage_budgets(load_profile("smoke"))}
    assert found == {
        ("sft", "D_expert", 4000): ("react", "vanilla-rl"),
        ("sft", "D_look", 8000): ("sft-mimic", "foresight-no-amt"),
        ("wm-amt", "D_world", 4000): ("foresight", "foresight-no-rl", "foresight-success-only"),
        ("fe-sft", "D_look", 4000): ("foresight", "foresight-no-rl", "foresight-success-only"),
        ("mixed", "D_world", 4000): ("foresight-no-order",),
        ("mixed", "D_look", 4000): ("foresight-no-order",),
    }


def test_epochs_are_budget_over_corpus_tokens() -> None:
    budget = StageBudget("wm-amt", ("foresight",), "D_world", 150_000)
    assert budget.epochs(300_000) == 0.5 and budget.epochs(50_000) == 3.0 and budget.epochs(0) is None
    lines = epoch_lines(load_profile("smoke"), {"D_expert": 2000, "D_look": 16_000, "D_world": 1000})
    assert lines[0] == "budget    sft         4000 tokens of D_expert (2000 tokens) = 2.00 epochs  [react, vanilla-rl]"
    assert "8000 tokens of D_look   (16000 tokens) = 0.50 epochs" in lines[1]
    assert "4000 tokens of D_world  (1000 tokens) = 4.00 epochs" in lines[2]
