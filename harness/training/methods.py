"""What a method is: an ordered list of stages, the format it acts in, and whether it states p.

Methods register a factory `profile -> Method` with `@register_method(name)`; the factories read
their stage settings from the profile's `stages` mapping, keyed by stage name (`Stages.read`: the
kind a name is read as is what loading resolves it to).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.core.config import Profile
from harness.training.stages import GrpoSettings, SftSettings, StageSpec


@dataclass(frozen=True)
class Method:
    """A registered training recipe."""

    name: str
    fmt: str
    """Format the trained agent acts in: react | foresight."""
    stages: tuple[StageSpec, ...]
    few_shot: int = 0
    """Expert episodes shown in the prompt at evaluation (react-prompt); 0 for trained methods."""

    @property
    def verbal_p(self) -> bool:
        """Returns whether the agent writes a success estimate (its calibration columns apply)."""
        return self.fmt == "foresight"


def sft_settings(profile: Profile, key: str) -> SftSettings:
    """Returns the sft/wm-amt settings under `stages.<key>` of the profile (resolved and checked at load)."""
    return profile.stages.read(key, SftSettings)


def grpo_settings(profile: Profile, key: str, **overrides: float) -> GrpoSettings:
    """Returns the grpo settings under `stages.<key>`, with `overrides` (the method's own, fixed values) applied."""
    return dataclasses.replace(profile.stages.read(key, GrpoSettings), **overrides)


def matched_tokens(profile: Profile, *keys: str) -> int:
    """Returns the summed token budget of the named stages (for comparisons at matched budgets)."""
    return sum(sft_settings(profile, key).tokens for key in keys)
