"""Generated GSM8K- and HotpotQA-format data for the tests, written once per test process.

Tasks that read data files (a `data` knob) get these; the files are written to a temporary
folder, never committed.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from pathlib import Path
from typing import Any

from harness.core.fields import as_dict
from harness.core.registry import task_class
from harness.data.synth import synth

SIZES = {"gsm8k": 80, "hotpotqa": 80}


@functools.cache
def synth_folder(schema: str) -> Path:
    """Returns a folder with train.jsonl and test.jsonl of generated `schema` records (seed 0)."""
    out = Path(tempfile.mkdtemp(prefix=f"synth-{schema}-")) / schema
    synth(schema, SIZES[schema], 0, out)
    return out


def knobs_for(name: str, knobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Returns `knobs` with a generated data folder for a task that reads data files; others unchanged."""
    knobs = dict(as_dict(knobs or {}))  # a profile's resolved Config, or a mapping
    fields = {f.name for f in dataclasses.fields(task_class(name).Config)}
    if "data" in fields and not knobs.get("data"):
        knobs.update(data=str(synth_folder(name)), n_train=40, n_dev=4, n_test=12)
    return knobs
