"""Stages: (input checkpoint, data recipe, trainer settings) -> checkpoint, cached by content hash.

A stage's hash covers its kind, data recipe, agent format, rewards, trainer settings, the hash of
its input checkpoint and the hash of its data (task, knobs, data spec, seed). Methods that share a
prefix of stages therefore share the checkpoints (vanilla-rl reuses react's sft; the ablations
reuse foresight's stages). A finished stage directory holds the HF checkpoint, `log.jsonl` (loss,
reward and tokens seen per logged step), `tensorboard/` and `stage.json`, written last with the
sha256 of every other file in the directory, at any depth (`files`, by relative path): a directory
without it is not a finished stage, and one with a file missing, changed or not listed is corrupt.
A finished stage is never changed in place: a corrupt one is reported (the command exits 2 naming
the file) and retrained only once the user has deleted it. A stage.json written before full
checksums lists the weight files alone (`checksums`): those are verified, and the first read in a
process says in one line that its other files are not checked.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.fields import as_dict, build_dataclass, config_hash, doc
from harness.core.traces import FORMAT_VERSION

DATA_RECIPES = ("expert", "look", "world", "world:<tokens>+look:<tokens>", "prompts")
"""What a stage trains on; the mixed recipe names the tokens it draws from each corpus."""
BOARD_DIR = "tensorboard"
"""Where a stage's TensorBoard event files go, beside its log.jsonl (outputs only: nothing reads them back)."""
_MIXED = re.compile(r"^world:(\d+)\+look:(\d+)$")


def mixed_recipe(world_tokens: int, look_tokens: int) -> str:
    """Returns the recipe of one shuffled stage of D_world (full LM loss) and D_look (agent-token loss) rows."""
    return f"world:{world_tokens}+look:{look_tokens}"


def parse_mixed(recipe: str) -> tuple[int, int] | None:
    """Returns (world tokens, look tokens) of a mixed recipe, or None for any other recipe."""
    match = _MIXED.match(recipe)
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class SftSettings:
    """Trainer settings of an sft or wm-amt stage (TRL SFTTrainer)."""

    tokens: int = doc(200_000, "training budget in tokens (every token in the batches, context included)", ge=1)
    lr: float = doc(1e-3, "peak learning rate (cosine schedule)", gt=0.0)
    batch_size: int = doc(16, "sequences per optimizer step", ge=1)
    warmup_ratio: float = doc(0.05, "share of steps spent warming up", ge=0.0, lt=1.0)
    weight_decay: float = doc(0.0, "AdamW weight decay", ge=0.0)
    max_length: int = doc(1024, "longest sequence in tokens; longer ones are truncated", ge=1)
    group_by_length: bool = doc(
        True, "batch examples of similar length (within random groups of 50 batches' worth) to cut padding"
    )
    save_every: int = doc(100, "steps between resumable TRL checkpoints", ge=1)
    p_smoothing: float = doc(
        0.0,
        "label smoothing at the p value token: this share of the target goes to the values 0.1 away"
        " (0 = plain cross-entropy; below 0.5, so greedy decoding still writes the target)",
        ge=0.0,
        lt=0.5,
    )


@dataclass(frozen=True)
class GrpoSettings:
    """Trainer settings of a grpo stage (TRL GRPOTrainer with our multi-turn rollout_func)."""

    steps: int = doc(20, "optimizer steps", ge=1)
    prompts_per_step: int = doc(4, "distinct train instances per step", ge=1)
    num_generations: int = doc(8, "episodes per instance (the GRPO group; its advantages need two or more)", ge=2)
    lr: float = doc(5e-5, "learning rate", gt=0.0)
    temperature: float = doc(1.0, "sampling temperature of the rollouts", gt=0.0)
    beta: float = doc(0.0, "KL coefficient against the reference model (0 = no reference model)", ge=0.0)
    max_turn_tokens: int = doc(40, "longest agent turn in tokens", ge=1)
    lambda_success: float = doc(
        1.0, "weight of the success reward (0 leaves calibration and fidelity alone: the mechanism check)", ge=0.0
    )
    p_temperature: float | None = doc(
        None,
        "rollouts sample the token after the word `p` among the values 0.0 ... 1.0 at this temperature "
        "(log-probabilities at the same temperature, so the GRPO ratio stays exact); None: as any token",
        gt=0.0,
    )
    p_only: bool = doc(
        False,
        "the loss reaches the p value tokens the calibration reward scores alone (those of turns whose block"
        " parsed; every other written token's mask 0): the reward's credit then cannot train the actions to fit p"
        " (the mechanism check, docs/calibration.md); needs one-token p values",
    )
    heldout_like_share: float = doc(
        0.0,
        "share of the prompt pool drawn held-out-like: outside dev and test, needing a part of the world no"
        " train expert episode shows (harness/data/rl_pool.py); 0 = the train split alone",
        ge=0.0,
        lt=1.0,
    )
    scale_rewards: str = doc(
        "group",
        "TRL's advantage scaling: group (divide by each group's reward std, GRPO), batch (by the batch's), or"
        " none (Dr. GRPO: the unbiased estimate of the expected-reward gradient; see docs/calibration.md)",
        choices=("group", "batch", "none"),
    )
    lambda_cal: float = doc(0.5, "weight of the calibration reward 1 - (p - outcome)^2", ge=0.0)
    lambda_fid: float = doc(0.5, "weight of the rollout-fidelity reward", ge=0.0)
    save_every: int = doc(10, "steps between resumable TRL checkpoints", ge=1)


