"""The GRPO stage's namespaced TensorBoard tags, from one TRL log and the step's own numbers."""

from __future__ import annotations

from harness.training.callbacks import rl_tags


def test_rl_tags_name_rewards_timings_and_rollout_numbers() -> None:
    logs = {
        "loss": 0.25,
        "reward": 1.5,
        "completions/mean_length": 12,
        "rewards/success/mean": 0.5,
        "rewards/success/std": 0.1,  # a spread, not a mean: not a reward tag
        "rewards/calibration/mean": 0.75,
        "learning_rate": 1e-4,
    }
    extra = {"time/generation_s": 0.2, "time/step_s": 0.5, "train/success": 0.25, "train/p_mean": 0.6}
    assert rl_tags(logs, extra) == {
        "rl/reward/total": 1.5,
        "rl/completion/mean_length": 12.0,
        "rl/reward/success": 0.5,
        "rl/reward/calibration": 0.75,
        "rl/time/generation_s": 0.2,
        "rl/time/step_s": 0.5,
        "rl/rollout/success": 0.25,
        "rl/rollout/p_mean": 0.6,
    }


def test_rl_tags_leave_out_what_a_log_lacks() -> None:
    assert rl_tags({"loss": 1.0}, {}) == {}
