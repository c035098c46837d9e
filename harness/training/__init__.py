"""Turning a checkpoint and a data recipe into the next checkpoint.

The model builders (`models`), the stage-kind registry, stage declarations and hashes (`stages`),
one stage's training as a value (`job`), the TRL-backed trainers (`sft` for sft and wm-amt, `grpo`)
with their callbacks (`callbacks`) and work folder (`work_folder`), the GRPO rewards, method
composition (`methods`), the stage cache that trains a method (`train`) and its data-parallel
launch (`distributed`, `launched`). May import `harness.core`, `harness.data`, `harness.agent` and `tasks/`.
"""
