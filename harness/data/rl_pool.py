"""The prompt pool of the RL stages (fc-rl, vanilla-rl): the train split, plus held-out-like instances.

Test holds instances that need parts of the world (a transition, a document, an intermediate
state) that no train expert episode shows; an agent fails on those far more often. On the train
split alone, RL looks where the agent mostly succeeds (kb-search's agent solved about 97% of its
train questions in a 300-step run), so a calibration reward has little to teach. With the grpo
setting `heldout_like_share` s > 0, s of the prompt rows GRPO samples from are held-out-like:
instances drawn the way exploration draws them (`task.sample_instance`), each kept only when

- its start key is not a dev or test instance's (nor a train one's, nor one already drawn), and
- it needs a part that no train expert episode shows (`task.required(instance)` minus what the
  expert episodes of the train split show is not empty),

so that s of what RL plays is like test's held-out half. GRPO samples uniformly among the rows of
its prompt set: one row per distinct train prompt (P of them), and each distinct held-out-like
prompt `copies` times. The pool draws up to s / (1 - s) * P such instances in at most DRAWS
draws; where the world holds fewer (graph-nav's held-out pockets give about 20 start-goal pairs
outside dev and test; benchmark files draw exploration from their train records, which the
experts show, so none), each found one is repeated so that the rows still hold the share s, and
the stage records how many were found. Draws are seeded by the split seed alone, so every RL
stage of a seed (fc-rl of each foresight variant, vanilla-rl) gets the very same pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.streams import stream
from harness.data.audit import CorpusAudit, check_clean
from harness.data.recipes import expert_shown
from tasks.base import Task, eval_keys, match_key, start_key

DRAWS = 10_000
"""Draws from the world before the pool keeps what it found (countdown's solvability check makes
each draw cost about 1 ms)."""


@dataclass(frozen=True)
class RlPool:
    """The instances RL draws prompts from, and which of them are held-out-like."""

    train: tuple
    heldout_like: tuple
    copies: int
    """Rows of each distinct held-out-like prompt in the prompt set (1 when there are none)."""
    wanted: int
    """How many held-out-like instances the share asked for (len(heldout_like) may be fewer)."""

    @property
    def instances(self) -> tuple:
        """Returns every instance of the pool (train, then held-out-like)."""
        return self.train + self.heldout_like

    @property
    def heldout_like_ids(self) -> frozenset[str]:
        """Returns the instance ids of the held-out-like instances."""
        return frozenset(inst.id for inst in self.heldout_like)

    def prompt_rows(self, task: Task) -> list[str]:
        """Returns GRPO's prompt set: each distinct train prompt once, each held-out-like one `copies` times."""
        plain = sorted({start_key(task, inst) for inst in self.train})
        return plain + sorted(start_key(task, inst) for inst in self.heldout_like for _ in range(self.copies))

    def summary(self) -> dict[str, int]:
        """Returns the pool's counts, as the stage records them."""
        return {
            "train_instances": len(self.train),
            "heldout_like": len(self.heldout_like),
            "heldout_like_wanted": self.wanted,
            "heldout_like_copies": self.copies,
        }


def rl_pool(task: Task, seed: int, share: float) -> RlPool:
    """Returns the RL prompt pool of `task` for split `seed` with `share` of its rows held-out-like (0 <= share < 1)."""
    splits = task.splits(seed)
    train = tuple(splits.train)
    if share <= 0:
        return RlPool(train, (), 1, 0)
    distinct = len({start_key(task, inst) for inst in train})
    wanted = max(1, round(distinct * share / (1 - share)))
    shown = expert_shown(task, seed)
    evals = eval_keys(task, splits)
    banned = evals | {match_key(task, inst) for inst in train}
    rng = stream(seed, "rl-pool")
    found: list[Any] = []
    keys: set[str] = set()
    for _ in range(DRAWS):
        if len(found) >= wanted:
            break
        instance = task.sample_instance(rng)
        key = match_key(task, instance)
        if key in banned or key in keys or task.required(instance) <= shown:
            continue
        found.append(instance)
        keys.add(key)
    # By construction no pool prompt is a dev or test instance's; the audit's own check says so too.
    pool_keys = [match_key(task, inst) for inst in train + tuple(found)]
    check_clean(task, seed, [CorpusAudit("rl-prompts", len(pool_keys), sum(k in evals for k in pool_keys), 0.0)])
    copies = max(1, round(wanted / len(found))) if found else 1
    return RlPool(train, tuple(found), copies, wanted)
