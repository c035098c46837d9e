"""Reads benchmark records (GSM8K, HotpotQA) from local files or the datasets cache, never the network.

A source is a jsonl, json or parquet file, or a folder of them (searched recursively, so the
datasets hub layout `main/train-00000-of-00001.parquet` works as it is). A file whose name holds
`train`, `test`, `validation`/`dev`/`val` belongs to that split; any other file is `all`.
Every record keeps where it came from ("file:line" for jsonl and json, "file: row N" for parquet),
so a bad record is reported as one line naming its file and line.

Without a path, `hub_records` opens the datasets cache with offline mode forced on: a data set the
user has downloaded before is found; nothing is ever fetched.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.core.streams import stream
from tasks.base import Splits, TaskConfig, knob, normalized_text, start_key

SUFFIXES = (".jsonl", ".json", ".parquet")
SPLIT_WORDS = (("train", "train"), ("test", "test"), ("validation", "validation"), ("dev", "validation"))


@dataclass(frozen=True)
class BenchmarkConfig(TaskConfig):
    """Knobs of a task read from benchmark records: where the data is and how it is split."""

    data: str = knob("", "a .jsonl, .json or .parquet file or a folder of them; empty = the datasets cache (offline)")
    split_seed: int = knob(0, "seed of the dev carve-out (and of the test pool when the data has no test split)", 0)
    extra_turns: int = knob(1, "slack turns beyond the expert's", 0, 10)


@dataclass(frozen=True)
class Located:
    """A record with the place it was read from."""

    record: dict[str, Any]
    where: str


def split_of(path: Path) -> str:
    """Returns the split a file's name declares (train, test, validation) or 'all'."""
    name = path.name.lower()
    for word, split in SPLIT_WORDS:
        if re.search(rf"(^|[^a-z]){word}([^a-z]|$)", name):
            return split
    if re.search(r"(^|[^a-z])val([^a-z]|$)", name):
        return "validation"
    return "all"


def _jsonl(path: Path, text: str) -> list[Located]:
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise HarnessError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
        out.append(Located(record, f"{path}:{i}"))
    return out


