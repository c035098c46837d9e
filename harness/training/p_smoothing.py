"""Label smoothing at the success-estimate token, so that RL can move p.

After SFT on targets that are constant for a kind of state (kb-search's first turn has the same
reference value on every question), the token after the word `p` has ~0 bits of entropy: every
GRPO generation of a group writes the same p, the calibration reward then equals the success
reward, and no RL budget can teach calibration. Smoothing the SFT target there, (1 - a) on the
written value and a split evenly over its neighbours one step (0.1) away, keeps the argmax (greedy
evaluation writes the same p while a < 1/2) and leaves mass on the neighbours that RL can sample.
Every other position keeps the plain next-token cross-entropy. It is one setting of every SFT stage
that writes p (sft-mimic's and FE-SFT's), so the methods that write p are treated alike.

It goes in through the trainer's own `compute_loss_func` hook; it needs every p value to be one
token of the vocabulary (the tiny models); with a BPE model (`--model`) the stage trains without it
and says so on stderr.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.core.errors import HarnessError
from harness.training.p_sampling import single_p_ids

IGNORE = -100


def p_token_ids(tokenizer: Any) -> tuple[int, list[int]]:
    """Returns the id of the word `p` and the id of each value 0.0 ... 1.0; refuses multi-token values."""
    found = single_p_ids(tokenizer)
    if found is None:
        raise HarnessError("p_smoothing needs every p value 0.0 ... 1.0 to be one token; this tokenizer splits them")
    return found[0], list(found[1])


def smoothed_targets(values: list[int], amount: float, vocab: int) -> torch.Tensor:
    """Returns a (len(values), vocab) matrix: row k is the target distribution when value k is written."""
    table = torch.zeros(len(values), vocab, dtype=torch.float64)
    for k, token in enumerate(values):
        neighbours = [values[j] for j in (k - 1, k + 1) if 0 <= j < len(values)]
        table[k, token] = 1.0 - amount
        for other in neighbours:
            table[k, other] += amount / len(neighbours)
    return table


def p_smoothed_loss(
    logits: torch.Tensor, labels: torch.Tensor, p_id: int, values: list[int], amount: float, num_items: Any = None
) -> torch.Tensor:
    """Returns the mean next-token cross-entropy over labelled tokens, smoothed where a p value follows `p`.

    `labels` are unshifted (the trainer's), -100 where no loss is taken; the mean divides by
    `num_items` when the trainer counts the batch's tokens (gradient accumulation), else by the
    labelled tokens here.
    """
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    before = labels[:, :-1]
    valid = targets != IGNORE
    logp = torch.log_softmax(logits, dim=-1)
    safe = torch.where(valid, targets, torch.zeros_like(targets))
    per_token = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    value_ids = torch.tensor(values, device=labels.device)
    at_p = valid & (before == p_id) & torch.isin(targets, value_ids)
    if bool(at_p.any()):
        table = smoothed_targets(values, amount, logits.shape[-1]).to(logp.dtype).to(logp.device)
        index = (targets[at_p].unsqueeze(-1) == value_ids).float().argmax(-1)
        per_token = per_token.masked_scatter(at_p, -(table[index] * logp[at_p]).sum(-1))
    per_token = torch.where(valid, per_token, torch.zeros_like(per_token))
    count = valid.sum() if num_items is None else num_items
    return per_token.sum() / torch.as_tensor(count, device=per_token.device).clamp(min=1)


def loss_function(tokenizer: Any, amount: float) -> Any:
    """Returns a `compute_loss_func(outputs, labels, num_items_in_batch)` for the trainer, smoothing p by `amount`."""
    p_id, values = p_token_ids(tokenizer)

    def compute(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        return p_smoothed_loss(outputs.logits, labels, p_id, values, amount, num_items_in_batch)

    return compute
