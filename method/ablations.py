"""Ablations of the foresight method (claim C4: capability first; and 'is it just more data?')."""

from __future__ import annotations

import dataclasses

from baselines.sft_mimic import mimic_sft
from harness.core.config import Profile
from harness.core.registry import register_method
from harness.training.methods import Method, matched_tokens, sft_settings
from harness.training.stages import StageSpec
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


@register_method("sft-mimic-plus-world")
def sft_mimic_plus_world(profile: Profile) -> Method:
    """Returns sft on D_look plus D_world rendered in the agent format, at wm-amt + fe-sft's budget."""
    settings = dataclasses.replace(sft_settings(profile, "fe-sft"), tokens=matched_tokens(profile, "wm-amt", "fe-sft"))
    stage = StageSpec("sft", kind="sft", data="look+world", fmt="foresight", settings=settings)
    return Method("sft-mimic-plus-world", fmt="foresight", stages=(stage,))
