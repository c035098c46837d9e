"""The rules of countdown's numbers game and its exhaustive solver: which moves are legal, what they make.

A move "a op b" takes two of the numbers and puts back a op b, which must be an integer in
1..max_value (so subtraction is positive and division exact); an op left out of `ops` is illegal.
`reachable` lists every result some sequence of moves makes, by exhaustive search with a cache:
what countdown's expert, Q* and instance filter read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from tasks.base import INVALID_ACTION

ILLEGAL = "illegal move"
"""Observation for a well-formed action that the numbers do not allow."""
OPS = ("+", "-", "*", "/")
# Numbers are written as vocabulary words are (no sign, no leading zero); capping the digits keeps
# int() from ever seeing a huge string, and no such number can be on the board.
_NUMBER = r"(0|[1-9][0-9]{0,8})"
_ACTION = re.compile(rf"^{_NUMBER} ([-+*/]) {_NUMBER}$")


def operate(a: int, op: str, b: int) -> int:
    """Returns a op b, or 0 (never a legal result) for an inexact division."""
    if op == "/":
        return a // b if b and a % b == 0 else 0
    return a + b if op == "+" else a - b if op == "-" else a * b


class NumbersGame:
    """The moves of the numbers game with the operations `ops` and results up to `max_value`."""

    def __init__(self, ops: str, max_value: int) -> None:
        self.ops = tuple(op for op in OPS if op in ops)
        self.max_value = max_value
        self._reach: dict[tuple[tuple[int, ...], int], frozenset[int]] = {}

    def apply(self, numbers: tuple[int, ...], action: str) -> tuple[tuple[int, ...], int] | str:
        """Returns (numbers after, result) of a legal action, else ILLEGAL or INVALID_ACTION."""
        match = _ACTION.match(" ".join(action.split()))
        if not match:
            return INVALID_ACTION
        a, op, b = int(match[1]), match[2], int(match[3])
        if op not in self.ops:
            return ILLEGAL
        rest = list(numbers)
        for x in (a, b):
            if x not in rest:
                return ILLEGAL
            rest.remove(x)
        value = operate(a, op, b)
        if not 1 <= value <= self.max_value:
            return ILLEGAL
        return tuple(sorted([*rest, value])), value

    def _moves(self, numbers: tuple[int, ...]) -> list[tuple[str, int, tuple[int, ...]]]:
        """Returns (action, result, numbers after) of every legal move; a >= b, a and b descending, ops in OPS order.

        With a >= b every legal result is listed once: b - a and b / a are never legal then, except
        a / a, which a / b already is.
        """
        moves = []
        values = sorted(set(numbers), reverse=True)
        counts = Counter(numbers)
        for i, a in enumerate(values):
            for b in values[i if counts[a] > 1 else i + 1 :]:
                rest = list(numbers)
                rest.remove(a)
                rest.remove(b)
                for op in self.ops:
                    value = operate(a, op, b)
                    if 1 <= value <= self.max_value:
                        moves.append((f"{a} {op} {b}", value, tuple(sorted([*rest, value]))))
        return moves

    def reachable(self, numbers: tuple[int, ...], turns: int) -> frozenset[int]:
        """Returns every result some sequence of at most `turns` legal moves from `numbers` produces (cached)."""
        key = (numbers, min(turns, len(numbers) - 1))
        if key[1] <= 0:
            return frozenset()
        if key not in self._reach:
            found: set[int] = set()
            for _, value, after in self._moves(numbers):
                found.add(value)
                found |= self.reachable(after, key[1] - 1)
            self._reach[key] = frozenset(found)
        return self._reach[key]

    def solvable(self, numbers: Sequence[int], target: int, turns: int) -> bool:
        """Returns whether some legal moves from `numbers` produce `target` within `turns` moves."""
        return target in self.reachable(tuple(sorted(numbers)), turns)
