"""The TRL checkpoints of an interrupted stage (`<hash>.partial/checkpoint-N/`): their manifests, and which to resume.

Each time a trainer saves a checkpoint, `write_manifest` lists the sha256 of every file in it
(`harness-checksums.json`, written atomically once the checkpoint is complete) and `prune` then
removes the older checkpoints, so a verified checkpoint is on disk at every moment. Before a stage
resumes, `drop_damaged` checks its checkpoints newest first: one without a manifest (the process
died while saving it), with a file missing, changed or not listed, or with a file that no longer
parses (a torch zip archive failing its CRC, a safetensors file shorter than its header says, a
json file cut short) is dropped with one line on stderr naming it and the file; the stage resumes
from the newest checkpoint that checks out, or starts over from its input when none does.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

from harness.core.store import atomic_write_text
from harness.training.stages import checksum_problem, file_checksums

MANIFEST = "harness-checksums.json"
"""The manifest inside each TRL checkpoint folder: {relative path: sha256} of every other file in it."""
PREFIX = "checkpoint-"


def checkpoints(work_dir: Path) -> list[tuple[int, Path]]:
    """Returns the (step, folder) of every TRL checkpoint folder in `work_dir`, newest first."""
    found = [(p.name.removeprefix(PREFIX), p) for p in work_dir.glob(f"{PREFIX}*") if p.is_dir()]
    return sorted(((int(step), p) for step, p in found if step.isdigit()), reverse=True)


def write_manifest(folder: Path) -> None:
    """Writes the manifest of a complete checkpoint folder (atomically: a killed writer leaves none)."""
    text = json.dumps(file_checksums(folder, skip=MANIFEST), indent=1, sort_keys=True) + "\n"
    atomic_write_text(folder / MANIFEST, text)


def prune(work_dir: Path, keep: Path) -> None:
    """Removes every checkpoint folder in `work_dir` older than `keep`, once `keep` has its manifest."""
    step = int(keep.name.removeprefix(PREFIX))
    for older, folder in checkpoints(work_dir):
        if older < step:
            shutil.rmtree(folder, ignore_errors=True)


def checkpoint_problem(folder: Path) -> str | None:
    """Returns why a checkpoint folder cannot be resumed from (a phrase naming the file), or None when it checks out."""
    try:
        stored = json.loads((folder / MANIFEST).read_text())
    except OSError:
        return f"it has no {MANIFEST}"  # its process died while saving it, or it predates manifests
    except ValueError:
        return f"{MANIFEST} is unreadable"
    if not isinstance(stored, dict) or not stored:
        return f"{MANIFEST} lists no files"
    problem = checksum_problem(file_checksums(folder, skip=MANIFEST), stored, MANIFEST)
    if problem:
        return problem
    for name in sorted(stored):
        if not _parses(folder / name):
            return f"{name} does not load"
    return None


def _parses(path: Path) -> bool:
    """Returns whether a checkpoint file's structure is whole: the CRC of every member of a torch zip
    archive (.pt, .pth, .bin), a safetensors file's header and length, a json file's syntax; other files pass."""
    try:
        if path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path) as archive:
                return archive.testzip() is None
        if path.suffix == ".safetensors":
            with path.open("rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(size))
            ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
            return path.stat().st_size == 8 + size + max(ends, default=0)
        if path.suffix == ".json":
            json.loads(path.read_text())
        return True
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile):
        return False


def drop_damaged(work_dir: Path) -> Path | None:
    """Returns the newest checkpoint in `work_dir` that checks out (None: none does), after removing every
    newer one, each with one line on stderr naming it, the bad file and where the stage goes on from."""
    damaged = []
    chosen = None
    for _, folder in checkpoints(work_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            chosen = folder
            break
        damaged.append((folder, problem))
    then = f"resuming from {chosen.name}" if chosen else "restarting the stage from its input"
    for folder, problem in damaged:
        print(f"warning: TRL checkpoint {folder} is damaged ({problem}); dropped it, {then}", file=sys.stderr)
        shutil.rmtree(folder)
    return chosen
