"""gsm8k and hotpotqa in the data pipeline: no dev or test question reaches a training corpus, and
D_look's p comes from the reference policy (harness.data.audit, harness.data.reference)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.core.registry import make_task
from harness.data.recipes import build_corpora, corpus_stats
from tasks.base import eval_keys, match_key, normalized_text
from tests.synth_data import synth_folder

SMOKE = load_profile("smoke")


VARIANTS = {
    "verbatim": lambda q: q,
    "lower case": str.lower,
    "spaced question mark": lambda q: q.rstrip("?") + " ?",
    "doubled spaces and upper case": lambda q: "  " + q.upper().replace(" ", "  ") + " ",
}


def test_normalized_text_drops_case_punctuation_and_spacing_and_keeps_numbers_and_signs() -> None:
    assert normalized_text("What is 3 + 4?") == "what is 3 + 4"
    assert normalized_text("  what IS 3 +4 ?") == "what is 3 + 4"
    assert normalized_text("What is 3 - 4?") == "what is 3 - 4"  # another question
    assert normalized_text("Tom's 1,000 apples cost $2.50.") == "tom s 1000 apples cost $ 2.50"
    assert normalized_text("He has 12 and 13") != normalized_text("He has 1213")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", ["gsm8k", "hotpotqa"])
def test_a_test_question_copied_into_train_is_dropped_and_the_audit_is_clean(
    tmp_path: Path, name: str, variant: str
) -> None:
    """Three test records appended to the train file, verbatim or as a surface variant of their question
    (before normalised matching, "lower case" and "spaced question mark" passed de-duplication and the
    audit and reached D_expert, D_look and D_world)."""
    folder = tmp_path / name
    shutil.copytree(synth_folder(name), folder)
    test_lines = (folder / "test.jsonl").read_text().splitlines()
    copies = []
    for line in test_lines[:3]:
        record = json.loads(line)
        if variant != "verbatim" and "_id" in record:
            record["_id"] += "-copy"  # a rewritten copy is another record: one id for two contents is refused
        record["question"] = VARIANTS[variant](record["question"])
        copies.append(json.dumps(record))
    with (folder / "train.jsonl").open("a") as f:
        f.write("\n".join(copies) + "\n")
    task = make_task(name, {"data": str(folder), "n_train": 6, "n_dev": 3, "n_test": 6})
    assert task.record_report()["duplicates_dropped"] == 3
    splits = task.splits(0)
    banned = eval_keys(task, splits)
    assert len(banned) == 9 and not banned & {match_key(task, i) for i in task.pools.train}
    data = dataclasses.replace(SMOKE.data, world_episodes=24)
    corpora = build_corpora(task, data, 0)  # refuses (HarnessError) if any training episode starts at dev/test
    assert [a.eval_starts for a in corpora.audit] == [0] * 5
    assert not {normalized_text(e.prompt) for e in corpora.world_episodes} & banned  # no exploration at dev/test
    assert all(a.eval_states_in_text == 0.0 for a in corpora.audit)  # no test question text anywhere
    # p targets are the reference policy's values (epsilon solved to 0.5 success), not the expert's 1.0.
    p = corpus_stats(corpora)["p_targets"]
    assert p["n"] > 0 and p["share_1.0"] < 1.0 and len([c for c in p["histogram"].values() if c]) >= 2
