"""Turning a checkpoint and a data recipe into the next checkpoint.

The model builders (`models`), the two TRL-backed stage kinds (`sft`, `grpo`), the GRPO rewards,
stage declarations and hashes (`stages`), method composition (`methods`) and the stage cache that
trains a method (`train`). May import `harness.core`, `harness.data`, `harness.agent` and `tasks/`.
"""
