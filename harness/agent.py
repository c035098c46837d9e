"""The batched multi-turn agent loop: many episodes advance together against a task.

All episodes of a batch share one KV cache. Each turn feeds the tokens the world wrote since the
last turn (the prompt first, then the observation), then samples the agent's turn token by token
until a stop token (a newline or eos) or the turn's token limit. Sequences are ragged, so the cache
holds padding in the middle; an attention mask hides it and position ids count only real tokens.
The history is therefore encoded once, never re-encoded per turn.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache

from harness.traces import AgentTurn, ParseError, normalize, parse_turn, render_observation
from tasks.base import Task


@dataclass(frozen=True)
class Sampling:
    """How turns are decoded: greedy (temperature 0) or sampled with an explicit seed."""

    temperature: float = 0.0
    max_turn_tokens: int = 48
    seed: int = 0


@dataclass
class Turn:
    """One agent turn: what the model wrote, what it parsed to, and what the world answered."""

    state: Hashable
    output: str
    parsed: AgentTurn | ParseError
    action: str
    observation: str
    token_ids: list[int] = field(default_factory=list)
    """The tokens the model generated for this turn."""


@dataclass
class AgentEpisode:
    """One episode played by the model, with its tokens for RL (prompt, completion, masks)."""

    instance_id: str
    prompt: str
    turns: list[Turn] = field(default_factory=list)
    success: bool = False
    final_state: Hashable | None = None
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    """1 for tokens the model wrote, 0 for tokens the world wrote (never trained on)."""
    logprobs: list[float] = field(default_factory=list)
    """Sampling log-probability of each completion token (0.0 for world tokens)."""


def encode(tokenizer: Any, text: str) -> list[int]:
    """Returns the token ids of one segment, without special tokens (segments are encoded apart)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_segments(tokenizer: Any, texts: Sequence[str], agent: Sequence[bool]) -> tuple[list[int], list[int]]:
    """Returns the ids of the segments concatenated and a mask with 1 on agent-written tokens."""
    ids: list[int] = []
    mask: list[int] = []
    for text, by_agent in zip(texts, agent, strict=True):
        piece = encode(tokenizer, text)
        ids += piece
        mask += [int(by_agent)] * len(piece)
    return ids, mask


def action_of(parsed: AgentTurn | ParseError) -> str:
    """Returns the action to execute: the parsed one, or for a failed parse the text after 'act'."""
    if not isinstance(parsed, ParseError):
        return parsed.action
    words = parsed.text.split()
    if "act" in words:
        last = len(words) - 1 - words[::-1].index("act")
        return " ".join(words[last + 1 :])
    return parsed.text


class _Batch:
    """The shared cache of a batch of sequences, with ragged lengths hidden by the mask."""

    def __init__(self, model: Any, size: int, pad_id: int) -> None:
        self.model = model
        self.pad_id = pad_id
        self.cache = DynamicCache()
        self.mask = torch.zeros(size, 0, dtype=torch.long)
        self.lengths = torch.zeros(size, dtype=torch.long)

    @torch.no_grad()
    def feed(self, pieces: list[list[int]]) -> torch.Tensor:
        """Feeds each sequence its own token list (possibly empty); returns each one's last logits."""
        width = max(1, max(len(p) for p in pieces))
        ids = torch.full((len(pieces), width), self.pad_id, dtype=torch.long)
        new_mask = torch.zeros(len(pieces), width, dtype=torch.long)
        for i, piece in enumerate(pieces):
            ids[i, : len(piece)] = torch.tensor(piece, dtype=torch.long)
            new_mask[i, : len(piece)] = 1
        positions = self.lengths[:, None] + torch.cumsum(new_mask, dim=1) - 1
        positions = positions.clamp(min=0)
        self.mask = torch.cat([self.mask, new_mask], dim=1)
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = out.past_key_values
        counts = new_mask.sum(dim=1)
        self.lengths = self.lengths + counts
        last = (counts - 1).clamp(min=0)
        return out.logits[torch.arange(len(pieces)), last].float()


def _sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns sampled token ids and their log-probabilities under the sampling distribution."""
    if sampling.temperature <= 0:
        logp = torch.log_softmax(logits, dim=-1)
        token = logits.argmax(dim=-1)
    else:
        logp = torch.log_softmax(logits / sampling.temperature, dim=-1)
        token = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
    return token, logp.gather(1, token[:, None]).squeeze(1)


def run_episodes(
    model: Any,
    tokenizer: Any,
    task: Task,
    instances: Sequence[Any],
    rngs: Sequence[np.random.Generator],
    fmt: str,
    sampling: Sampling,
    stop_ids: Sequence[int],
    prefix: str = "",
    max_turns: int | None = None,
) -> list[AgentEpisode]:
    """Returns one played episode per instance, all advanced together in one batch.

    `prefix` (few-shot examples) is read before each prompt and counts as part of the prompt.
    `max_turns` stops every episode after that many turns (to sample first moves).
    """
    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    generator = torch.Generator().manual_seed(sampling.seed)
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
    states = [task.reset(inst) for inst in instances]
    episodes = [AgentEpisode(inst.id, task.prompt(s)) for inst, s in zip(instances, states, strict=True)]
    pending = [encode(tokenizer, prefix + ep.prompt + "\n") for ep in episodes]
    for ep, ids in zip(episodes, pending):
        ep.prompt_ids = list(ids)
    batch = _Batch(model, len(instances), pad_id)
    turns = 0
    while any(not s.done for s in states) and (max_turns is None or turns < max_turns):
        turns += 1
        active = torch.tensor([not s.done for s in states])
        logits = batch.feed([p if a else [] for p, a in zip(pending, active.tolist())])
        written: list[list[int]] = [[] for _ in instances]
        open_ = active.clone()
        for _ in range(sampling.max_turn_tokens):
            token, logp = _sample(logits, sampling, generator)
            for i in torch.nonzero(open_).flatten().tolist():
                written[i].append(int(token[i]))
                episodes[i].completion_ids.append(int(token[i]))
                episodes[i].env_mask.append(1)
                episodes[i].logprobs.append(float(logp[i]))
            open_ &= ~torch.isin(token, stops)
            if not open_.any():
                break
            logits = batch.feed([[int(token[i])] if open_[i] else [] for i in range(len(instances))])
        for i in torch.nonzero(active).flatten().tolist():
            output = tokenizer.decode(written[i], skip_special_tokens=True)
            parsed = parse_turn(output, fmt)
            action = normalize(action_of(parsed))
            result = task.step(states[i], action, rngs[i])
            turn = Turn(states[i], normalize(output), parsed, action, result.observation, written[i])
            episodes[i].turns.append(turn)
            states[i] = result.state
            episodes[i].success = result.reward > 0
            if not result.state.done:
                observation = encode(tokenizer, render_observation(result.observation) + "\n")
                episodes[i].completion_ids += observation
                episodes[i].env_mask += [0] * len(observation)
                episodes[i].logprobs += [0.0] * len(observation)
                # The turn's last token was sampled but never fed to the cache: it goes first.
                pending[i] = written[i][-1:] + observation
    for ep, state in zip(episodes, states):
        ep.final_state = state
    return episodes
