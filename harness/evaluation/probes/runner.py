"""Runs the probes through lm-eval: `HFLM` around an in-memory model, `simple_evaluate`, offline.

The packaged YAML files (next_obs.yaml, calibration.yaml) hold everything but the data path.
For each run a YAML file per probe is written to a temporary folder: it `include`s the packaged
one and sets `dataset_kwargs` to that run's jsonl (and a datasets cache inside the folder), and a
`TaskManager` indexes only that folder (lm-eval's own task folders are not scanned).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import yaml

from harness.core.config import Profile
from harness.core.registry import make_task
from harness.core.runs import dumps, git_commit, versions
from harness.core.store import atomic_write_text
from harness.evaluation.probes.items import PROBE_FILES, jsonl_text, probe_items

PROBE_DIR = Path(__file__).parent
PROBE_TASKS = {"next_obs": "foresight_next_obs", "calibration": "foresight_calibration"}
"""Probe name -> the lm-eval task name its YAML file declares."""
METRICS = {"next_obs": ("exact_match",), "calibration": ("brier", "ece", "q_error", "mean_p", "choice_mass")}


def run_probes(
    model: Any, tokenizer: Any, items: dict[str, list[dict[str, Any]]], limit: int | None, batch_size: int = 16
) -> dict[str, Any]:
    """Returns, per probe, its metrics, item count and data digest, from one lm-eval run over `items`."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="probes-") as tmp:
        folder = Path(tmp)
        digests = {}
        for name, filename in PROBE_FILES.items():
            text = jsonl_text(items[name])
            (folder / filename).write_text(text)
            digests[name] = hashlib.sha256(text.encode()).hexdigest()
            config = {
                "include": str(PROBE_DIR / f"{name}.yaml"),
                "task": PROBE_TASKS[name],
                # cache_dir: datasets' arrow cache stays in the temporary folder, not ~/.cache.
                "dataset_kwargs": {"data_files": {"test": str(folder / filename)}, "cache_dir": str(folder / "cache")},
            }
            (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
        manager = TaskManager(include_path=str(folder), include_defaults=False)
        # HFLM encodes with the tokenizer's own defaults: the tiny WordLevel tokenizer adds no BOS
        # (as in training), a pretrained one adds what it was built to add.
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
        output = simple_evaluate(
            model=lm,
            tasks=list(PROBE_TASKS.values()),
            task_manager=manager,
            limit=limit,
            log_samples=False,
            bootstrap_iters=0,
            # Greedy decoding and log-likelihoods draw no random numbers; leave global RNGs alone.
            random_seed=None,
            numpy_random_seed=None,
            torch_random_seed=None,
            fewshot_random_seed=None,
        )
    results: dict[str, Any] = {}
    for name, task_name in PROBE_TASKS.items():
        found = output["results"][task_name]
        n = output["n-samples"][task_name]
        results[name] = {
            **{metric: found.get(f"{metric},none") for metric in METRICS[name]},
            "items": n["effective"],
            "items_available": n["original"],
            "data_sha256": digests[name],
        }
    return results


def probe_tasks(
    model: Any,
    tokenizer: Any,
    profile: Profile,
    task_names: list[str],
    seed: int,
    limit: int | None,
    label: str,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Returns the probes.json content: both probes' results on each task's test-side items, and what produced them."""
    knobs = {name: profile.task_knobs(name) for name in task_names}  # all checked before any probe runs
    results = {}
    for name in task_names:
        items = probe_items(make_task(name, knobs[name]), profile.data, seed)
        results[name] = run_probes(model, tokenizer, items, limit, batch_size)
    return {
        "model": label,
        "profile": profile.name,
        "seed": seed,
        "limit": limit,
        "tasks": results,
        "git_commit": git_commit(),
        "versions": versions(),
    }


def write_probes(report: dict[str, Any], out: Path) -> Path:
    """Writes `report` to `out`/probes.json atomically; returns the file's path."""
    path = out / "probes.json"
    atomic_write_text(path, dumps(report))
    return path
