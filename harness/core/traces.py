"""Renders and parses the two agent formats (ReAct and foresight) and the world-model lines.

An episode is text made of segments, each either written by the agent (trained on) or by the
world (context only):

    <prompt>\\n                                              world
    think <thought> act <action>\\n                           agent (ReAct)
    plan <a1> -> <o1> ; <a2> -> <o2> p 0.7 act <a1>\\n     agent (foresight)
    obs <observation>\\n                                      world

A foresight block writes its rollout interleaved with its plan: each planned action is followed
by the observation it is predicted to bring (`->`, as in the world-model lines of D_world), so a
prediction is conditioned on the action it follows, and the next action on the predicted state.

Words are separated by single spaces, so a WordLevel tokenizer sees one token per word. The
words in RESERVED may not occur inside task actions or observations. Parsing never raises: a
failure is a `ParseError` value, counted in the format rate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

RESERVED = ("think", "act", "obs", "plan", "rollout", "p", ";", "->", "world", "success", "failure")
P_WORDS = tuple(f"{i / 10:.1f}" for i in range(11))
"""Success estimates are written with one decimal, so each is one word: 0.0 ... 1.0."""
FORMAT_WORDS = RESERVED + P_WORDS
FORMATS = ("react", "foresight")
PLAN_SEP = " ; "

_REACT = re.compile(r"^think (?P<thought>.*?) ?act (?P<action>.+)$")
_FORESIGHT = re.compile(r"^think (?P<thought>.*?) ?plan (?P<steps>.+?) p (?P<p>\S+) act (?P<action>.+)$")
STEP_ARROW = " -> "
"""Between an action and the observation it brings, in foresight blocks and D_world lines alike."""
FORMAT_VERSION = "v3"
"""Bumped whenever rendered text changes, so cached stages trained on older text are not reused."""


@dataclass(frozen=True)
class ReactTurn:
    """A ReAct turn: a thought, then an action."""

    thought: str
    action: str


@dataclass(frozen=True)
class ForesightBlock:
    """A foresight turn: the ReAct thought, then plan (next k actions) with its rollout (the
    observation predicted after each), p, then the action. The thought is kept so that the two
    formats differ by the foresight block alone."""

    plan: tuple[str, ...]
    rollout: tuple[str, ...]
    p: float
    action: str
    thought: str = ""


@dataclass(frozen=True)
class ParseError:
    """Why a turn did not parse, with the text that failed."""

    reason: str
    text: str


AgentTurn = ReactTurn | ForesightBlock


def normalize(text: str) -> str:
    """Returns `text` with runs of whitespace collapsed to single spaces, trimmed."""
    return " ".join(text.split())


def round_p(p: float) -> float:
    """Returns p clipped to [0, 1] and rounded half up to the one decimal the format writes."""
    return math.floor(min(1.0, max(0.0, float(p))) * 10 + 0.5) / 10


def render_turn(turn: AgentTurn) -> str:
    """Returns the text of one agent turn, without the newline."""
    if isinstance(turn, ReactTurn):
        thought = f"think {turn.thought} " if turn.thought else "think "
        return f"{thought}act {turn.action}"
    thought = f"think {turn.thought} " if turn.thought else "think "
    steps = PLAN_SEP.join(f"{a}{STEP_ARROW}{o}" for a, o in zip(turn.plan, turn.rollout, strict=True))
    return f"{thought}plan {steps} p {round_p(turn.p):.1f} act {turn.action}"


def parse_turn(text: str, fmt: str) -> AgentTurn | ParseError:
    """Returns the turn that `text` writes in format `fmt`, or a ParseError saying why not."""
    text = normalize(text)
    if fmt == "react":
        return _parse_react(text)
    if fmt == "foresight":
        return _parse_foresight(text)
    return ParseError(f"unknown format {fmt!r}", text)


def _parse_react(text: str) -> ReactTurn | ParseError:
    match = _REACT.match(text)
    if not match:
        return ParseError("not 'think ... act ...'", text)
    action = match["action"]
    if _has_reserved(action):
        return ParseError("reserved word inside the action", text)
    return ReactTurn(thought=match["thought"], action=action)


def _parse_foresight(text: str) -> ForesightBlock | ParseError:
    match = _FORESIGHT.match(text)
    if not match:
        return ParseError("not 'think ... plan <action> -> <observation> ; ... p ... act ...'", text)
    steps = [step.split(STEP_ARROW.strip()) for step in match["steps"].split(";")]
    if any(len(step) != 2 for step in steps):
        return ParseError("a plan step is not '<action> -> <observation>'", text)
    plan = tuple(a.strip() for a, _ in steps)
    rollout = tuple(o.strip() for _, o in steps)
    if any(not a for a in plan) or any(not o for o in rollout):
        return ParseError("empty action or observation in a plan step", text)
    try:
        p = float(match["p"])
    except ValueError:
        return ParseError(f"success estimate {match['p']!r} is not a number", text)
    if not 0.0 <= p <= 1.0:
        return ParseError(f"success estimate {p} outside [0, 1]", text)
    action = match["action"]
    if action != plan[0]:
        return ParseError("action differs from the plan's first step", text)
    if any(_has_reserved(x) for x in plan + rollout):
        return ParseError("reserved word inside the plan or rollout", text)
    return ForesightBlock(plan=plan, rollout=rollout, p=p, action=action, thought=match["thought"])


def _has_reserved(text: str) -> bool:
    return any(word in RESERVED for word in text.split())


def render_observation(observation: str) -> str:
    """Returns the world's segment for an observation, without the newline."""
    return f"obs {observation}"


def episode_segments(prompt: str, turns: Sequence[AgentTurn], observations: Sequence[str]) -> list[tuple[str, bool]]:
    """Returns an episode as (text, written_by_agent) segments, each ending in a newline."""
    segments = [(prompt + "\n", False)]
    for turn, observation in zip(turns, observations, strict=True):
        segments.append((render_turn(turn) + "\n", True))
        segments.append((render_observation(observation) + "\n", False))
    return segments


def render_transition(state: str, action: str, observation: str) -> str:
    """Returns a world-model line 'state, action -> observation' (D_world)."""
    return f"world {state} act {action}{STEP_ARROW}{observation}"


def render_outcome(state: str, plan: Sequence[str], success: bool) -> str:
    """Returns a world-model line 'state, plan -> outcome' (D_world)."""
    return f"world {state} plan {PLAN_SEP.join(plan)}{STEP_ARROW}{'success' if success else 'failure'}"
