"""gsm8k and hotpotqa in the data pipeline: no dev or test question reaches a training corpus, and
D_look's p comes from the reference policy (harness.data.audit, harness.data.reference)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.data.recipes import build_corpora, corpus_stats
from tasks.base import eval_keys, start_key
from tests.synth_data import synth_folder

SMOKE = load_profile("smoke")


@pytest.mark.parametrize("name", ["gsm8k", "hotpotqa"])
def test_a_test_question_copied_into_train_is_dropped_and_the_audit_is_clean(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    shutil.copytree(synth_folder(name), folder)
    test_lines = (folder / "test.jsonl").read_text().splitlines()
    with (folder / "train.jsonl").open("a") as f:
        f.write("\n".join(test_lines[:3]) + "\n")  # three test records verbatim in the train file
    task = make_task(name, {"data": str(folder), "n_train": 6, "n_dev": 3, "n_test": 6})
    assert task.record_report()["duplicates_dropped"] == 3
    splits = task.splits(0)
    banned = eval_keys(task, splits)
    assert len(banned) == 9 and not banned & {start_key(task, i) for i in task.pools.train}
    data = dataclasses.replace(SMOKE.data, world_episodes=24)
    corpora = build_corpora(task, data, 0)  # refuses (HarnessError) if any training episode starts at dev/test
    assert [a.eval_starts for a in corpora.audit] == [0] * 5
    assert not {e.prompt for e in corpora.world_episodes} & banned  # exploration never starts at dev or test
    assert all(a.eval_states_in_text == 0.0 for a in corpora.audit)  # no test question text anywhere
    # p targets are the reference policy's values (epsilon solved to 0.5 success), not the expert's 1.0.
    p = corpus_stats(corpora)["p_targets"]
    assert p["n"] > 0 and p["share_1.0"] < 1.0 and len([c for c in p["histogram"].values() if c]) >= 2
