"""Render/parse round trips of both agent formats and parse failures that never raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.core.traces import (
    ForesightBlock,
    ParseError,
    ReactTurn,
    episode_segments,
    parse_turn,
    render_outcome,
    render_transition,
    render_turn,
    round_p,
)

BLOCKS = [
    ForesightBlock(("go red", "go blue"), ("at n5", "at n7"), 0.7, "go red"),
    ForesightBlock(("8 - 5",), ("left 3 8",), 1.0, "8 - 5"),
    ForesightBlock(
        ("search bako born_in", "answer rimu"),
        ("bako born_in rimu | rimu is a city", "correct"),
        0.0,
        "search bako born_in",
    ),
]


@pytest.mark.parametrize("block", BLOCKS)
def test_foresight_round_trip(block: ForesightBlock) -> None:
    assert parse_turn(render_turn(block), "foresight") == block


def test_foresight_text_is_exact() -> None:
    assert render_turn(BLOCKS[0]) == "think plan go red -> at n5 ; go blue -> at n7 p 0.7 act go red"
    with_thought = ForesightBlock(("go red",), ("at n5",), 0.7, "go red", "need n7 from n3")
    assert render_turn(with_thought) == "think need n7 from n3 plan go red -> at n5 p 0.7 act go red"
    assert parse_turn(render_turn(with_thought), "foresight") == with_thought


@pytest.mark.parametrize("turn", [ReactTurn("need n7 from n3", "go red"), ReactTurn("", "answer rimu")])
def test_react_round_trip(turn: ReactTurn) -> None:
    assert parse_turn(render_turn(turn), "react") == turn


def test_react_text_is_exact() -> None:
    assert render_turn(ReactTurn("need 24 from 3 5 8", "8 - 5")) == "think need 24 from 3 5 8 act 8 - 5"
    assert render_turn(ReactTurn("", "go red")) == "think act go red"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not 'think"),
        ("think plan go red -> at n5 p 0.7", "not 'think"),
        ("plan go red -> at n5 p 0.7 act go red", "not 'think"),
        ("think plan go red -> at n5 ; go blue p 0.7 act go red", "not '<action> -> <observation>'"),
        ("think plan go red -> at n5 -> at n6 p 0.7 act go red", "not '<action> -> <observation>'"),
        ("think plan go red rollout at n5 p 0.7 act go red", "not '<action> -> <observation>'"),
        ("think plan go red -> at n5 p high act go red", "is not a number"),
        ("think plan go red -> at n5 p 1.5 act go red", "outside [0, 1]"),
        ("think x plan go red -> at n5 p 0.5 act go blue", "differs from the plan"),
        ("think plan go red -> at n5 ; -> at n6 p 0.5 act go red", "empty action or observation"),
        ("think plan go red -> at n5 ; go blue -> p 0.5 act go red", "empty action or observation"),
    ],
)
def test_foresight_failures_are_values(text: str, reason: str) -> None:
    result = parse_turn(text, "foresight")
    assert isinstance(result, ParseError)
    assert reason in result.reason


def test_react_failure_and_unknown_format() -> None:
    assert isinstance(parse_turn("act go red", "react"), ParseError)
    assert isinstance(parse_turn("think x act go red", "cot"), ParseError)


def test_whitespace_is_normalized() -> None:
    assert parse_turn("  think plan go red\n ->  at n5 p 0.7 act go red \n", "foresight") == ForesightBlock(
        ("go red",), ("at n5",), 0.7, "go red"
    )


@given(st.text(max_size=200), st.sampled_from(["react", "foresight"]))
def test_parse_never_raises(text: str, fmt: str) -> None:
    result = parse_turn(text, fmt)
    assert isinstance(result, (ReactTurn, ForesightBlock, ParseError))


def test_round_p_writes_one_decimal() -> None:
    assert [round_p(x) for x in (-0.2, 0.04, 0.05, 0.66, 1.3)] == [0.0, 0.0, 0.1, 0.7, 1.0]


def test_episode_segments_mark_agent_text() -> None:
    segments = episode_segments("goal n7 at n3", [ReactTurn("need n7 from n3", "go red")], ["at n7"])
    assert segments == [
        ("goal n7 at n3\n", False),
        ("think need n7 from n3 act go red\n", True),
        ("obs at n7\n", False),
    ]


def test_world_lines() -> None:
    assert (
        render_transition("goal n7 at n3 left 2", "go red", "at n5") == "world goal n7 at n3 left 2 act go red -> at n5"
    )
    assert render_outcome("goal n7 at n3 left 2", ["go red", "go blue"], True) == (
        "world goal n7 at n3 left 2 plan go red ; go blue -> success"
    )
