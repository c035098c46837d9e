"""A hand-made run store for the `harness view` tests: three runs of profile smoke on graph-nav, seed 0.

Episode 0 of foresight holds the hand-checked foresight block: plan e1 -> at n1 ; e2 -> at n3,
while the world said at n1, then at n2, so its marks are hit, miss. Its second turn is a model
output holding a <script> element, which a page must show as text.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.runs import dumps, run_dir

SCRIPT = "<script>window.__pwned = 1</script> act e9"
HAND_MARKS = ["hit", "miss"]
"""The marks of episode 0's first block, worked out by hand: at n1 = at n1, at n3 != at n2."""


def _foresight_turn(plan, rollout, actual, p, q_star, q_ref, action, observation) -> dict:
    steps = " ; ".join(f"{a} -> {o}" for a, o in zip(plan, rollout, strict=True))
    return {
        "output": f"think go plan {steps} p {p:.1f} act {action}",
        "parsed": {"thought": "go", "plan": plan, "rollout": rollout, "p": p},
        "error": None,
        "action": action,
        "observation": observation,
        "q_ref": q_ref,
        "q_star": q_star,
        "actual": actual,
    }


def foresight_records() -> list[dict]:
    """Returns three episodes: solved with the hand-checked block, failed held-out, solved familiar."""
    bad = {"output": SCRIPT, "parsed": None, "error": "not 'think ... plan ...'", "action": SCRIPT,
           "observation": "no such action"}  # fmt: skip
    first = _foresight_turn(["e1", "e2"], ["at n1", "at n3"], ["at n1", "at n2"], 0.7, 1.0, 0.8, "e1", "at n1")
    return [
        {"episode": 0, "instance_id": "g-0", "prompt": "goal n3 at n0", "success": True, "heldout": False,
         "p_first": None, "turns": [first, bad], "candidates": []},
        {"episode": 1, "instance_id": "g-1", "prompt": "goal n5 at n0", "success": False, "heldout": True,
         "p_first": None, "candidates": [],
         "turns": [_foresight_turn(["e3"], ["at n5"], [], 0.4, 0.0, 0.1, "e3", "at n4")]},
        {"episode": 2, "instance_id": "g-2", "prompt": "goal n1 at n0", "success": True, "heldout": False,
         "p_first": None, "candidates": [],
         "turns": [_foresight_turn(["e1"], ["at n1"], ["at n1"], 0.9, 1.0, 1.0, "e1", "at n1")]},
    ]  # fmt: skip


def react_records() -> list[dict]:
    """Returns the same three instances played in the ReAct format."""
    return [
        {"episode": i, "instance_id": f"g-{i}", "prompt": "goal", "success": i == 2, "heldout": i == 1,
         "p_first": None, "candidates": [],
         "turns": [{"output": "think go act e1", "parsed": {"thought": "go"}, "error": None, "action": "e1",
                    "observation": "at n1"}]}
        for i in range(3)
    ]  # fmt: skip


def _metrics(records: list[dict], verbal: bool, tokens: int) -> dict:
    success = sum(r["success"] for r in records) / len(records)
    bins = [{"lo": i / 10, "hi": (i + 1) / 10, "count": 0, "mean_p": None, "accuracy": None} for i in range(10)]
    if verbal:
        bins[4].update(count=1, mean_p=0.4, accuracy=0.0)
        bins[7].update(count=1, mean_p=0.7, accuracy=1.0)
        bins[9].update(count=1, mean_p=0.9, accuracy=1.0)
    return {
        "success": success,
        "success_ci": {"mean": success, "ci_low": 0.0, "ci_high": 1.0, "n": len(records)},
        "format_rate": 0.75 if verbal else 1.0,
        "ece_first": 0.2 if verbal else None,
        "fidelity@1": 0.667 if verbal else None,
        "n_episodes": len(records),
        "cost": {"training_tokens": tokens, "stages": {}},
        "reliability": bins if verbal else None,
    }


RUNS = {"foresight": (foresight_records, True, 3000), "sft-mimic": (foresight_records, True, 2000),
        "react": (react_records, False, 1000)}  # fmt: skip


def write_store(runs: Path) -> list[Path]:
    """Writes the three runs under `runs` (profile smoke, graph-nav, seed 0); returns their folders."""
    made = []
    for method, (records, verbal, tokens) in RUNS.items():
        path = run_dir(runs, "smoke", "graph-nav", method, 0)
        path.mkdir(parents=True)
        rows = records()
        (path / "manifest.json").write_text(dumps({"method": method, "wall_s": {"train": 1.5, "eval": 0.5}}))
        (path / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (path / "metrics.json").write_text(dumps(_metrics(rows, verbal, tokens)))
        made.append(path)
    return made