@dataclass(frozen=True)
class StageSpec:
    """One stage of a method, as data."""

    name: str
    """Display name (wm-amt, fe-sft, fc-rl, sft, rl); not part of the hash."""
    kind: str
    data: str
    fmt: str
    """Agent format the stage trains (react | foresight); wm-amt trains plain text."""
    settings: SftSettings | GrpoSettings


GRPO_EPISODE_TOKENS = 250
"""Cost of one GRPO episode in sft tokens, for ordering work only (measured: a 20-step, 640-episode
fc-rl stage takes about as long as 160k sft tokens on the default model)."""


def _sft_cost(settings: SftSettings) -> int:
    return settings.tokens


def _grpo_cost(settings: GrpoSettings) -> int:
    return settings.steps * settings.prompts_per_step * settings.num_generations * GRPO_EPISODE_TOKENS


def _sft_budget(settings: SftSettings) -> str:
    return f"{settings.tokens} tokens"


def _grpo_budget(settings: GrpoSettings) -> str:
    return f"{settings.steps} steps"


def _sft_batch(settings: SftSettings) -> tuple[int, str]:
    return settings.batch_size, "batch_size"


def _grpo_batch(settings: GrpoSettings) -> tuple[int, str]:
    return settings.prompts_per_step * settings.num_generations, "prompts_per_step * num_generations"


@dataclass(frozen=True)
class StageKind:
    """A kind of stage: its settings class, what it trains on, its batch per optimizer step and its trainer."""

    name: str
    settings: type[SftSettings] | type[GrpoSettings]
    plays_episodes: bool
    """True: it plays episodes of the task's prompts itself (grpo builds its prompt pool in every process;
    its log has the RL step numbers); False: it trains on the rows of its data recipe (`stage_rows`)."""
    step_batch: Callable[[Any], tuple[int, str]]
    """(sequences per optimizer step, the settings that make it), split evenly over a launch's processes."""
    cost: Callable[[Any], int]
    """A rough cost of a stage in sft tokens, for ordering work only (harness.running)."""
    budget: Callable[[Any], str]
    """The stage's budget in words, as `harness methods list` shows it ("200000 tokens", "20 steps")."""
    fit: str
    """`module:function` that trains a stage of the kind, `fit(job, model, tokenizer, task) -> stats`; imported
    only when a stage trains (TRL is slow to import)."""

    def trainer(self) -> Callable[..., dict[str, Any]]:
        """Returns the kind's fit function, importing its module."""
        module, _, function = self.fit.partition(":")
        return getattr(importlib.import_module(module), function)


KINDS = {
    kind.name: kind
    for kind in (
        StageKind("sft", SftSettings, False, _sft_batch, _sft_cost, _sft_budget, "harness.training.sft:fit_agentic"),
        StageKind(
            "wm-amt", SftSettings, False, _sft_batch, _sft_cost, _sft_budget, "harness.training.sft:fit_full_text"
        ),
        StageKind("grpo", GrpoSettings, True, _grpo_batch, _grpo_cost, _grpo_budget, "harness.training.grpo:fit_grpo"),
    )
}
"""The stage kinds: sft (agentic SFT, loss on agent tokens), wm-amt (full LM loss on text), grpo (RL through
our agent loop). A new kind is a trainer module with its fit function and one entry here."""


