"""The distribution at the p token (harness.evaluation.estimates): where it is read and what it says."""

from __future__ import annotations

import math

import pytest
import torch

from harness.agent import AgentEpisode, Turn
from harness.core.traces import FORMAT_WORDS, P_WORDS, parse_turn
from harness.evaluation.estimates import first_p_belief, p_cut, value_token_ids
from harness.training.models import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer([*FORMAT_WORDS, "go", "red", "at", "n1", "n2", "goal", "need", "from", "x"])


class FixedLogits(torch.nn.Module):
    """A model whose next-token logits are fixed: half the mass on 0.5, a quarter each on 0.0 and 1.0."""

    def __init__(self, vocab: int, ids: dict[str, int]) -> None:
        super().__init__()
        self.logits = torch.full((vocab,), -1e9)
        for word, share in (("0.5", 0.5), ("0.0", 0.25), ("1.0", 0.25)):
            self.logits[ids[word]] = math.log(share)

    def forward(self, input_ids: torch.Tensor):
        return type("Out", (), {"logits": self.logits.expand(*input_ids.shape, -1)})()


def test_p_cut_and_belief_by_hand(tokenizer) -> None:
    text = "think need n2 from n1 plan go red -> at n2 p 0.5 act go red"
    written = tokenizer(text, add_special_tokens=False)["input_ids"]
    cut = p_cut(tokenizer, written)
    assert tokenizer.decode(written[:cut]).split()[-2:] == ["n2", "p"]
    ids = value_token_ids(tokenizer)
    assert ids is not None and len(ids) == len(P_WORDS)
    episode = AgentEpisode("i", "goal n2 at n1", prompt_ids=[1, 2])
    episode.turns.append(Turn(None, text, parse_turn(text, "foresight"), "go red", "at n2", written))
    vocab = len(tokenizer.get_vocab())
    belief = first_p_belief(FixedLogits(vocab, dict(zip(P_WORDS, ids))), tokenizer, episode)
    # Entropy of (1/2, 1/4, 1/4) is 1.5 bits; E[p] = 0.5 * 0.5 + 0.25 * 0.0 + 0.25 * 1.0 = 0.5.
    assert belief == pytest.approx({"entropy_bits": 1.5, "expected_p": 0.5})


def test_no_belief_without_a_block(tokenizer) -> None:
    episode = AgentEpisode("i", "goal n2 at n1")
    episode.turns.append(
        Turn(None, "think x act go red", parse_turn("think x act go red", "foresight"), "go red", "at n2")
    )
    assert first_p_belief(None, tokenizer, episode) is None
