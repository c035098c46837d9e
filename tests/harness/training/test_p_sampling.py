"""An explorable p: the rollout sampler and the trainer's log-probabilities are the same distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.agent import Sampling, run_episodes
from harness.core.config import load_profile
from harness.core.errors import HarnessError
from harness.core.fields import as_dict, config_hash
from harness.core.registry import make_task
from harness.core.traces import FORMAT_VERSION, P_WORDS
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer, stop_token_ids
from harness.training.p_sampling import p_token_ids, p_value_mask, tempered_logps
from harness.training.stages import GrpoSettings, StageSpec, settings_for, stage_hash
from harness.training.train import suite_vocabulary

MAIN_GRPO_FIELDS = ["steps", "prompts_per_step", "num_generations", "lr", "temperature", "beta", "max_turn_tokens",
                    "lambda_cal", "lambda_fid", "save_every"]  # fmt: skip
"""GrpoSettings before lambda_success and p_temperature existed."""


def test_tempered_logps_by_hand() -> None:
    """Vocabulary of 4: token 1 is the marker, tokens 2 and 3 the values. After the marker only 2 and 3
    count, at p_temperature 2; elsewhere every token at temperature 1."""
    logits = torch.tensor([[[0.0, 1.0, 2.0, 4.0], [1.0, 0.0, 3.0, 5.0], [0.0, 0.0, 0.0, 0.0]]])
    ids = torch.tensor([[0, 1, 3]])  # the model wrote the marker, then value 3
    logp, entropy = tempered_logps(logits, ids, 2, 1.0, 2.0, marker=1, values=(2, 3), compute_entropy=True)
    first = 1.0 - math.log(sum(math.exp(x) for x in (0.0, 1.0, 2.0, 4.0)))  # marker at temperature 1
    second = 5.0 / 2 - math.log(math.exp(3.0 / 2) + math.exp(5.0 / 2))  # value 3 among {2, 3} at 2
    assert logp[0].tolist() == pytest.approx([first, second], abs=1e-6)
    q = math.exp(second)
    assert float(entropy[0, 1]) == pytest.approx(-(q * math.log(q) + (1 - q) * math.log(1 - q)), abs=1e-6)


def test_a_world_token_after_the_marker_scores_zero_not_minus_infinity() -> None:
    logits = torch.zeros(1, 3, 4)
    logp, _ = tempered_logps(logits, torch.tensor([[0, 1, 0]]), 2, 1.0, 2.0, marker=1, values=(2, 3))
    assert torch.isfinite(logp).all() and float(logp[0, 1]) == 0.0


@pytest.fixture(scope="module")
def chatty_p():
    """A random tiny model that writes the word `p` often (its tied embedding row scaled up)."""
    profile = load_profile("smoke")
    tokenizer = build_tokenizer(suite_vocabulary(profile))
    model = build_tiny_model(ModelConfig(32, 2, 2, 64, 512), tokenizer, seed=0)
    marker, values = p_token_ids(tokenizer)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        for p in model.parameters():
            p.normal_(0.0, 0.3)
        model.get_input_embeddings().weight[marker] *= 4.0
    model.eval()
    return model, tokenizer, make_task("graph-nav", profile.tasks["graph-nav"]), marker, values


def test_rollout_logprobs_are_the_trainers_at_every_written_token(chatty_p) -> None:
    model, tokenizer, task, marker, values = chatty_p
    instances = task.splits(0).train[:12]
    sampling = Sampling(1.0, 16, seed=5, p_temperature=3.0, p_marker=marker, p_values=values)
    rngs = [np.random.default_rng([5, i]) for i in range(len(instances))]
    episodes = run_episodes(model, tokenizer, task, instances, rngs, "foresight", sampling, stop_token_ids(tokenizer))
    after_marker = 0
    for ep in episodes:
        ids = torch.tensor([ep.prompt_ids + ep.completion_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        logp, _ = tempered_logps(logits, ids, len(ep.completion_ids), 1.0, 3.0, marker, values)
        written = [j for j, m in enumerate(ep.env_mask) if m]
        assert logp[0, written].tolist() == pytest.approx([ep.logprobs[j] for j in written], abs=1e-4)
        for j in written:
            if j and ep.completion_ids[j - 1] == marker and ep.env_mask[j - 1]:
                after_marker += 1
                assert ep.completion_ids[j] in values  # sampled among the values only
    assert after_marker >= 10, "the fixture should write p often"


def test_without_p_temperature_the_sampler_is_unchanged(chatty_p) -> None:
    model, tokenizer, task, marker, values = chatty_p
    instances = task.splits(0).train[:6]

    def play(sampling: Sampling) -> list[list[int]]:
        rngs = [np.random.default_rng([9, i]) for i in range(len(instances))]
        eps = run_episodes(model, tokenizer, task, instances, rngs, "foresight", sampling, stop_token_ids(tokenizer))
        return [e.completion_ids for e in eps]

    plain = play(Sampling(1.0, 16, seed=2))
    assert play(Sampling(1.0, 16, seed=2, p_marker=marker, p_values=values)) == plain
    assert play(Sampling(1.0, 16, seed=2, p_temperature=3.0, p_marker=marker, p_values=values)) != plain


def test_new_grpo_settings_at_their_old_behaviour_keep_the_stage_hash() -> None:
    spec = StageSpec("fc-rl", "grpo", "prompts", "foresight", GrpoSettings(steps=7))
    old = {k: v for k, v in as_dict(spec.settings).items() if k in MAIN_GRPO_FIELDS}
    assert list(old) == MAIN_GRPO_FIELDS
    assert stage_hash(spec, "in", "data") == config_hash("stage-v2", FORMAT_VERSION, "grpo", "prompts", "foresight",
                                                        old, "in", "data")  # fmt: skip
    hot = StageSpec("fc-rl", "grpo", "prompts", "foresight", GrpoSettings(steps=7, p_temperature=3.0))
    zero = StageSpec("fc-rl", "grpo", "prompts", "foresight", GrpoSettings(steps=7, lambda_success=0.0))
    only = StageSpec("fc-rl", "grpo", "prompts", "foresight", GrpoSettings(steps=7, p_only=True))
    assert len({stage_hash(s, "in", "data") for s in (spec, hot, zero, only)}) == 4
    # p_only's first mask (every p value written) hashed as True; the parsed-turns mask must not reuse it.
    first_mask = {**old, "p_only": True}
    first = config_hash("stage-v2", FORMAT_VERSION, "grpo", "prompts", "foresight", first_mask, "in", "data")
    assert stage_hash(only, "in", "data") != first


def test_p_only_keeps_the_value_written_after_the_marker_and_nothing_else() -> None:
    marker, values = 9, (20, 21, 22)
    # think plan a ; p 0.1 act a | obs p 0.2 (the world's) | p 7 (not a value) p 0.2
    ids = [3, 4, 5, 9, 21, 6, 5, 1, 9, 22, 9, 7, 9, 22]
    env = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1]
    assert p_value_mask(ids, env, marker, values) == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    # A value the world wrote after the model's marker is not the model's estimate.
    assert p_value_mask([9, 21], [1, 0], marker, values) == [0, 0]


def test_p_only_leaves_out_the_p_of_a_turn_the_reward_does_not_score() -> None:
    marker, values = 9, (20, 21, 22)
    # turn 0: think p 0.1 act | obs | turn 1 (does not parse): p 0.2 p 0.0 | obs | turn 2: p 0.2
    ids = [3, 9, 21, 6, 1, 9, 22, 9, 20, 1, 2, 9, 22]
    env = [1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1]
    assert p_value_mask(ids, env, marker, values) == [0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1]
    assert p_value_mask(ids, env, marker, values, [True, False, True]) == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert p_value_mask(ids, env, marker, values, [False, True, False]) == [0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]


def test_bad_p_temperature_and_tokenizers_fail_in_one_line() -> None:
    with pytest.raises(HarnessError, match="p_temperature must be > 0"):
        settings_for("grpo", {"p_temperature": 0}, "stages.fc-rl")

    class Bpe:
        unk_token_id = 0

        def convert_tokens_to_ids(self, word: str) -> int:
            return 0 if word in P_WORDS else 5

    with pytest.raises(HarnessError, match="single tokens"):
        p_token_ids(Bpe())