def stage_kind(name: str) -> StageKind:
    """Returns the registered stage kind `name`; HarnessError for an unknown one."""
    if name not in KINDS:
        raise HarnessError(f"unknown stage kind {name!r} (known: {', '.join(KINDS)})")
    return KINDS[name]


def stage_cost(spec: StageSpec) -> int:
    """Returns a rough cost of a stage in sft tokens (its kind's `cost`), for ordering work only."""
    return stage_kind(spec.kind).cost(spec.settings)


def settings_for(kind: str, values: dict[str, Any] | None, where: str) -> SftSettings | GrpoSettings:
    """Returns the trainer settings of a stage kind from a profile mapping; HarnessError on a bad key or value.

    Each field's `doc(...)` above gives its range (budgets and batch sizes >= 1, lr > 0, shares in [0, 1)).
    """
    return build_dataclass(stage_kind(kind).settings, dict(values or {}), where)


ADDED_SETTINGS = {
    "lambda_success": 1.0,
    "p_temperature": None,
    "p_only": False,
    "heldout_like_share": 0.0,
    "scale_rewards": "group",
}
"""Settings added after caches existed, with the value that behaves as before: at that value a setting
is left out of the stage hash, so checkpoints trained before it existed keep their keys."""


P_ONLY_MASK = "scored-turns"
"""What `p_only` keeps, in the hash in place of True: the p of turns whose block parsed (session 11; the
first version kept every p value written), so a stage trained under the first mask is never reused."""


def hashed_settings(settings: SftSettings | GrpoSettings) -> dict[str, Any]:
    """Returns the settings that go into a stage's hash: all but ADDED_SETTINGS at their old behaviour."""
    values = as_dict(settings)
    if values.get("p_only"):
        values["p_only"] = P_ONLY_MASK
    return {k: v for k, v in values.items() if not (k in ADDED_SETTINGS and v == ADDED_SETTINGS[k])}


def stage_hash(spec: StageSpec, input_hash: str, data_hash: str) -> str:
    """Returns the cache key of a stage: everything it depends on, but not its display name."""
    settings = hashed_settings(spec.settings)
    return config_hash("stage-v2", FORMAT_VERSION, spec.kind, spec.data, spec.fmt, settings, input_hash, data_hash)


MARKER = "stage.json"
"""The file a finished stage's directory gets last: its info, stats and the checksums of its other files."""
_NOTED_LEGACY: set[Path] = set()


def file_checksums(directory: Path, skip: str = MARKER) -> dict[str, str]:
    """Returns the sha256 of every file under `directory`, at any depth, by posix path relative to it, but `skip`."""
    sums = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_file() and name != skip:
            sums[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def weight_checksums(directory: Path) -> dict[str, str]:
    """Returns the sha256 of every weight file (safetensors or bin) in `directory`: what a stage.json before
    full checksums lists."""
    sums = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in (".safetensors", ".bin") and path.is_file():
            sums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def checksum_problem(found: dict[str, str], stored: dict[str, str], listing: str) -> str | None:
    """Returns the first file of `stored` missing or changed in `found`, or of `found` not in `stored`, as a
    phrase naming `listing` (the file that holds `stored`); None when the two agree."""
    for name, digest in sorted(stored.items()):
        if name not in found:
            return f"{name} is missing"
        if found[name] != digest:
            return f"{name} does not match the sha256 in {listing}"
    extra = sorted(set(found) - set(stored))
    return f"{extra[0]} is not listed in {listing}" if extra else None


def stage_problem(directory: Path) -> str | None:
    """Returns why a stage directory that has its stage.json is corrupt, or None when its files check out."""
    try:
        info = json.loads((directory / MARKER).read_text())
        stored = info["files"] if "files" in info else info["checksums"]
        if not isinstance(stored, dict) or not stored:
            return f"{MARKER} lists no checksums"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MARKER} is unreadable"
    if "files" in info:
        return checksum_problem(file_checksums(directory), stored, MARKER)
    problem = checksum_problem(weight_checksums(directory), stored, MARKER)
    if problem is None and directory not in _NOTED_LEGACY:
        _NOTED_LEGACY.add(directory)
        print(
            f"note: {directory / MARKER} predates full checksums: its weights check out, its other files are"
            " not checked (delete the directory to retrain it with them)",
            file=sys.stderr,
        )
    return problem


def stage_status(directory: Path) -> str:
    """Returns 'missing', 'complete' or 'corrupt' for a stage directory in the cache."""
    if not (directory / MARKER).exists():
        return "missing"
    return "corrupt" if stage_problem(directory) else "complete"
