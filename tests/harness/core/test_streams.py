"""harness.core.streams: one table of named random streams, and every draw of the package comes from it."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from harness.core import streams
from harness.core.errors import HarnessError
from harness.core.streams import STREAM_TABLE, STREAMS, build_table, int_seed, stream

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("harness", "tasks", "baselines", "method")
# A generator made or seeded anywhere but streams.py. Two sites are known and allowed: the tiny
# model's weights (transformers initialises from the global generator, under fork_rng) and the
# agent's local torch.Generator seeded from Sampling.seed (itself an int_seed or a greedy run's seed).
SEEDING = re.compile(r"default_rng|SeedSequence|RandomState|random\.seed|random\.Random|manual_seed|SALT")
ALLOWED = {
    ("harness/training/models.py", 'torch.manual_seed(int_seed(seed, "tiny-init"))'),
    ("harness/agent.py", "generator = torch.Generator().manual_seed(sampling.seed)"),
}


def sources() -> list[Path]:
    """Returns every Python file of the package except streams.py itself."""
    found = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    return [p for p in found if p != ROOT / "harness/core/streams.py"]


def test_the_table_has_no_duplicate_name_or_id() -> None:
    names = [name for name, _ in STREAM_TABLE]
    assert len(names) == len(set(names)) == len(STREAMS)
    assert len(set(STREAMS.values())) == len(STREAMS)
    assert all(0 <= sid < 1 << 32 for sid in STREAMS.values())


def test_a_duplicate_name_or_id_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="'a' is listed twice"):
        build_table((("a", "x"), ("b", "y"), ("a", "z")))
    monkeypatch.setattr(streams, "stream_id", lambda name: 7)
    with pytest.raises(ValueError, match="'a' and 'b' have the same id 7"):
        build_table((("a", "x"), ("b", "y")))


def test_the_stream_is_the_seed_sequence_of_seed_id_count_and_indices() -> None:
    # Computed independently of streams.py: SHA-256's first four bytes, then numpy's SeedSequence.
    sid = int.from_bytes(hashlib.sha256(b"sft-order").digest()[:4], "big")
    expected = np.random.default_rng(np.random.SeedSequence([3, sid, 2, 5, 9])).integers(1 << 62, size=4)
    assert (stream(3, "sft-order", 5, 9).integers(1 << 62, size=4) == expected).all()
    assert int_seed(3, "sft-order", 5, 9) == int(np.random.SeedSequence([3, sid, 2, 5, 9]).generate_state(1)[0])
    assert (stream(3, "sft-order").random(3) == stream(3, "sft-order").random(3)).all()


def test_two_names_or_two_index_tuples_never_give_the_same_stream() -> None:
    # (s, name) and (s, name, 0) included: numpy's SeedSequence alone pads short entropy with zeros,
    # so [s, id] and [s, id, 0] would be one stream without the count of indices.
    keys = [(s, name, *idx) for s in (0, 1) for name in STREAMS for idx in ((), (0,), (0, 0), (1,))]
    firsts = {key: tuple(stream(*key).integers(1 << 62, size=2)) for key in keys}
    assert len(set(firsts.values())) == len(keys)
    seeds = {int_seed(*key) for key in keys}
    assert len(seeds) == len(keys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, "no-such-stream"), "unknown random stream 'no-such-stream'"),
        ((-1, "sft-order"), "must lie in \\[0, 2\\*\\*32\\), got -1"),
        ((0, "sft-order", 1 << 32), "got 4294967296"),
    ],
)
def test_an_unknown_name_or_a_value_off_32_bits_is_refused(args: tuple, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        stream(*args)
    with pytest.raises(HarnessError, match=message):
        int_seed(*args)


def test_no_module_makes_or_seeds_a_generator_of_its_own() -> None:
    found = set()
    for path in sources():
        for line in path.read_text().splitlines():
            if SEEDING.search(line):
                found.add((str(path.relative_to(ROOT)), line.strip()))
    assert found == ALLOWED


def test_every_stream_of_the_table_is_drawn_somewhere() -> None:
    literals = set()
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
    assert set(STREAMS) - literals == set()
