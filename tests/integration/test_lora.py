"""`--model PATH --lora`: PEFT adapters per stage, on a tiny local model and on SmolLM2-135M."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.registry import make_task
from harness.training.models import (
    ModelConfig,
    build_tiny_model,
    build_tokenizer,
    save_checkpoint,
)
from harness.training.stages import stage_status
from harness.training.train import load_checkpoint, suite_vocabulary, train_method

pytestmark = pytest.mark.slow


def lora_profile(path: Path):
    return load_profile("smoke", {"model.path": str(path), "model.lora": True, "model.lora_rank": 4})


def test_lora_on_a_tiny_local_model(tmp_path: Path) -> None:
    tokenizer = build_tokenizer(suite_vocabulary(load_profile("smoke")))
    base = save_checkpoint(
        build_tiny_model(ModelConfig(64, 2, 2, 128, 512), tokenizer, 0), tokenizer, tmp_path / "base"
    )
    profile = lora_profile(base)
    _, checkpoint, outcomes = train_method("vanilla-rl", "graph-nav", profile, 0, tmp_path / "cache")
    assert [o.name for o in outcomes] == ["sft", "rl"]
    assert checkpoint.base == base and len(checkpoint.adapters) == 2
    for adapter in checkpoint.adapters:
        assert (adapter / "adapter_config.json").is_file() and stage_status(adapter) == "complete"
        assert not (adapter / "model.safetensors").exists()  # the adapter alone, not a full copy
    merged, _ = load_checkpoint(checkpoint)
    original, _ = load_checkpoint(type(checkpoint)(checkpoint.hash, base))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[key], original.state_dict()[key])


def test_corrupt_cached_stage_is_reported_never_replaced_in_place(tmp_path: Path) -> None:
    profile = load_profile("smoke")
    _, checkpoint, _ = train_method("react", "countdown", profile, 0, tmp_path)
    weights = checkpoint.base / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    damaged = weights.read_bytes()
    assert stage_status(checkpoint.base) == "corrupt"
    with pytest.raises(HarnessError, match=r"model.safetensors does not match the sha256 in stage.json\); delete"):
        train_method("react", "countdown", profile, 0, tmp_path)
    assert weights.read_bytes() == damaged  # readers may hold it open: the harness never rewrites a finished stage
    shutil.rmtree(checkpoint.base)
    _, again, outcomes = train_method("react", "countdown", profile, 0, tmp_path)
    assert not outcomes[0].reused and stage_status(again.base) == "complete"


@pytest.mark.heavy
def test_smollm2_with_lora_trains_sft_and_grpo(tmp_path: Path, smollm2_checkpoint: Path) -> None:
    profile = lora_profile(smollm2_checkpoint)
    _, checkpoint, outcomes = train_method("vanilla-rl", "countdown", profile, 0, tmp_path / "cache")
    assert [o.name for o in outcomes] == ["sft", "rl"]
    assert outcomes[0].stats["last_loss"] < outcomes[0].stats["first_loss"]
    config = json.loads((checkpoint.adapters[0] / "adapter_config.json").read_text())
    assert set(config["target_modules"]) >= {"q_proj", "v_proj"}
    model, tokenizer = load_checkpoint(checkpoint)
    assert make_task("countdown", profile.tasks["countdown"]).vocabulary()  # the task renders for any tokenizer
    assert model.config.model_type == "llama" and len(tokenizer) > 40_000
