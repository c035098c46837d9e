"""The paper's method: WM-AMT, then FE-SFT, then FC-RL, top to bottom.

1. WM-AMT (world-model agentic mid-training): full language-model loss on D_world, plain
   world-model text from exploration over the whole world ("state, action -> observation",
   "state, plan -> outcome"), mixed with a share of D_expert so the policy is kept. This is
   where predictive capability is meant to come from.
2. FE-SFT (format-eliciting SFT): agentic SFT on D_look, the very same look-ahead traces that
   sft-mimic trains on; loss on the agent's tokens only.
3. FC-RL (foresight-conditioned RL): GRPO on multi-turn episodes with
   reward = success + lambda_cal * (1 - (p - outcome)^2) + lambda_fid * rollout fidelity.
"""

from __future__ import annotations

from harness.core.config import Profile
from harness.core.registry import register_method
from harness.training.methods import Method, grpo_settings, sft_settings
from harness.training.stages import StageSpec


def wm_amt(profile: Profile) -> StageSpec:
    """Returns stage 1: full-LM-loss SFT on D_world (mixed with D_expert)."""
    return StageSpec("wm-amt", kind="wm-amt", data="world", fmt="plain", settings=sft_settings(profile, "wm-amt"))


def fe_sft(profile: Profile) -> StageSpec:
    """Returns stage 2: agentic SFT on D_look, loss on the foresight blocks and actions."""
    return StageSpec("fe-sft", kind="sft", data="look", fmt="foresight", settings=sft_settings(profile, "fe-sft"))


def fc_rl(profile: Profile, **overrides: float) -> StageSpec:
    """Returns stage 3: GRPO with success + calibration + fidelity rewards (weights from the profile)."""
    return StageSpec(
        "fc-rl", kind="grpo", data="prompts", fmt="foresight", settings=grpo_settings(profile, "fc-rl", **overrides)
    )


@register_method("foresight")
def foresight(profile: Profile) -> Method:
    """Returns foresight = wm-amt(D_world), then fe-sft(D_look), then fc-rl."""
    return Method("foresight", fmt="foresight", stages=(wm_amt(profile), fe_sft(profile), fc_rl(profile)))
