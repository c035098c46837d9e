"""The stage probes: world-model exact match by hand, the held-out filter, the probe cache, RL first/last steps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.data.recipes import build_corpora, rows_dataset
from harness.evaluation.world_model import (
    ProbeSets,
    Transition,
    accuracy,
    greedy_lines,
    model_writer,
    probe_sets,
    rl_summary,
    stage_checkpoints,
    stage_world_model,
    training_text,
)
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer
from harness.training.train import Checkpoint, suite_vocabulary

SMOKE = load_profile("smoke")


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(suite_vocabulary(SMOKE))


@pytest.fixture(scope="module")
def graph_nav():
    """graph-nav at smoke knobs with its corpora for seed 0."""
    task = make_task("graph-nav", SMOKE.tasks["graph-nav"])
    return task, build_corpora(task, SMOKE.data, 0)


class Scripted:
    """A stand-in model whose `generate` appends planted tokens to each row of each batch, in order."""

    device = torch.device("cpu")

    def __init__(self, continuations: list[list[int]]) -> None:
        self.continuations = continuations

    def eval(self) -> Scripted:
        return self

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, pad_token_id: int, **_) -> torch.Tensor:
        rows = [self.continuations.pop(0)[:max_new_tokens] for _ in range(len(input_ids))]
        new = torch.tensor([r + [pad_token_id] * (max_new_tokens - len(r)) for r in rows], dtype=torch.long)
        return torch.cat([input_ids, new], dim=1)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_exact_match_by_hand_with_a_scripted_model(tokenizer) -> None:
    familiar = [
        Transition("world goal n5 at n7 left 6 act go red ->", "at n1"),
        Transition("world goal n5 at n1 left 5 act go green ->", "at n7"),
        Transition("world goal n5 at n7 left 5 act go blue ->", "at n2"),
    ]
    heldout = [
        Transition("world goal n7 at n5 left 6 act go blue ->", "at n6"),
        Transition("world goal n7 at n6 left 5 act go green ->", "at n0"),
    ]
    sets = ProbeSets(familiar, heldout, heldout_dropped=3)
    eos = tokenizer.eos_token_id
    model = Scripted(
        [
            ids(tokenizer, "at n1\nworld goal"),  # right, then the newline ends the line
            ids(tokenizer, "at n7 left"),  # the target and more, no newline within 3 tokens: wrong
            ids(tokenizer, "at") + [eos],  # stopped early: wrong
            ids(tokenizer, "at n6") + [eos],  # right, ended by eos
            ids(tokenizer, "at n1\n"),  # another node: wrong
        ]
    )
    result = accuracy(sets, model_writer(model, tokenizer, sets))
    # familiar: 1 of 3 right; heldout: 1 of 2 right (targets are 2 tokens, so 3 new tokens are generated)
    assert result == {"familiar": 1 / 3, "heldout": 0.5, "n_familiar": 3, "n_heldout": 2, "heldout_dropped": 3}
    assert accuracy(ProbeSets([], heldout, 0), lambda cs: ["at n6", "at n0"])["familiar"] is None
    assert accuracy(ProbeSets([], heldout, 0), lambda cs: ["at n6", " at  n0 "])["heldout"] == 1.0


def test_batched_greedy_lines_equal_one_context_at_a_time(tokenizer) -> None:
    model = build_tiny_model(ModelConfig(32, 2, 2, 64, 512), tokenizer, 0).eval()
    contexts = [
        "world goal n5 at n7 left 6 act go red ->",
        "world target 11 left 3 4 4 turns 3 act 4 + 3 ->",
        "world question rinoba works_for facts none turns 3 act search rinoba located_in ->",
    ]
    batched = greedy_lines(model, tokenizer, contexts, 6)
    alone = [greedy_lines(model, tokenizer, [c], 6)[0] for c in contexts]
    assert batched == alone and all(batched)  # left padding changes nothing; the untrained model writes words


def test_heldout_holds_no_line_of_training_text_and_a_planted_one_is_dropped(graph_nav) -> None:
    task, corpora = graph_nav
    sets = probe_sets(task, corpora, 0, items=1000)
    text = training_text(corpora)
    assert sets.heldout and sets.heldout_dropped > 0  # smoke's small graph: some dev-side lines occur in D_world
    assert not [t for t in sets.heldout if t.context in text]
    assert all(t.context in text for t in sets.familiar)
    planted = sets.heldout[5]
    row = {"id": "planted", "kind": "world", "instance_id": "x", "texts": [planted.context + " at n0\n"],
           "agent": [True], "text": planted.context + " at n0\n"}  # fmt: skip
    world = rows_dataset([*corpora.world.to_list(), row])
    again = probe_sets(task, dataclasses.replace(corpora, world=world), 0, items=1000)
    assert again.heldout == [t for t in sets.heldout if t != planted]
    assert again.heldout_dropped == sets.heldout_dropped + 1


def test_sets_have_the_stated_size_and_follow_the_seed(graph_nav) -> None:
    task, corpora = graph_nav
    small = probe_sets(task, corpora, 0, items=10)
    assert (len(small.familiar), len(small.heldout)) == (10, 10)
    assert probe_sets(task, corpora, 0, items=10) == small
    everything = probe_sets(task, corpora, 0, items=1000)
    assert set(small.familiar) <= set(everything.familiar) and set(small.heldout) <= set(everything.heldout)
    assert len({t.context for t in everything.familiar}) == len(everything.familiar)  # distinct contexts


def test_a_stage_is_probed_once_and_the_file_lies_beside_its_folder(tmp_path: Path, tokenizer) -> None:
    (tmp_path / "abc").mkdir()
    sets = ProbeSets([Transition("world goal n5 at n7 left 6 act go red ->", "at n1")], [], 0)
    model = Scripted([ids(tokenizer, "at n1\n")])
    first = stage_world_model(Checkpoint("abc", tmp_path / "abc"), tmp_path, lambda: sets, 200, (model, tokenizer))
    assert first["familiar"] == 1.0 and first["heldout"] is None
    assert (tmp_path / "abc.probe.json").is_file() and list((tmp_path / "abc").iterdir()) == []

    def refuse() -> ProbeSets:
        raise AssertionError("a cached stage was probed again")

    assert stage_world_model(Checkpoint("abc", tmp_path / "abc"), tmp_path, refuse, 200, (model, tokenizer)) == first
    with pytest.raises(AssertionError, match="probed again"):  # another size is another probe
        stage_world_model(Checkpoint("abc", tmp_path / "abc"), tmp_path, refuse, 100, (model, tokenizer))
    (tmp_path / "abc" / "stage.json").write_text("{}\n")  # the stage was trained again
    with pytest.raises(AssertionError, match="probed again"):
        stage_world_model(Checkpoint("abc", tmp_path / "abc"), tmp_path, refuse, 200, (model, tokenizer))


def test_stage_checkpoints_follow_the_chain(tmp_path: Path) -> None:
    full = stage_checkpoints(Checkpoint("b", tmp_path / "b"), ["a", "b"], tmp_path)
    assert full == [Checkpoint("a", tmp_path / "a"), Checkpoint("b", tmp_path / "b")]
    lora = stage_checkpoints(Checkpoint("b", Path("/base"), (tmp_path / "a", tmp_path / "b")), ["a", "b"], tmp_path)
    assert lora == [Checkpoint("a", Path("/base"), (tmp_path / "a",)), lora[1]]
    assert lora[1] == Checkpoint("b", Path("/base"), (tmp_path / "a", tmp_path / "b"))


def test_rl_summary_reads_the_first_and_last_logged_steps(tmp_path: Path) -> None:
    records = [
        {"step": 1, "reward": 0.25, "train/success": 0.0},  # no first turn parsed: no Brier at this step
        {"step": 2, "reward": 0.5, "train/p_first_brier": 0.4},
        {"step": 3, "reward": 0.75, "train/p_first_brier": 0.1},
        {"step": 3, "train_loss": 0.0, "train_runtime": 1.0},  # TRL's closing record
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert rl_summary(log) == {
        "steps_logged": 3,
        "reward_first": 0.25,
        "reward_last": 0.75,
        "brier_first_step": None,
        "brier_last_step": 0.1,
    }
    assert rl_summary(tmp_path / "none.jsonl")["reward_first"] is None
