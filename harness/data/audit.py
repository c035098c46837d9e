"""The contamination audit: no dev or test instance may reach any training corpus (docs/design.md#data-recipes).

An instance is identified by what the agent sees at reset, its prompt (`tasks.base.start_key`), compared
in a normalised form (`tasks.base.match_key`: case, punctuation and spacing dropped, words and numbers
kept), so that a surface variant of a test question ("what is 3 + 4 ?" for "What is 3 + 4?") matches it.
For every training corpus of a task and seed the audit counts

(a) `eval_starts`: training episodes that start at a dev or test instance. It must be 0:
    `build_corpora` refuses (HarnessError, exit 2) otherwise, so no stage ever trains on such data;
(b) `eval_states_in_text`: the share of dev and test initial states whose text appears anywhere in
    the corpus text: the prompt as a whole line, or the state as D_world describes it as whole words.
    Reported, not required to be 0: exploration may pass through a test instance's start state
    on the way elsewhere (a graph-nav node with the same goal and turns left, say). Two wider
    matches are counted beside it, over the same instances:
    `counter_free`: the start state as D_world describes it whatever its turn counter says (the
    description's last word, by the Task protocol: a graph-nav `goal n7 at n3 left 4` matches a
    start with 6 left);
    `overlapping`: the instance's question overlaps a training text by the task's own rule
    (`overlap_patterns`, optional: a kb-search question inside a longer question, or one of its
    sub-questions asked, which a text holding the question itself does too); tasks without the
    hook count 0.

The corpora: D_expert and D_look (expert episodes), D_world (exploration episodes and the
D_expert episodes mixed into it), the RL prompt pool of fc-rl and vanilla-rl, and the few-shot
pool of react-prompt. The last two are the train split itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.core.errors import HarnessError
from tasks.base import Episode, Splits, Task, eval_keys, normalized_text, start_key


@dataclass(frozen=True)
class CorpusAudit:
    """The audit of one training corpus."""

    corpus: str
    episodes: int
    """Training episodes (or prompts) the corpus starts."""
    eval_starts: int
    """(a) Of those, how many start at a dev or test instance (must be 0)."""
    eval_states_in_text: float
    """(b) Share of dev and test initial states whose text appears anywhere in the corpus text."""
    counter_free: int = 0
    """(b) Dev and test instances whose start state appears in the text with any turn counter."""
    overlapping: int = 0
    """(b) Dev and test instances whose question overlaps a training question (the task's overlap_patterns)."""
    evaluated: int = 0
    """The dev and test instances (b) counts over."""


def counter_free_pattern(description: str) -> str:
    """Returns a regex of a state description with its last word (the turns-left counter) any number."""
    head, _, _ = description.rpartition(" ")
    return rf"(?<!\S){re.escape(head)} \d+(?!\S)"


def wider_matches(texts: list[str], task: Task, splits: Splits) -> tuple[int, int]:
    """Returns how many dev and test instances match `texts` (counter_free, overlapping); see the module doc."""
    joined = "\n".join(texts)
    overlap = getattr(task, "overlap_patterns", None)
    free = overlapping = 0
    for instance in (*splits.dev, *splits.test):
        free += bool(re.search(counter_free_pattern(task.describe(task.reset(instance))), joined))
        if overlap is not None:
            overlapping += any(re.search(pattern, joined, re.MULTILINE) for pattern in overlap(instance))
    return free, overlapping


def _share_in_text(texts: list[str], task: Task, splits: Splits) -> float:
    """Returns the share of dev and test initial states whose prompt or description occurs in `texts` as whole words."""
    joined = "\n".join(texts)
    evals = (*splits.dev, *splits.test)
    found = 0
    for instance in evals:
        state = task.reset(instance)
        # The prompt as a whole line (as agent texts hold it: a kb-search question is not found
        # inside a longer question that starts with it), the description as whole words (D_world).
        prompt = rf"^{re.escape(task.prompt(state))}$"
        described = rf"(?<!\S){re.escape(task.describe(state))}(?!\S)"
        if re.search(prompt, joined, re.MULTILINE) or re.search(described, joined):
            found += 1
    return found / len(evals) if evals else 0.0


def audit_corpora(
    task: Task,
    splits: Splits,
    expert: list[Episode],
    world: list[Episode],
    texts: dict[str, list[str]],
    world_expert_ids: list[str],
) -> list[CorpusAudit]:
    """Returns the audit of every training corpus of one task and seed.

    `texts` maps D_expert, D_look and D_world to their rows' text; `world_expert_ids` are the
    instance ids of the D_expert episodes mixed into D_world.
    """
    banned = eval_keys(task, splits)
    prompt_of = {e.instance_id: normalized_text(e.prompt) for e in expert}
    expert_keys = [normalized_text(e.prompt) for e in expert]
    world_keys = [normalized_text(e.prompt) for e in world] + [prompt_of[i] for i in world_expert_ids]
    pool_prompts = [start_key(task, inst) for inst in splits.train]
    pool_keys = [normalized_text(prompt) for prompt in pool_prompts]
    starts = {
        "D_expert": (expert_keys, texts["D_expert"]),
        "D_look": (expert_keys, texts["D_look"]),
        "D_world": (world_keys, texts["D_world"]),
        "rl-prompts": (pool_keys, pool_prompts),
        "few-shot": (pool_keys, pool_prompts),
    }
    evaluated = len(splits.dev) + len(splits.test)
    return [
        CorpusAudit(
            name,
            len(keys),
            sum(k in banned for k in keys),
            _share_in_text(text, task, splits),
            *wider_matches(text, task, splits),
            evaluated,
        )
        for name, (keys, text) in starts.items()
    ]


def check_clean(task: Task, seed: int, audits: list[CorpusAudit]) -> None:
    """Raises HarnessError naming the first corpus whose training episodes start at dev or test instances."""
    for a in audits:
        if a.eval_starts:
            raise HarnessError(
                f"contamination: {a.corpus} of {task.name} seed {seed} starts {a.eval_starts} training episode(s) "
                "at dev/test instances; no evaluation instance may reach a training corpus"
            )


def audit_lines(audits: list[CorpusAudit]) -> list[str]:
    """Returns the audit as the lines `harness data build` prints."""
    return [
        f"audit     {a.corpus:<10} episodes={a.episodes:<6} eval instances starting one={a.eval_starts} "
        f"(must be 0); eval start states anywhere in its text={a.eval_states_in_text:.0%}; "
        f"of {a.evaluated} eval instances: start state at any turn counter {a.counter_free}, "
        f"question overlapping a training one {a.overlapping}"
        for a in audits
    ]
