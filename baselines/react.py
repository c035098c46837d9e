"""ReAct baselines: sft on D_expert rendered as ReAct, and few-shot ReAct prompting (no training)."""

from __future__ import annotations

from harness.core.config import Profile
from harness.core.registry import register_method
from harness.training.methods import Method, sft_settings
from harness.training.stages import StageSpec


def react_sft(profile: Profile) -> StageSpec:
    """Returns the one stage of react: agentic SFT on D_expert (ReAct), loss on agent tokens."""
    return StageSpec("sft", kind="sft", data="expert", fmt="react", settings=sft_settings(profile, "sft"))


@register_method("react")
def react(profile: Profile) -> Method:
    """Returns react = sft(D_expert rendered as ReAct)."""
    return Method("react", fmt="react", stages=(react_sft(profile),))


@register_method("react-prompt")
def react_prompt(profile: Profile) -> Method:
    """Returns few-shot ReAct prompting of a pretrained model: two expert episodes in the prompt."""
    return Method("react-prompt", fmt="react", stages=(), few_shot=2)
