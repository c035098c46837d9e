"""Stage probes: the world-model accuracy of the checkpoint after each stage, and each RL stage's first and last step.

World-model accuracy is the share of next observations a checkpoint writes exactly. An item is a
D_world line cut before its observation, "world <state> act <action> ->"; the model continues it
greedily and the item counts when what it writes before its first newline (or end of sequence),
whitespace collapsed, is the observation. Two sets per task and seed:

- `familiar`: transitions of D_world's own exploration episodes (text the model was trained on).
- `heldout`: transitions of exploration episodes started at the dev split's instances (never
  test's), keeping only those whose context occurs in no training text of the task and seed
  (D_expert, D_look, D_world); `heldout_dropped` counts the distinct contexts dropped for occurring.

Each set holds up to `items` distinct contexts, drawn from the run seed's "world-model-*" streams.
Where a world's transitions are random (graph-nav's moves slip) no model scores 1 on either set.

A stage's result is cached as `<cache>/<stage hash>.probe.json`, beside the stage's folder and not
in it (stage.json checksums the folder's files), so a stage that several methods share is probed once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.agent import encode
from harness.core.config import Profile
from harness.core.store import atomic_write_text
from harness.core.streams import stream
from harness.core.traces import normalize, render_transition
from harness.data.recipes import Corpora, build_corpora
from harness.training.models import stop_token_ids
from harness.training.stages import stage_kind
from harness.training.train import Checkpoint, data_hash, load_checkpoint
from harness.training.work_folder import read_log
from tasks.base import EXPLORER_POLICIES, Episode, Task, explorer, play

WORLD_MODEL_ITEMS = 200
"""Default size of each set (familiar, heldout)."""
HELDOUT_PASSES = 8
"""Exploration episodes played from each dev instance (explorer policies in turn) for the held-out pool."""
PROBE_VERSION = "world-model-v2"
"""Bumped whenever items or scoring change, so cached probe files from before are recomputed."""
BATCH = 64
"""Contexts generated together (left-padded to the longest)."""


@dataclass(frozen=True)
class Transition:
    """One world-model item: the line's context and the observation that follows it."""

    context: str
    target: str


@dataclass(frozen=True)
class ProbeSets:
    """The two item sets of one task and seed, and how many held-out candidates occurred in training text."""

    familiar: list[Transition]
    heldout: list[Transition]
    heldout_dropped: int


def episode_transitions(task: Task, episodes: Sequence[Episode]) -> list[Transition]:
    """Returns the distinct transitions of `episodes` in order of first appearance (one per context)."""
    found: dict[str, Transition] = {}
    for episode in episodes:
        for state, action, observation in zip(episode.states, episode.actions, episode.observations):
            line = render_transition(task.describe(state), action, observation)
            context = line[: len(line) - len(observation)].rstrip()
            found.setdefault(context, Transition(context, observation))
    return list(found.values())


def training_text(corpora: Corpora) -> str:
    """Returns every row of D_expert, D_look and D_world, one after another, as one text to search."""
    return "\n".join(text for ds in (corpora.expert, corpora.look, corpora.world) for text in ds["text"])


def dev_episodes(task: Task, seed: int) -> list[Episode]:
    """Returns HELDOUT_PASSES exploration episodes from each dev instance, the explorer policies in turn."""
    dev = task.splits(seed).dev
    episodes = []
    for n in range(HELDOUT_PASSES * len(dev)):
        instance, policy = dev[n % len(dev)], EXPLORER_POLICIES[n % len(EXPLORER_POLICIES)]
        rng = stream(seed, "world-model-explore", n)
        episodes.append(play(task, instance, explorer(task, policy), rng, policy=policy))
    return episodes


def _draw(transitions: list[Transition], items: int, rng: np.random.Generator) -> list[Transition]:
    """Returns up to `items` of `transitions` drawn without replacement, in their original order."""
    if len(transitions) <= items:
        return list(transitions)
    return [transitions[i] for i in sorted(rng.choice(len(transitions), size=items, replace=False))]


def probe_sets(task: Task, corpora: Corpora, seed: int, items: int = WORLD_MODEL_ITEMS) -> ProbeSets:
    """Returns the familiar and held-out sets of `task` for `seed` (up to `items` each), and the count dropped."""
    text = training_text(corpora)
    candidates = episode_transitions(task, dev_episodes(task, seed))
    # Conservative on purpose: a context found anywhere in training text, even inside a longer line, is dropped.
    unseen = [t for t in candidates if t.context not in text]
    known = episode_transitions(task, corpora.world_episodes)
    familiar = _draw(known, items, stream(seed, "world-model-familiar"))
    heldout = _draw(unseen, items, stream(seed, "world-model-heldout"))
    return ProbeSets(familiar, heldout, len(candidates) - len(unseen))


