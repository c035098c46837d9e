"""vanilla-rl: react, then GRPO with the success reward alone, in the ReAct format."""

from __future__ import annotations

from baselines.react import react_sft
from harness.core.config import Profile
from harness.core.registry import register_method
from harness.training.methods import Method, grpo_settings
from harness.training.stages import StageSpec


@register_method("vanilla-rl")
def vanilla_rl(profile: Profile) -> Method:
    """Returns vanilla-rl = react's sft, then grpo(reward = success), no foresight."""
    rl = grpo_settings(profile, "rl", lambda_cal=0.0, lambda_fid=0.0)
    return Method(
        "vanilla-rl",
        fmt="react",
        stages=(react_sft(profile), StageSpec("rl", kind="grpo", data="prompts", fmt="react", settings=rl)),
    )
