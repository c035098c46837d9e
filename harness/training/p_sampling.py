"""An explorable p during RL: the success-estimate token sampled among the p values at its own temperature.

GRPO can move p only where the generations of a group write different values. After an SFT whose p
targets are all 1.0, the token after the word `p` has ~0 bits of entropy: every generation writes
1.0, the calibration reward then equals the success reward, and no budget of RL steps teaches
calibration (issue 19). With the grpo setting `p_temperature`, the rollouts sample that one token
among the eleven values 0.0 ... 1.0 (every other token masked out) at temperature `p_temperature`
(e.g. 3: a value 3 nats below the greedy one is drawn e^-1 as often as it), and every other token
as before, at `temperature`.

The policy being trained is then exactly that sampling distribution, so its log-probabilities
must be computed the same way, or the GRPO ratio and its gradient are for a different policy:
`PTemperatureGRPOTrainer` replaces TRL's per-token log-probabilities (a fused LM head at one
temperature) with `tempered_logps`, which divides the logits at each position by the temperature
the sampler used there and masks the p positions to the values. Positions are found from the
tokens alone (the previous token is the marker `p`), as the sampler finds them from what the turn
has written so far. The setting is the same for every method whose RL writes p (fc-rl of foresight,
foresight-no-amt, foresight-success-only) and is off (None) by default; greedy evaluation is untouched.
It needs a tokenizer in which `p` and each value are one token (the tiny models' WordLevel one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from trl import GRPOTrainer

from harness.agent import p_value_logits
from harness.core.errors import HarnessError
from harness.core.traces import P_WORDS

MARKER = "p"


def single_p_ids(tokenizer: Any) -> tuple[int, tuple[int, ...]] | None:
    """Returns (id of the word `p`, ids of the values 0.0 ... 1.0), or None unless each is one token."""
    unknown = getattr(tokenizer, "unk_token_id", None)
    ids = [tokenizer.convert_tokens_to_ids(w) for w in (MARKER, *P_WORDS)]
    if any(i is None or i == unknown for i in ids):
        return None
    return ids[0], tuple(ids[1:])


def p_token_ids(tokenizer: Any) -> tuple[int, tuple[int, ...]]:
    """Returns (id of the word `p`, ids of the values 0.0 ... 1.0); HarnessError unless each is one token."""
    found = single_p_ids(tokenizer)
    if found is None:
        raise HarnessError(
            "p_temperature and p_only need a tokenizer in which the word 'p' and each value 0.0 ... 1.0 are single "
            "tokens (the tiny models' WordLevel tokenizer); leave them unset for this model"
        )
    return found


def p_value_mask(
    completion_ids: list[int],
    env_mask: list[int],
    marker: int,
    values: tuple[int, ...],
    scored: Sequence[bool] | None = None,
) -> list[int]:
    """Returns a loss mask that keeps the p value tokens alone: 1 where the model wrote a value right after
    the marker `p` it also wrote, 0 everywhere else (the grpo setting `p_only`).

    `scored` says, per turn (the runs of written tokens, in order), whether the reward reads that turn's p:
    the calibration reward scores a turn whose block does not parse 0 whatever it wrote after `p`, so a
    value there has no credit of its own and is masked out too.
    """
    allowed = set(values)
    mask, turn = [], -1
    for j, (token, written) in enumerate(zip(completion_ids, env_mask, strict=True)):
        turn += int(bool(written) and (j == 0 or not env_mask[j - 1]))
        after_marker = j > 0 and bool(env_mask[j - 1]) and completion_ids[j - 1] == marker
        keep = bool(written) and after_marker and token in allowed
        mask.append(int(keep and (scored is None or (turn < len(scored) and bool(scored[turn])))))
    return mask


def tempered_logps(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    logits_to_keep: int,
    temperature: float,
    p_temperature: float,
    marker: int,
    values: tuple[int, ...],
    compute_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Returns the log-probability of each of the last `logits_to_keep` tokens (and the entropy there)
    under the rollout sampler: logits / `temperature`, except after the marker, where only the p values
    count, at `p_temperature`. `logits` are the model's over the whole sequence, (batch, length, vocab)."""
    scores = logits[:, -logits_to_keep - 1 : -1].float()
    targets = input_ids[:, -logits_to_keep:]
    after_marker = (input_ids[:, -logits_to_keep - 1 : -1] == marker)[..., None]
    tempered = torch.where(after_marker, p_value_logits(scores, values, p_temperature), scores / temperature)
    logp = torch.log_softmax(tempered, dim=-1)
    chosen = logp.gather(-1, targets[..., None]).squeeze(-1)
    # A world token after a marker (a turn cut at its token limit right after `p`) is masked out of
    # the loss, but a -inf there would still turn the masked product into NaN.
    chosen = torch.where(torch.isfinite(chosen), chosen, torch.zeros_like(chosen))
    entropy = None
    if compute_entropy:
        entropy = -(logp.exp() * torch.where(torch.isfinite(logp), logp, torch.zeros_like(logp))).sum(-1)
    return chosen, entropy


class PTemperatureGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose per-token log-probabilities are those of the sampler with an explorable p."""

    def __init__(self, *args: Any, p_temperature: float, marker: int, values: tuple[int, ...], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.p_temperature, self.marker, self.values = p_temperature, marker, values

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **multimodal: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Returns (log-probabilities, entropies or None, None) of the completion tokens, in chunks."""
        if any(v is not None for v in multimodal.values()) or compute_aux_loss:
            raise HarnessError("p_temperature supports text-only dense causal LMs")
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
            with self.accelerator.autocast():
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            chosen, entropy = tempered_logps(
                logits, ids, logits_to_keep, self.temperature, self.p_temperature, self.marker, self.values,
                compute_entropy,
            )  # fmt: skip
            logps.append(chosen)
            entropies.append(entropy)
        return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None
