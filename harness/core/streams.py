"""Named random streams: every random draw of the package comes from one of them (docs/design.md#randomness).

`stream(seed, name, *indices)` returns the generator of stream `name` for a seed and, where a stream
has one draw per episode, step or process, the indices that pick it. Its entropy is the numpy
SeedSequence of [seed, id, number of indices, *indices], where `id` is the first 32 bits of the
SHA-256 of the name: two names, or one name with two different index tuples, never share a stream.
`int_seed` turns the same entropy into one 32-bit integer for the libraries that take an int
(torch's generators, transformers' TrainingArguments).
"""

from __future__ import annotations

import hashlib

import numpy as np

from harness.core.errors import HarnessError

STREAM_TABLE: tuple[tuple[str, str], ...] = (
    # data recipes (harness/data/recipes.py), all from the run seed
    ("expert-episodes", "the noisy expert's episode on train instance i (D_expert, D_look, the expert-shown parts)"),
    ("world-episodes", "exploration episode i of D_world"),
    ("world-outcomes", "which D_world steps are followed by their simulated outcomes"),
    ("mixed-rows", "the order in which a mixed stage takes D_world and D_look rows"),
    ("rl-pool", "the held-out-like prompts drawn from the world for the RL pool (harness/data/rl_pool.py)"),
    # training
    ("tiny-init", "the initial weights of the tiny model"),
    ("sft-order", "the fixed order of length-grouped SFT batches"),
    ("trainer", "the seed transformers' Trainer and TRL take (their sampler, dropout)"),
    ("rl-rollouts", "the world noise of GRPO episode i of optimizer step s"),
    ("rl-tokens", "the token-sampling seed of one GRPO rollout call (step) of one process"),
    ("rl-rewards", "the simulated fidelity outcomes of one GRPO rollout call (step) of one process"),
    # evaluation
    ("eval-world", "the world noise of test (or dev) episode i, the same for every method"),
    ("eval-candidates", "the world noise of the sampled first-move candidates of instance i"),
    ("eval-candidate-tokens", "the token-sampling seed of candidate round c"),
    ("eval-records", "the simulated outcomes a run's episode records score fidelity against"),
    ("few-shot", "the expert episodes shown as a few-shot prefix"),
    ("probe-items", "the exploration episode behind lm-eval probe item i"),
    ("probe-outcomes", "the outcome drawn for lm-eval probe item i"),
    ("world-model-explore", "dev exploration episode n of the world-model probe"),
    ("world-model-familiar", "which familiar transitions the world-model probe keeps"),
    ("world-model-heldout", "which held-out transitions the world-model probe keeps"),
    # statistics (seeded by the bootstrap seed, 0 by default, not by a run seed)
    ("bootstrap-compare", "the resamples of harness compare's paired table"),
    ("bootstrap-heldout-gap", "the resamples of the held-out gap table"),
    ("bootstrap-level", "the resamples of the table against a stated bar"),
    ("bootstrap-success", "the resamples of a success rate's CI"),
    # generated benchmark files (harness data synth), from --seed
    ("synth-gsm8k", "the generated GSM8K-schema questions"),
    ("synth-hotpotqa", "the generated HotpotQA-schema questions and their paragraphs' order"),
    # tasks: worlds from the task's world_seed or split_seed, splits from the run seed
    ("graph-nav-world", "graph-nav's graph, from world_seed"),
    ("graph-nav-split", "graph-nav's train/dev/test instances of a run seed, from world_seed"),
    ("kb-search-world", "kb-search's knowledge base, from world_seed"),
    ("kb-search-split", "kb-search's train/dev/test questions of a run seed, from world_seed"),
    ("countdown-pool", "countdown's pool of solvable deals of a run seed"),
    ("countdown-probe", "the exploration episodes countdown ranks held-out instances by"),
    ("countdown-order", "the order of countdown's instances within each split"),
    ("countdown-deal", "which familiar and held-out countdown instances go to dev and which to test"),
    ("benchmark-test-pool", "a benchmark file's test pool when it has no test split, from split_seed"),
    ("benchmark-train", "the train instances of a run seed drawn from a benchmark's train pool"),
    ("deterministic-step", "the generator handed to a deterministic task's step, which draws nothing from it"),
)
"""Every stream: its name (what it draws) and what it is for. One line per stream, never two of one name."""

WORD = 1 << 32
"""Seeds and indices are 32-bit words, so that [seed, id, count, *indices] is one word per part."""


def stream_id(name: str) -> int:
    """Returns the 32-bit id of a stream name: the first four bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def build_table(entries: tuple[tuple[str, str], ...]) -> dict[str, int]:
    """Returns name -> id; ValueError on a name listed twice or two names with one id."""
    table: dict[str, int] = {}
    owners: dict[int, str] = {}
    for name, _ in entries:
        if name in table:
            raise ValueError(f"random stream {name!r} is listed twice in harness/core/streams.py")
        sid = stream_id(name)
        if sid in owners:
            raise ValueError(f"random streams {owners[sid]!r} and {name!r} have the same id {sid}: rename one")
        table[name], owners[sid] = sid, name
    return table


STREAMS: dict[str, int] = build_table(STREAM_TABLE)
"""Stream name -> id, checked at import."""


def _entropy(seed: int, name: str, indices: tuple[int, ...]) -> list[int]:
    """Returns [seed, id, len(indices), *indices]; HarnessError on an unknown name or a value off 32 bits."""
    if name not in STREAMS:
        raise HarnessError(f"unknown random stream {name!r}: add it to harness/core/streams.py")
    for value in (seed, *indices):
        if not 0 <= int(value) < WORD:
            raise HarnessError(f"seed and stream indices must lie in [0, 2**32), got {value} for stream {name!r}")
    # The count keeps (s, name) apart from (s, name, 0): SeedSequence pads short entropy with zeros.
    return [int(seed), STREAMS[name], len(indices), *(int(i) for i in indices)]


def stream(seed: int, name: str, *indices: int) -> np.random.Generator:
    """Returns the generator of stream `name` for `seed` and `indices` (the same arguments, the same draws)."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, name, indices)))


def int_seed(seed: int, name: str, *indices: int) -> int:
    """Returns a 32-bit integer seed of stream `name` for `seed` and `indices`, for libraries that take an int.

    32 bits because torch's CPU generator keeps only the low 32 bits of a seed.
    """
    return int(np.random.SeedSequence(_entropy(seed, name, indices)).generate_state(1)[0])
