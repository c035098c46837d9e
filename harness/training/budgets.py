"""What a profile's SFT-type stages spend, in epochs of the corpus each reads (`harness data build` prints it).

A stage's budget is in tokens (every token of its batches); the corpus it reads has its own token
count, so budget / corpus tokens is how many times the stage goes over its data. A stage that sees
half an epoch has not read its corpus; one that sees a hundred repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.config import Profile
from harness.core.registry import method_factory
from harness.training.stages import SftSettings, parse_mixed

CORPUS_OF = {"expert": "D_expert", "look": "D_look", "world": "D_world"}
"""A stage's data recipe -> the corpus (as `corpus_stats` names it) it draws its rows from."""


@dataclass(frozen=True)
class StageBudget:
    """One SFT-type stage of a profile's methods and what its token budget reads of one corpus."""

    stage: str
    methods: tuple[str, ...]
    corpus: str
    tokens: int
    """The budget's tokens that go to this corpus (a mixed stage splits its budget by its recipe)."""

    def epochs(self, corpus_tokens: int) -> float | None:
        """Returns tokens / corpus_tokens, the passes over the corpus (None for an empty corpus)."""
        return self.tokens / corpus_tokens if corpus_tokens else None


def stage_budgets(profile: Profile) -> list[StageBudget]:
    """Returns every distinct SFT-type stage of the profile's methods and ablations with its corpus and tokens."""
    found: dict[tuple[str, str, int], list[str]] = {}
    for name in dict.fromkeys(profile.methods + profile.ablations):
        for spec in method_factory(name)(profile).stages:
            if not isinstance(spec.settings, SftSettings):
                continue
            mixed = parse_mixed(spec.data)
            parts = [("D_world", mixed[0]), ("D_look", mixed[1])] if mixed else [(CORPUS_OF[spec.data], None)]
            for corpus, tokens in parts:
                key = (spec.name, corpus, spec.settings.tokens if tokens is None else tokens)
                found.setdefault(key, []).append(name)
    return [StageBudget(stage, tuple(methods), corpus, tokens) for (stage, corpus, tokens), methods in found.items()]


def epoch_lines(profile: Profile, corpus_tokens: dict[str, int]) -> list[str]:
    """Returns one line per stage budget: its tokens, the corpus and the epochs they make of it."""
    lines = []
    for b in stage_budgets(profile):
        epochs = b.epochs(corpus_tokens[b.corpus])
        shown = "-" if epochs is None else f"{epochs:.2f}"
        lines.append(
            f"budget    {b.stage:<7} {b.tokens:>8} tokens of {b.corpus:<8} ({corpus_tokens[b.corpus]} tokens) = "
            f"{shown} epochs  [{', '.join(b.methods)}]"
        )
    return lines