@torch.no_grad()
def greedy_lines(model: Any, tokenizer: Any, contexts: Sequence[str], max_new_tokens: int) -> list[str]:
    """Returns the model's greedy continuation of each context up to its first newline or eos, whitespace collapsed.

    Contexts are left-padded in batches of BATCH; each is encoded as the agent loop encodes text
    (no special tokens).
    """
    model.eval()
    stops = stop_token_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    written = []
    for start in range(0, len(contexts), BATCH):
        encoded = [encode(tokenizer, c) for c in contexts[start : start + BATCH]]
        width = max(len(e) for e in encoded)
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], dtype=torch.long)
        out = model.generate(
            input_ids=ids.to(model.device),
            attention_mask=mask.to(model.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=pad,
        )
        for row in out[:, width:].tolist():
            cut = next((i for i, token in enumerate(row) if token in stops), len(row))
            written.append(normalize(tokenizer.decode(row[:cut], skip_special_tokens=True)))
    return written


def exact_share(items: Sequence[Transition], written: Sequence[str]) -> float | None:
    """Returns the share of items whose written line equals the target, whitespace collapsed; None for no items."""
    if not items:
        return None
    return sum(normalize(w) == normalize(t.target) for t, w in zip(items, written, strict=True)) / len(items)


Writer = Callable[[Sequence[str]], list[str]]
"""Writes a continuation per context (the model's greedy line, or a stub's in tests)."""


def accuracy(sets: ProbeSets, write: Writer) -> dict[str, Any]:
    """Returns {familiar, heldout, n_familiar, n_heldout, heldout_dropped}: `write`'s exact-match shares on each set."""
    familiar = exact_share(sets.familiar, write([t.context for t in sets.familiar]))
    heldout = exact_share(sets.heldout, write([t.context for t in sets.heldout]))
    return {
        "familiar": familiar,
        "heldout": heldout,
        "n_familiar": len(sets.familiar),
        "n_heldout": len(sets.heldout),
        "heldout_dropped": sets.heldout_dropped,
    }


def model_writer(model: Any, tokenizer: Any, sets: ProbeSets) -> Writer:
    """Returns the model's greedy writer, with room for the longest target plus the newline after it."""
    longest = max((len(encode(tokenizer, t.target)) for t in sets.familiar + sets.heldout), default=1)
    return lambda contexts: greedy_lines(model, tokenizer, contexts, longest + 1)


def stage_checkpoints(final: Checkpoint, hashes: Sequence[str], cache: Path) -> list[Checkpoint]:
    """Returns the checkpoint after each stage of a chain that ends at `final` (LoRA: the first i adapters)."""
    if final.adapters:
        return [Checkpoint(h, final.base, final.adapters[: i + 1]) for i, h in enumerate(hashes)]
    return [Checkpoint(h, cache / h) for h in hashes]


def stage_world_model(
    checkpoint: Checkpoint, cache: Path, sets: Callable[[], ProbeSets], items: int, loaded: tuple[Any, Any] | None
) -> dict[str, Any]:
    """Returns the world-model accuracy of one stage's checkpoint, from `<cache>/<hash>.probe.json` when it is there.

    The file holds the digest of the stage's stage.json it was made from: a stage deleted and
    retrained is probed afresh. `sets` is called only when the probe must run; `loaded` is
    (model, tokenizer) of this very checkpoint when the caller has it in memory already.
    """
    path = cache / f"{checkpoint.hash}.probe.json"
    marker = cache / checkpoint.hash / "stage.json"
    stage = hashlib.sha256(marker.read_bytes()).hexdigest() if marker.is_file() else None
    key = {"version": PROBE_VERSION, "items": items, "stage_json_sha256": stage}
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["world_model"]
    model, tokenizer = loaded or load_checkpoint(checkpoint)
    if loaded is None and torch.cuda.is_available():
        model = model.to("cuda")
    probe = sets()
    result = accuracy(probe, model_writer(model, tokenizer, probe))
    atomic_write_text(path, json.dumps({"key": key, "world_model": result}, indent=2, sort_keys=True) + "\n")
    return result


def rl_summary(log: Path) -> dict[str, Any]:
    """Returns the train-side reward and first-turn Brier at the first and last logged steps of a grpo stage's log.

    Steps are the log's records that carry a reward; a value not logged at that step is None.
    """
    steps = [r for r in read_log(log) if "reward" in r] if log.is_file() else []
    first, last = (steps[0], steps[-1]) if steps else ({}, {})
    return {
        "steps_logged": len(steps),
        "reward_first": first.get("reward"),
        "reward_last": last.get("reward"),
        "brier_first_step": first.get("train/p_first_brier"),
        "brier_last_step": last.get("train/p_first_brier"),
    }


_LAST_SETS: dict[tuple[str, int], ProbeSets] = {}
"""The probe sets last built in this process, by (data hash, items): one entry, as train.py keeps its corpora."""


def task_sets(task: Task, profile: Profile, seed: int, items: int) -> ProbeSets:
    """Returns the probe sets of `task` for `seed`, building its corpora unless this process built these sets last."""
    key = (data_hash(task, profile, seed), items)
    if key not in _LAST_SETS:
        # The corpora take seconds to build (about 13 s on the default profile); `reproduce` probes
        # every method of one task and seed in a row.
        _LAST_SETS.clear()
        _LAST_SETS[key] = probe_sets(task, build_corpora(task, profile.data, seed), seed, items)
    return _LAST_SETS[key]


def stage_probes(
    stages: Sequence[tuple[str, str, str]],
    final: Checkpoint,
    loaded: tuple[Any, Any],
    task: Task,
    profile: Profile,
    seed: int,
    cache: Path,
    items: int,
) -> dict[str, Any]:
    """Returns metrics.json's {"world_model": {stage: accuracy}, "rl": {grpo stage: rl_summary}} for a chain.

    `stages` lists (name, kind, hash) in chain order, ending at `final`, whose model and tokenizer
    `loaded` holds; each probe set holds up to `items` transitions.
    """
    checkpoints = stage_checkpoints(final, [h for _, _, h in stages], cache)
    sets = partial(task_sets, task, profile, seed, items)
    world_model = {}
    for i, ((name, _, _), checkpoint) in enumerate(zip(stages, checkpoints)):
        mine = loaded if i == len(stages) - 1 else None
        world_model[name] = stage_world_model(checkpoint, cache, sets, items, mine)
    rl = {name: rl_summary(cache / h / "log.jsonl") for name, kind, h in stages if stage_kind(kind).plays_episodes}
    return {"world_model": world_model, "rl": rl}
