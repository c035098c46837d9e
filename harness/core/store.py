"""Atomic writes: a file or directory appears complete under its name, or not at all.

Files and directories written here get the mode the process's umask implies (0666 & ~umask,
0777 & ~umask), as `open` and `mkdir` would give them, not the 0600/0700 of `tempfile`, so that a
store shared by a group stays readable to it. A failure to write names the path the caller gave
(never the temp file) and the system's reason, as one HarnessError line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.locks import locked


def current_umask() -> int:
    """Returns the process's umask, read without changing it where Linux shows it (/proc/self/status).

    Elsewhere it is read by setting it and setting it back, which a thread creating a file at that
    very moment could see.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_error(exc: OSError, path: Path) -> HarnessError:
    """Returns the one-line error for `exc` met while writing `path`: that path and the system's reason."""
    return HarnessError(f"cannot write {path}: {exc.strerror or exc}")


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, path) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temp file in the same directory, then a rename."""
    if path.is_dir():
        raise HarnessError(f"cannot write {path}: it is a directory")
    _make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc} in folder {path.parent}") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yields a temp directory beside `path` that replaces `path` when the block succeeds."""
    _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc} in folder {path.parent}") from None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_tree(source: Path, target: Path) -> None:
    """Copies the folder `source` to `target`, stopping at the first OSError, which it raises as it is.

    shutil.copytree copies on after a failure and then raises every failure as one list; on a full
    disk that is a screenful. Callers name the path the user knows in the error (`write_error`).
    """
    for item in sorted(source.rglob("*")):
        destination = target / item.relative_to(source)
        if item.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, destination)


STAGE = ".outputs"
"""Name prefix of the temp folder `staged_outputs` writes in."""


@contextmanager
def staged_outputs(folder: Path, names: Sequence[str]) -> Iterator[Path]:
    """Yields a temp folder in `folder` holding its entries `names` (hard links); on success they replace them.

    The block writes (and removes) files under the temp folder as it would under `folder`; only
    when it has finished are the files renamed into place one by one, and the files it removed
    removed. A failure in the block (full disk, bad input) leaves `folder` as it was, and the
    folders this made for it are removed again. Only a kill during the final renames can leave
    some entries new and others old. A temp folder of a killed process is removed by the next call.
    """
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{STAGE}.", dir=folder))
    except OSError as exc:
        raise write_error(exc, folder) from None
    try:
        with locked(stage / ".lock", f"outputs {stage}", wait=False):
            _remove_dead_stages(folder, stage)
            os.chmod(stage, 0o777 & ~current_umask())
            for name in names:
                if (folder / name).is_dir():
                    shutil.copytree(folder / name, stage / name, copy_function=_link)
                elif (folder / name).is_file():
                    _link(folder / name, stage / name)
            yield stage
            for name in names:
                _publish(stage / name, folder / name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for path in made:  # deepest first; a folder something else has written into stays
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _link(source: Path | str, target: Path | str) -> None:
    """Hard-links `target` to `source`, or copies it where the file system has no hard links."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _publish(staged: Path, target: Path) -> None:
    """Renames the files under `staged` over those under `target` and removes the ones `staged` lacks."""
    if staged.is_file():
        os.replace(staged, target)
        return
    kept = {p.relative_to(staged) for p in staged.rglob("*") if not p.is_dir()} if staged.is_dir() else set()
    for relative in sorted(kept):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / relative, target / relative)
    if target.is_file():
        target.unlink()
    for old in sorted(target.rglob("*")) if target.is_dir() else []:
        if not old.is_dir() and old.relative_to(target) not in kept:
            old.unlink()


def _remove_dead_stages(folder: Path, mine: Path) -> None:
    """Removes the temp folders of `staged_outputs` in `folder` whose process died (their lock is free)."""
    for stage in folder.glob(f"{STAGE}.*"):
        if stage == mine or not (stage / ".lock").is_file():
            continue
        try:
            with locked(stage / ".lock", f"outputs {stage}", wait=False):
                shutil.rmtree(stage, ignore_errors=True)
        except HarnessError:
            pass  # a live writer's


def remove_leftovers(directory: Path, names: list[str]) -> list[Path]:
    """Returns the temp files and directories of `names` that a killed writer left in `directory`, removed.

    Call it only while holding the lock of what `directory` holds: a temp entry there is then
    no live writer's but a dead one's.
    """
    found = [p for name in names for p in directory.glob(f".{name}.*")] if directory.is_dir() else []
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
