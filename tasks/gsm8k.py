"""gsm8k: grade-school word problems in the GSM8K schema, solved with a calculator.

Records are `{"question", "answer"}`: the answer is a worked solution whose calculator
annotations `<<48/2=24>>` give each computation, and whose last line `#### 72` gives the result
(the official jsonl files and the `main` config on the datasets hub). The world is a calculator:
`calc <expression>` returns the exact value of + - * / and parentheses over decimal numbers (a
recursive-descent evaluator over fractions, never `eval`), and `answer <number>` ends the episode,
a success when the number equals the gold one. The expert replays the annotations in order, then
answers. Annotations that do not parse are counted (`annotation_report`) and skipped; those whose
stated value differs from the exact one (rounded ones) are counted too and replayed as written.

The state holds the distinct values returned so far in increasing order and how many annotations
have been replayed, not the sequence of calls: the expert, the legal answers and success depend on
no more, so the reference policy's exact values (`tasks.base.NoisyExpert`, D_look's p) range over at
most calls x 2^calls x turns states per problem instead of calls^turns call sequences.

Q* is exact: the world is deterministic (`outcomes` is one step) and the expert knows the gold
number, so a plan's value is whether it leaves the expert enough turns without answering wrongly.
It is the value of an answer-reading oracle, not of a policy that must compute the answer (see
docs/benchmarks.md); the reference policy is that oracle with epsilon noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from harness.core.errors import HarnessError
from harness.core.registry import register_task
from harness.core.traces import RESERVED
from tasks.base import INVALID_ACTION, TaskConfig
from tasks.benchmark_files import BenchmarkConfig, Located, plain_text, record_id
from tasks.tool_answer import ToolAnswerTask

FIXED_WORDS = ("question", "results", "turns", "none", "calc", "answer", "correct", "wrong", "need", "is", "error")
FIXED_WORDS += tuple(INVALID_ACTION.split())
MAX_EXPRESSION = 200
"""Longest expression the calculator reads, in characters (bounds the size of exact results)."""
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|(.))")
_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


class CalcError(ValueError):
    """An expression the calculator cannot evaluate; the message says why."""


def evaluate(expression: str) -> Fraction:
    """Returns the exact value of an expression of numbers, + - * /, unary minus and parentheses.

    Raises CalcError for anything else (names, other operators, unbalanced parentheses, division
    by zero, more than MAX_EXPRESSION characters). Numbers may carry thousands commas.
    """
    text = expression.replace(",", "").strip()
    if not text:
        raise CalcError("empty expression")
    if len(text) > MAX_EXPRESSION:
        raise CalcError("expression too long")
    tokens: list[tuple[str, str]] = []
    for number, symbol in _TOKEN.findall(text):
        if number:
            tokens.append(("num", number))
        elif symbol.strip():
            if symbol not in "+-*/()":
                raise CalcError(f"unknown symbol {symbol!r}")
            tokens.append(("op", symbol))
    pos = 0

    def peek() -> str | None:
        return tokens[pos][1] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise CalcError("expression ends too early")
        pos += 1
        return tokens[pos - 1]

    def expr() -> Fraction:
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take()[1] == "+" else value - term()
        return value

    def term() -> Fraction:
        value = unary()
        while peek() in ("*", "/"):
            op = take()[1]
            right = unary()
            if op == "/" and right == 0:
                raise CalcError("division by zero")
            value = value * right if op == "*" else value / right
        return value

    def unary() -> Fraction:
        if peek() in ("-", "+"):
            return -unary() if take()[1] == "-" else unary()
        kind, text_ = take()
        if kind == "num":
            return Fraction(text_)
        if text_ != "(":
            raise CalcError(f"unexpected {text_!r}")
        value = expr()
        if take()[1] != ")":
            raise CalcError("unbalanced parentheses")
        return value

    value = expr()
    if pos != len(tokens):
        raise CalcError(f"unexpected {tokens[pos][1]!r}")
    return value


def show(value: Fraction) -> str:
    """Returns an exact value as text: an integer, a terminating decimal, or numerator/denominator."""
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
    sign = "-" if value < 0 else ""
    scaled = abs(value.numerator * 10**digits // value.denominator)
    whole, frac = divmod(scaled, 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"


def read_number(text: str) -> Fraction | None:
    """Returns the number written in `text` ($, commas and a trailing period allowed), or None."""
    cleaned = text.strip().replace("$", "").replace(",", "").rstrip(".")
    try:
        return evaluate(cleaned) if cleaned else None
    except CalcError:
        return None


@dataclass(frozen=True)
class MathProblem:
    """One problem: the question, the calculator calls of its solution, and the gold number."""

    id: str
    question: str
    calls: tuple[str, ...]
    values: tuple[str, ...]
    """The exact value of each call, as the calculator shows it."""
    gold: str
    unparsed: int = 0
    """Annotations of the record that did not parse (skipped)."""
    inexact: int = 0
    """Annotations whose stated value differs from the exact one (replayed as written)."""

    def __hash__(self) -> int:
        # States hash their problem on every lookup of the reference policy's tables: the id suffices.
        return hash(self.id)


@dataclass(frozen=True)
class MathState:
    """The Markov state: the problem, the values the calculator returned so far, the turn and the outcome."""

    problem: MathProblem
    results: tuple[str, ...]
    """The distinct values returned so far, in increasing order (`with_result`)."""
    t: int
    done: bool
    success: bool
    replayed: int = 0
    """How many of the problem's calls have been replayed in order: a result equal to the next
    call's value counts as its replay (the expert's progress; the world's answers do not depend on it)."""


def with_result(results: tuple[str, ...], value: str) -> tuple[str, ...]:
    """Returns `results` with `value` added once, in increasing numeric order (the state's canonical form)."""
    if value in results:
        return results
    return tuple(sorted((*results, value), key=Fraction))