def _json_array(path: Path, text: str) -> list[Located]:
    """Returns the elements of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, 0).end()
    line, counted = 1, 0

    def line_at(p: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, p)
        counted = p
        return line

    if not text.startswith("[", pos):
        raise HarnessError(f"{path}:{line_at(pos)}: a .json file must hold a list of records")
    pos = ws.match(text, pos + 1).end()
    out: list[Located] = []
    if text.startswith("]", pos):
        return out
    while True:
        try:
            record, end = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise HarnessError(f"{path}:{line_at(pos)}: not valid JSON ({exc.msg})") from None
        out.append(Located(record, f"{path}:{line_at(pos)}"))
        pos = ws.match(text, end).end()
        if text.startswith("]", pos):
            return out
        if not text.startswith(",", pos):
            raise HarnessError(f"{path}:{line_at(pos)}: expected ',' or ']' between records")
        pos = ws.match(text, pos + 1).end()


def _parquet(path: Path) -> list[Located]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises its own errors for a file that is not parquet
        raise HarnessError(f"{path}: not a readable parquet file ({type(exc).__name__})") from None
    return [Located(row, f"{path}: row {i}") for i, row in enumerate(rows, start=1)]


def read_file(path: Path) -> list[Located]:
    """Returns the records of one jsonl, json or parquet file, in file order."""
    if path.suffix == ".parquet":
        return _parquet(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise HarnessError(f"{path}: not UTF-8 text") from None
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return _json_array(path, text)
    return _jsonl(path, text)


def read_source(path: Path) -> dict[str, list[Located]]:
    """Returns the records of a file or folder by split (train, test, validation, all)."""
    if not path.exists():
        raise HarnessError(f"data path {path} does not exist")
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise HarnessError(f"data file {path} is not .jsonl, .json or .parquet")
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if not files:
            raise HarnessError(f"data folder {path} holds no .jsonl, .json or .parquet file")
    out: dict[str, list[Located]] = {}
    for file in files:
        split = "all" if path.is_file() else split_of(file)
        out.setdefault(split, []).extend(read_file(file))
    return out


@contextmanager
def _offline():
    """Forces the datasets and hub libraries offline for the duration (whatever the environment says)."""
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def hub_records(name: str, config: str, task: str) -> dict[str, list[Located]]:
    """Returns the records of `name` (config `config`) from the local datasets cache, offline.

    Raises HarnessError naming how to give the data when the cache does not hold the set.
    """
    from datasets import load_dataset

    try:
        with _offline():
            loaded = load_dataset(name, config)
    except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ValueError ... when absent
        raise HarnessError(
            f"task {task} has no data: give --data PATH (a .jsonl, .json or .parquet file or folder; "
            f"`harness data synth --schema {task}` writes one), or put {name} ({config}) in the datasets cache "
            f"({type(exc).__name__} offline)"
        ) from None
    out: dict[str, list[Located]] = {}
    for split, rows in loaded.items():
        key = split if split in ("train", "test") else "validation" if split.startswith(("valid", "dev")) else "all"
        out.setdefault(key, []).extend(Located(row, f"{name}[{split}]: row {i}") for i, row in enumerate(rows, 1))
    return out


@dataclass(frozen=True)
class Pools:
    """The instance pools of a data set: train (dev is carved from it) and test, fixed by the split seed."""

    train: tuple
    dev: tuple
    test: tuple
    duplicates: int = 0
    """Train-side records dropped because their start key (the prompt) repeats an earlier or a test one."""


def make_pools(
    records: dict[str, list[Located]],
    parse: Callable[[Located, int], Any],
    n_dev: int,
    split_seed: int,
    key: Callable[[Any], str] = repr,
) -> Pools:
    """Returns the parsed instances in train/dev/test pools.

    The file's own test split is the test pool (validation when there is no test); otherwise the
    test pool is drawn from all records with `split_seed`. dev is carved from the train side with
    `split_seed` too, so that no seed ever trains on another seed's dev or test instance. `key` is
    an instance's start key (`tasks.base.start_key`, the text the agent sees at reset): a train-side
    record whose key repeats a test record's or an earlier train-side one, compared normalised
    (`tasks.base.normalized_text`: case, punctuation and spacing aside), is dropped, so that no two
    pools hold the same question or a surface variant of it (the contamination audit requires it).
    """
    parsed = {split: [parse(loc, i) for i, loc in enumerate(locs)] for split, locs in sorted(records.items())}
    rng = stream(split_seed, "benchmark-test-pool")
    test = parsed.get("test") or parsed.get("validation")
    train_side = parsed.get("train", []) + parsed.get("all", [])
    if test is None:
        if not train_side:
            raise HarnessError("the data holds no records")
        order = rng.permutation(len(train_side))
        share = max(1, len(train_side) // 5)
        test = [train_side[i] for i in order[:share]]
        train_side = [train_side[i] for i in sorted(order[share:])]
    seen, kept = {normalized_text(key(x)) for x in test}, []
    for instance in train_side:
        k = normalized_text(key(instance))
        if k not in seen:
            seen.add(k)
            kept.append(instance)
    duplicates, train_side = len(train_side) - len(kept), kept
    order = rng.permutation(len(train_side))
    n_dev = min(n_dev, max(0, len(train_side) - 1))
    dev = [train_side[i] for i in order[:n_dev]]
    train = [train_side[i] for i in sorted(order[n_dev:])]
    return Pools(tuple(train), tuple(dev), tuple(test), duplicates)


def take(pool: tuple, n: int, rng: np.random.Generator | None) -> tuple:
    """Returns `n` instances of `pool`: drawn with `rng` without replacement, or the first n without it."""
    if rng is None:
        return pool[:n]
    order = rng.permutation(len(pool))[:n]
    return tuple(pool[i] for i in sorted(order))


def record_id(record: dict[str, Any], where: str, keys: tuple[str, ...] = ("id",)) -> str:
    """Returns a record's own id (the first of `keys` it holds), else the file and line it was read from."""
    for key in keys:
        if record.get(key):
            return str(record[key])
    return re.sub(r"\s+", "", where.rsplit("/", 1)[-1])


def unique_ids(parse: Callable[[Located, int], Any]) -> Callable[[Located, int], Any]:
    """Returns `parse` refusing a record whose id an earlier, different record has (HarnessError naming both).

    Instances are told apart by id (search indexes, reference-policy tables); a verbatim copy is the
    same instance and is left to the question de-duplication of `make_pools`.
    """
    seen: dict[str, tuple[str, Any]] = {}

    def checked(located: Located, index: int) -> Any:
        instance = parse(located, index)
        where, first = seen.setdefault(instance.id, (located.where, instance))
        if first != instance:
            raise HarnessError(f"{located.where}: id {instance.id!r} is also the id of another record, at {where}")
        return instance

    return checked


