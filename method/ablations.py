"""Ablations of the foresight method (claim C4: capability first, and it is not just more data)."""

from __future__ import annotations

import dataclasses

from baselines.sft_mimic import mimic_sft
from harness.core.config import Profile
from harness.core.registry import register_method
from harness.training.methods import Method, matched_tokens, sft_settings
from harness.training.stages import StageSpec, mixed_recipe
from method.foresight import fc_rl, fe_sft, wm_amt


@register_method("foresight-no-rl")
def foresight_no_rl(profile: Profile) -> Method:
    """Returns foresight without FC-RL: wm-amt, then fe-sft."""
    return Method("foresight-no-rl", fmt="foresight", stages=(wm_amt(profile), fe_sft(profile)))


@register_method("foresight-no-amt")
def foresight_no_amt(profile: Profile) -> Method:
    """Returns foresight without WM-AMT: sft-mimic's checkpoint, then fc-rl."""
    return Method("foresight-no-amt", fmt="foresight", stages=(mimic_sft(profile), fc_rl(profile)))


@register_method("foresight-success-only")
def foresight_success_only(profile: Profile) -> Method:
    """Returns foresight whose FC-RL rewards success alone (calibration and fidelity weights 0)."""
    return Method(
        "foresight-success-only",
        fmt="foresight",
        stages=(wm_amt(profile), fe_sft(profile), fc_rl(profile, lambda_cal=0.0, lambda_fid=0.0)),
    )


@register_method("foresight-no-order")
def foresight_no_order(profile: Profile) -> Method:
    """Returns foresight-no-rl's very data in one shuffled stage: same data, no order (the C4 control).

    D_world rows with the full language-model loss (as in wm-amt) and D_look rows with the loss on
    the agent's tokens (as in fe-sft), drawn up to wm-amt's and fe-sft's token budgets and trained
    together, shuffled, at their summed budget. Against foresight-no-rl it isolates the order of
    the stages; against sft-mimic (the same budget on D_look alone) it isolates the world data.
    """
    world, look = sft_settings(profile, "wm-amt").tokens, sft_settings(profile, "fe-sft").tokens
    settings = dataclasses.replace(sft_settings(profile, "fe-sft"), tokens=matched_tokens(profile, "wm-amt", "fe-sft"))
    stage = StageSpec("mixed", kind="sft", data=mixed_recipe(world, look), fmt="foresight", settings=settings)
    return Method("foresight-no-order", fmt="foresight", stages=(stage,))
