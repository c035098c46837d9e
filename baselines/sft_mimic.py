"""sft-mimic: SFT on the look-ahead traces D_look alone (the paper's 'format without capability')."""

from __future__ import annotations

import dataclasses

from harness.core.config import Profile
from harness.core.registry import register_method
from harness.training.methods import Method, matched_tokens, sft_settings
from harness.training.stages import StageSpec


def mimic_sft(profile: Profile) -> StageSpec:
    """Returns sft on D_look with fe-sft's settings, at the token budget of wm-amt + fe-sft.

    FE-SFT and sft-mimic train on the very same D_look; with `match_budget` (the default) the
    mimic gets as many training tokens as foresight's first two stages together.
    """
    settings = sft_settings(profile, "fe-sft")
    if profile.match_budget:
        settings = dataclasses.replace(settings, tokens=matched_tokens(profile, "wm-amt", "fe-sft"))
    return StageSpec("sft", kind="sft", data="look", fmt="foresight", settings=settings)


@register_method("sft-mimic")
def sft_mimic(profile: Profile) -> Method:
    """Returns sft-mimic = sft(D_look)."""
    return Method("sft-mimic", fmt="foresight", stages=(mimic_sft(profile),))
