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
    on the way elsewhere (a graph-nav node with the same goal and turns left, say).

The corpora: D_expert and D_look (expert episodes), D_world (exploration episodes and the
D_expert episodes mixed into it), the RL prompt pool of fc-rl and vanilla-rl, and the few-shot
pool of react-prompt. The last two are the train split itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.core.errors import HarnessError
from tasks.base import Episode, Splits, Task, eval_keys, match_key, normalized_text


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
    pool_keys = [match_key(task, inst) for inst in splits.train]
    starts = {
        "D_expert": (expert_keys, texts["D_expert"]),
        "D_look": (expert_keys, texts["D_look"]),
        "D_world": (world_keys, texts["D_world"]),
        "rl-prompts": (pool_keys, pool_keys),
        "few-shot": (pool_keys, pool_keys),
    }
    return [
        CorpusAudit(name, len(keys), sum(k in banned for k in keys), _share_in_text(text, task, splits))
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
        f"(must be 0); eval start states anywhere in its text={a.eval_states_in_text:.0%}"
        for a in audits
    ]