def parse_solution(answer: str, where: str) -> tuple[list[str], list[str], str, int, int]:
    """Returns (calls, values, gold, unparsed, inexact) of a GSM8K answer; HarnessError without a `#### N` line."""
    final = [line for line in answer.splitlines() if line.strip().startswith("####")]
    gold = read_number(final[-1].strip()[4:]) if final else None
    if gold is None:
        raise HarnessError(f"{where}: the answer has no final '#### <number>' line")
    calls, values, unparsed, inexact = [], [], answer.count("<<") - len(_ANNOTATION.findall(answer)), 0
    for body in _ANNOTATION.findall(answer):
        expression, sep, stated = body.rpartition("=")
        try:
            if not sep:
                raise CalcError("no '='")
            value = evaluate(expression)
        except CalcError:
            unparsed += 1
            continue
        if read_number(stated) != value:
            inexact += 1
        calls.append(expression.replace(",", "").replace(" ", ""))
        values.append(show(value))
    return calls, values, show(gold), max(0, unparsed), inexact


@register_task("gsm8k")
class Gsm8k(ToolAnswerTask):
    """GSM8K-format word problems with a calculator tool."""

    name: ClassVar[str] = "gsm8k"
    family: ClassVar[str] = "math"
    version: ClassVar[int] = 3
    actions_help: ClassVar[str] = (
        "Actions: 'calc <expression>' returns the exact value of + - * / and parentheses; "
        "'answer <number>' gives the final number and ends the task."
    )
    Config: ClassVar[type[TaskConfig]] = BenchmarkConfig
    HUB = ("openai/gsm8k", "main")
    TOOL = "calc"

    def parse(self, located: Located, index: int) -> MathProblem:
        """Returns the problem of one record; HarnessError naming the file and line of a bad one."""
        record, where = located.record, located.where
        if not isinstance(record, dict):
            raise HarnessError(f"{where}: a record must be an object with 'question' and 'answer'")
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise HarnessError(f"{where}: 'question' is missing or not a non-empty string")
        if not isinstance(answer, str):
            raise HarnessError(f"{where}: 'answer' is missing or not a string")
        calls, values, gold, unparsed, inexact = parse_solution(answer, where)
        rid = record_id(record, where)
        return MathProblem(
            f"gsm8k-{rid}", plain_text(question, RESERVED), tuple(calls), tuple(values), gold, unparsed, inexact
        )

    def annotation_report(self) -> dict[str, int]:
        """Returns the number of records, annotations used, unparsed ones and inexact ones, over all pools."""
        problems = self.instances()
        return {
            "records": len(problems),
            "annotations": sum(len(p.calls) for p in problems),
            "unparsed_annotations": sum(p.unparsed for p in problems),
            "inexact_annotations": sum(p.inexact for p in problems),
        }

    def reset(self, instance: MathProblem) -> MathState:
        """Returns the start state: no calculator results, turn 0."""
        return MathState(instance, (), 0, False, False)

    def horizon(self, state: MathState) -> int:
        """Returns the turn limit: the expert's calls, its answer and extra_turns."""
        return len(state.problem.calls) + 1 + self.config.extra_turns

    def prompt(self, state: MathState) -> str:
        """Returns "question <text>"."""
        return f"question {state.problem.question}"

    def describe(self, state: MathState) -> str:
        """Returns the question, the calculator results so far and the turns left."""
        results = " | ".join(state.results) or "none"
        return f"{self.prompt(state)} results {results} turns {self.horizon(state) - state.t}"

    def next_need(self, state: MathState) -> str | None:
        """Returns the next annotation's expression not yet replayed in order, or None."""
        calls = state.problem.calls
        return calls[state.replayed] if state.replayed < len(calls) else None

    def gold(self, state: MathState) -> str:
        """Returns the gold number."""
        return state.problem.gold

    def use_tool(self, state: MathState, expression: str) -> tuple[str, dict]:
        """Returns the exact value of `expression` (or "error") and the results and replay progress it gives."""
        try:
            value = show(evaluate(expression))
        except CalcError:
            return "error", {}
        values, replayed = state.problem.values, state.replayed
        replayed += replayed < len(values) and value == values[replayed]
        return value, {"results": with_result(state.results, value), "replayed": replayed}

    def judge(self, state: MathState, text: str) -> tuple[bool, dict]:
        """Returns whether `text` reads as the gold number."""
        number = read_number(text)
        return number is not None and show(number) == state.problem.gold, {}

    def legal_actions(self, state: MathState) -> list[str]:
        """Returns the problem's calls, then "answer <n>" for every result and every number of the question."""
        numbers = [show(n) for n in (read_number(m) for m in _NUMBER.findall(state.problem.question)) if n is not None]
        answers = dict.fromkeys([*state.results, *numbers])
        return [f"calc {c}" for c in state.problem.calls] + [f"answer {a}" for a in answers]

    def items(self, state: MathState, action: str, nxt: MathState) -> frozenset:
        """Returns the calculator call a transition makes (the parts of this world are computations)."""
        return frozenset({action}) if len(nxt.results) > len(state.results) else frozenset()

    def required(self, instance: MathProblem) -> frozenset:
        """Returns the expert's calculator calls on `instance`."""
        return frozenset(f"calc {c}" for c in instance.calls)

    def vocabulary(self) -> list[str]:
        """Returns the fixed words, turn counts, and every word of every question, call, value and answer."""
        words = set(FIXED_WORDS) | self.turn_words()
        for p in self.instances():
            words.update(p.question.split())
            words.update(p.calls + p.values + (p.gold,))
        return sorted(words)