def check_pools(pools: Pools, what: str, records: int, n_dev: int) -> None:
    """Returns None; HarnessError saying the sizes when a pool is empty or the train pool is smaller than dev.

    The dev carve-out takes up to n_dev of the train side, down to a train pool of one instance: a
    small file would otherwise train on a handful of instances with no word about it.
    """
    sizes = f"train {len(pools.train)}, dev {len(pools.dev)}, test {len(pools.test)} from {records} records"
    if not pools.train or not pools.test:
        raise HarnessError(f"{what} gives no train or no test instances ({sizes})")
    if len(pools.train) < len(pools.dev):
        raise HarnessError(
            f"{what} gives a train pool smaller than its dev pool ({sizes}): too small to train on; "
            f"lower n_dev (now {n_dev}) or give more records"
        )


RESERVED_SWAPS = {";": ",", "->": "-", "|": "/"}
"""Format symbols that real text may hold, and the plain symbol each becomes in a task's text."""


def plain_text(text: str, reserved: tuple[str, ...]) -> str:
    """Returns `text` on one line, with the agent format's reserved words capitalized and its symbols swapped.

    Real questions and paragraphs may contain `act`, `p` or `;`, which the turn parser would read
    as part of the format; `Act` and `P` are plain words to it, and case does not change a
    normalized answer.
    """
    words = []
    for word in str(text).split():
        if word in RESERVED_SWAPS:
            word = RESERVED_SWAPS[word]
        elif word in reserved:
            word = word[:1].upper() + word[1:]
        words.append(word)
    return " ".join(words)


class RecordTask:
    """What GSM8K and HotpotQA share: records read lazily from `config.data` (or the datasets cache),
    train/dev/test pools fixed by `split_seed`, and a digest of the records for the stage cache.

    Subclasses set HUB (name, config) and define `parse(located, index)` returning an instance
    with a unique `id`, or raising HarnessError naming `located.where`.
    """

    HUB: tuple[str, str] = ("", "")
    name: str
    config: Any

    def __init__(self, config: BenchmarkConfig):
        self.config = config
        self._pools: Pools | None = None

    def parse(self, located: Located, index: int) -> Any:
        raise NotImplementedError

    @property
    def pools(self) -> Pools:
        """Returns the train/dev/test pools, reading the data on first use.

        HarnessError, naming the data, when it holds no records, two records share an id, or the
        pools are too small to train on (`check_pools`).
        """
        if getattr(self, "_pools", None) is None:
            c = self.config
            source = f"data {c.data}" if c.data else f"{self.HUB[0]} ({self.HUB[1]}) in the datasets cache"
            records = read_source(Path(c.data)) if c.data else hub_records(*self.HUB, self.name)
            if not any(records.values()):
                raise HarnessError(f"task {self.name}: {source} holds no records")
            key = functools.partial(start_key, self)
            pools = make_pools(records, unique_ids(self.parse), c.n_dev, c.split_seed, key)
            check_pools(pools, f"task {self.name}: {source}", sum(map(len, records.values())), c.n_dev)
            self._pools = pools
        return self._pools

    def instances(self) -> list:
        """Returns every instance of the train, dev and test pools, in that order."""
        return [x for split in ("train", "dev", "test") for x in getattr(self.pools, split)]

    def splits(self, seed: int):
        """Returns n_train train instances drawn with `seed`, and the first n_dev dev and n_test test ones.

        dev and test are the same for every seed (as on a standard benchmark); the seed draws the
        train instances. The pools never overlap, so no seed trains on a dev or test instance.
        """
        pools, c = self.pools, self.config
        rng = stream(seed, "benchmark-train", c.split_seed)
        return Splits(
            take(pools.train, c.n_train, rng), take(pools.dev, c.n_dev, None), take(pools.test, c.n_test, None)
        )

    def sample_instance(self, rng: np.random.Generator) -> Any:
        """Returns an instance of the train pool: exploration never starts on a dev or test instance."""
        train = self.pools.train
        return train[int(rng.integers(len(train)))]

    def record_report(self) -> dict[str, int]:
        """Returns the records in each pool and the train-side duplicates dropped (`make_pools`)."""
        pools = self.pools
        return {
            "train_pool": len(pools.train),
            "dev_pool": len(pools.dev),
            "test_pool": len(pools.test),
            "duplicates_dropped": pools.duplicates,
        }

    def data_digest(self) -> str:
        """Returns a sha256 of every parsed instance, so that cached stages follow the data's content."""
        import hashlib

        if getattr(self, "_digest", None) is None:
            digest = hashlib.sha256()
            for split in ("train", "dev", "test"):
                for instance in getattr(self.pools, split):
                    digest.update(repr((split, instance)).encode())
            self._digest = digest.hexdigest()
        return self._digest
