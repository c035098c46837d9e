"""p label smoothing: the loss against hand-computed values, and the trainer hook's refusals."""

from __future__ import annotations

import math

import pytest
import torch

from harness.core.errors import HarnessError
from harness.training.p_smoothing import p_smoothed_loss, smoothed_targets
from harness.training.sft import p_loss

P_ID, VALUES = 0, [1, 2, 3]  # a 6-token vocabulary: `p`, three values, two other words


def _logp(row: list[float], token: int) -> float:
    return row[token] - math.log(sum(math.exp(x) for x in row))


def test_table_splits_the_share_between_neighbours_and_gives_an_edge_all_of_it():
    table = smoothed_targets(VALUES, 0.2, 6)
    assert table[1].tolist() == pytest.approx([0, 0.1, 0.8, 0.1, 0, 0])  # middle value
    assert table[0].tolist() == pytest.approx([0, 0.8, 0.2, 0, 0, 0])  # lowest value: one neighbour
    assert table[2].tolist() == pytest.approx([0, 0, 0.2, 0.8, 0, 0])


def test_loss_smooths_only_the_value_after_p():
    # Sequence: p, 2, 5, 2 -> targets 2 (after p: smoothed), 5 (plain), 2 (after 5: plain, not a p value).
    labels = torch.tensor([[0, 2, 5, 2]])
    rows = [[0.0, 1.0, 2.0, 0.5, 0.0, -1.0], [0.3, 0.0, 0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.5, 0.0, 0.0, 0.0]]
    logits = torch.tensor([rows + [[0.0] * 6]])
    a = 0.3
    smoothed = -((1 - a) * _logp(rows[0], 2) + a / 2 * _logp(rows[0], 1) + a / 2 * _logp(rows[0], 3))
    expected = (smoothed - _logp(rows[1], 5) - _logp(rows[2], 2)) / 3
    got = p_smoothed_loss(logits, labels, P_ID, VALUES, a)
    assert float(got) == pytest.approx(expected, abs=1e-6)
    plain = (-_logp(rows[0], 2) - _logp(rows[1], 5) - _logp(rows[2], 2)) / 3
    assert float(p_smoothed_loss(logits, labels, P_ID, VALUES, 0.0)) == pytest.approx(plain, abs=1e-6)


def test_ignored_positions_take_no_loss_and_num_items_divides():
    labels = torch.tensor([[-100, 0, 3, -100]])  # context, p, value 3 (the top edge), context
    rows = [[0.0] * 6, [0.0] * 6, [1.0, 0.0, 0.0, 2.0, 0.0, 0.0]]
    logits = torch.tensor([rows + [[0.0] * 6]])
    a = 0.2
    at_p = -(0.8 * _logp(rows[1], 3) + 0.2 * _logp(rows[1], 2))
    expected = (-_logp(rows[0], 0) + at_p) / 2  # the last target is ignored
    assert float(p_smoothed_loss(logits, labels, P_ID, VALUES, a)) == pytest.approx(expected, abs=1e-6)
    assert float(p_smoothed_loss(logits, labels, P_ID, VALUES, a, num_items=4)) == pytest.approx(
        expected * 2 / 4, abs=1e-6
    )


def test_zero_smoothing_equals_the_plain_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 6, generator=generator)
    labels = torch.randint(0, 6, (2, 7), generator=generator)
    labels[0, :3] = -100
    plain = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 6), labels[:, 1:].reshape(-1))
    assert float(p_smoothed_loss(logits, labels, P_ID, VALUES, 0.0)) == pytest.approx(float(plain), abs=1e-6)


class _Words:
    """A word-level tokenizer stand-in: every p value is one token unless `split` says otherwise."""

    unk_token_id = 99

    def __init__(self, split: bool = False) -> None:
        self.vocab = {"p": 0, **{f"{i / 10:.1f}": i + 1 for i in range(11)}, "go": 12}
        if split:
            del self.vocab["0.5"]

    def convert_tokens_to_ids(self, word: str) -> int:
        return self.vocab.get(word, self.unk_token_id)


def test_hook_only_where_the_agent_writes_p():
    from datasets import Dataset

    with_p = Dataset.from_dict({"input_ids": [[12, 0, 6]], "assistant_masks": [[0, 1, 1]]})
    p_in_context = Dataset.from_dict({"input_ids": [[12, 0, 6]], "assistant_masks": [[1, 1, 0]]})
    assert p_loss(_Words(), with_p, 0.2, full_loss=False) is not None
    assert p_loss(_Words(), p_in_context, 0.2, full_loss=False) is None
    assert p_loss(_Words(), with_p, 0.0, full_loss=False) is None
    assert p_loss(_Words(), with_p, 0.2, full_loss=True) is None  # wm-amt: no p targets there


def test_refusals(capsys):
    from datasets import Dataset

    data = Dataset.from_dict({"input_ids": [[0, 6]], "assistant_masks": [[1, 1]]})
    with pytest.raises(HarnessError, match=r"p_smoothing must lie in \[0, 0.5\)"):
        p_loss(_Words(), data, 0.5, full_loss=False)
    # A tokenizer that splits a p value (a BPE model given with --model) trains without smoothing, and says so.
    assert p_loss(_Words(split=True), data, 0.2, full_loss=False) is None
    assert "p_smoothing needs every p value 0.0 ... 1.0 to be one token" in capsys.readouterr().err
