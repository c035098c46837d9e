"""The world GSM8K and HotpotQA share: one deterministic tool, then `answer <text>` ends the episode.

An action is `<tool> <input>` (gsm8k's `calc`, hotpotqa's `search`), `answer <text>`, or anything
else, which is INVALID_ACTION and costs a turn. The expert uses the tool on the inputs the
instance's solution needs, in order, then answers the gold answer. The world is deterministic, so
`outcomes` is one step and Q* is exact: play the plan, then the expert, and read the outcome (the
value of an answer-reading oracle; see docs/benchmarks.md).

A subclass says what the tool shows (`use_tool`), how an answer is judged (`judge`), what the
expert needs next (`next_need`) and the gold answer, beside the Task methods of its own (`reset`,
`horizon`, `prompt`, `describe`, `legal_actions`, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from tasks.base import INVALID_ACTION, Step
from tasks.benchmark_files import RecordTask


class ToolAnswerTask(RecordTask):
    """A record task whose turns are a deterministic tool and a final answer (states hold t, done, success)."""

    TOOL: ClassVar[str]
    """The verb of the task's tool (`calc`, `search`)."""

    def use_tool(self, state: Any, text: str) -> tuple[str, dict[str, Any]]:
        """Returns what the tool shows for `text` and the state fields it changes."""
        raise NotImplementedError

    def judge(self, state: Any, text: str) -> tuple[bool, dict[str, Any]]:
        """Returns whether `text` is the right answer and the state fields answering sets."""
        raise NotImplementedError

    def next_need(self, state: Any) -> str | None:
        """Returns the tool input the expert uses next, or None (or empty) when it is ready to answer."""
        raise NotImplementedError

    def gold(self, state: Any) -> str:
        """Returns the gold answer of the state's instance."""
        raise NotImplementedError

    def thought(self, state: Any) -> str:
        """Returns "need <input>" for the expert's next tool input, or "answer is <gold>"."""
        need = self.next_need(state)
        return f"need {need}" if need else f"answer is {self.gold(state)}"

    def expert(self, state: Any) -> str:
        """Returns "<tool> <input>" for the next input the solution needs, then "answer <gold>"."""
        need = self.next_need(state)
        return f"{self.TOOL} {need}" if need else f"answer {self.gold(state)}"

    def step(self, state: Any, action: str, rng: np.random.Generator) -> Step:
        """Returns the result of `action`; draws one uniform number though the world is deterministic."""
        rng.random()
        return self._transition(state, action)

    def _transition(self, state: Any, action: str) -> Step:
        if state.done:
            return Step(state, INVALID_ACTION, True, 0.0)
        verb, _, rest = action.strip().partition(" ")
        done, success, changes = False, False, {}
        if verb == self.TOOL and rest.strip():
            observation, changes = self.use_tool(state, rest)
        elif verb == "answer" and rest.strip():
            success, changes = self.judge(state, rest)
            done, observation = True, "correct" if success else "wrong"
        else:
            observation = INVALID_ACTION
        t = state.t + 1
        done = done or t >= self.horizon(state)
        nxt = dataclasses.replace(state, t=t, done=done, success=success, **changes)
        return Step(nxt, observation, done, float(success))

    def outcomes(self, state: Any, action: str) -> list[tuple[float, Step]]:
        """Returns the one step `action` leads to: the world is deterministic."""
        return [(1.0, self._transition(state, action))]

    def q_star(self, state: Any, plan: Sequence[str]) -> float:
        """Returns 1.0 if executing `plan`, then the expert, answers right within the horizon, else 0.0."""
        for action in plan:
            if state.done:
                break
            state = self._transition(state, action).state
        while not state.done:
            state = self._transition(state, self.expert(state)).state
        return float(state.success)

    def turn_words(self) -> set[str]:
        """Returns every turns-left count a description can show: 0 up to the longest horizon."""
        longest: int = max(self.horizon(self.reset(x)) for x in self.instances())
        return {str(i) for i in range(longest + 1)}
