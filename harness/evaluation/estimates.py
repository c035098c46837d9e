"""What the model believes where it writes its success estimate: the distribution at the p token.

GRPO can move p only if the policy ever samples another value there. A p token whose entropy is
~0 bits (the model writes 1.0 with probability ~1) gives every generation of a group the same p,
so the calibration reward then equals the success reward and no RL budget can teach calibration.
Each evaluated episode records, at its first turn, the entropy (bits, over the whole vocabulary,
at temperature 1 as RL samples) of the token after the word `p`, and the expected p there when
every value 0.0 ... 1.0 is one token of the vocabulary (the tiny models; None for BPE models,
whose values span several tokens).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from harness.agent import AgentEpisode
from harness.core.traces import P_WORDS, ForesightBlock


def p_cut(tokenizer: Any, written: list[int]) -> int | None:
    """Returns how many of a turn's written tokens reach up to and including the word `p` after `plan`, or None."""
    for j in range(1, len(written) + 1):
        words = tokenizer.decode(written[:j], skip_special_tokens=True).split()
        if words and words[-1] == "p" and "plan" in words:
            return j
    return None


def value_token_ids(tokenizer: Any) -> list[int] | None:
    """Returns the token id of each p value 0.0 ... 1.0, or None when one of them is not a single token."""
    ids = [tokenizer.convert_tokens_to_ids(word) for word in P_WORDS]
    unknown = getattr(tokenizer, "unk_token_id", None)
    if any(i is None or i == unknown for i in ids):
        return None
    return ids


@torch.no_grad()
def first_p_belief(model: Any, tokenizer: Any, episode: AgentEpisode) -> dict[str, float | None] | None:
    """Returns {entropy_bits, expected_p} at the p token of the episode's first turn, or None without a block."""
    if not episode.turns or not isinstance(episode.turns[0].parsed, ForesightBlock):
        return None
    written = episode.turns[0].token_ids
    cut = p_cut(tokenizer, written)
    if cut is None:
        return None
    ids = torch.tensor([episode.prompt_ids + written[:cut]])
    logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].double(), dim=-1)
    probs = logp.exp()
    entropy = float(-(probs * torch.where(probs > 0, logp, torch.zeros_like(logp))).sum()) / math.log(2)
    values = value_token_ids(tokenizer)
    expected = None
    if values is not None:
        mass = probs[values]
        if float(mass.sum()) > 0:
            expected = float((mass * torch.tensor([float(w) for w in P_WORDS], dtype=mass.dtype)).sum() / mass.sum())
    return {"entropy_bits": round(entropy, 6), "expected_p": None if expected is None else round(expected, 6)}
