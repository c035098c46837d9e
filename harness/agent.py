"""The batched multi-turn agent loop: many episodes advance together against a task.

All episodes of a batch share one KV cache and every forward pass feeds each episode exactly one
token: the prompts are read once (left-padded), then each episode, on its own schedule, either
samples its next token or, after its turn ends (a stop token or the turn's token limit), feeds the
observation the world wrote, one token per step. No episode waits for the others to finish a
turn, so the cache holds no padding in the middle and nothing is ever re-encoded; episodes that
have ended are dropped from the batch as they accumulate. Greedy decoding gives exactly what HF
`generate` gives for one episode played alone with its whole history re-encoded every turn
(tests/harness/test_agent.py).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from harness.core.traces import AgentTurn, ParseError, normalize, parse_turn, render_observation
from tasks.base import Task


@dataclass(frozen=True)
class Sampling:
    """How turns are decoded: greedy (temperature 0) or sampled with an explicit seed.

    With `p_temperature` set, the token right after the success-estimate word (`p_marker`) is
    sampled among `p_values` only, at that temperature (harness/training/p_sampling.py explains why).
    """

    temperature: float = 0.0
    max_turn_tokens: int = 48
    seed: int = 0
    p_temperature: float | None = None
    p_marker: int | None = None
    p_values: tuple[int, ...] = ()


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


REACT_RULES = (
    "Solve the task in turns. In each turn write exactly one line: 'think <what you need next> act <action>'. "
    "The environment answers on a line that starts with 'obs'."
)
FORESIGHT_RULES = (
    "Solve the task in turns. Before each action, look ahead: write exactly one line "
    "'think <what you need next> plan <action> -> <the result you expect> ; <next action> -> <the result you expect> "
    "p <a number from 0.0 to 1.0: how likely this plan, then finishing the task, succeeds> act <the plan's first "
    "action>'. The environment answers on a line that starts with 'obs'."
)
"""The system message a chat model reads (pretrained models only; the tiny model learns the format from data)."""


def chat_prompt(tokenizer: Any, task: Task, fmt: str, prompt: str, prefix: str = "") -> str:
    """Returns the text a model reads before its first turn: the prompt line, or its chat rendering.

    Where the tokenizer has a chat template (instruction-tuned models), the format rules and the
    task's actions are the system message, the few-shot examples and the prompt the user message,
    and the agent's turns follow as the assistant's reply. Otherwise the text is `prefix + prompt`
    on its own line, as the tiny model is trained on.
    """
    if not getattr(tokenizer, "chat_template", None):
        return prefix + prompt + "\n"
    rules = FORESIGHT_RULES if fmt == "foresight" else REACT_RULES
    actions = getattr(task, "actions_help", "")
    system = f"{rules} {actions}".strip()
    user = f"Examples of solved tasks:\n{prefix}\nNow solve this one.\n{prompt}" if prefix else prompt
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


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


class _GrowingLayer(DynamicLayer):
    """A full-attention cache layer in a buffer that doubles when full; `keys`/`values` are views of it.

    DynamicLayer concatenates the whole cache with every new token, which makes decoding quadratic
    in the episode's length; writing into spare capacity keeps a step's cost to its own tokens.
    """

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        n = key_states.shape[-2]
        if not self.is_initialized:
            self.device = key_states.device
            self.is_initialized = True
            self.length = 0
            self._k = key_states.new_empty((*key_states.shape[:2], max(64, 2 * n), key_states.shape[-1]))
            self._v = value_states.new_empty((*value_states.shape[:2], self._k.shape[2], value_states.shape[-1]))
        end = self.length + n
        if end > self._k.shape[2]:
            grown = max(end, 2 * self._k.shape[2])
            k = self._k.new_empty((*self._k.shape[:2], grown, self._k.shape[-1]))
            v = self._v.new_empty((*self._v.shape[:2], grown, self._v.shape[-1]))
            k[:, :, : self.length] = self._k[:, :, : self.length]
            v[:, :, : self.length] = self._v[:, :, : self.length]
            self._k, self._v = k, v
        self._k[:, :, self.length : end] = key_states
        self._v[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keeps only the batch rows `indices`."""
        if self.is_initialized:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]


def _growing_cache(model: Any) -> DynamicCache:
    """Returns a DynamicCache for `model` whose full-attention layers grow in place (sliding ones stay)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [_GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class _Batch:
    """The shared cache of the episodes still playing, one row each, one column per step."""

    def __init__(self, model: Any, pad_id: int, prompts: list[list[int]]) -> None:
        self.model = model
        self.pad_id = pad_id
        self.cache = _growing_cache(model)
        self.rows = list(range(len(prompts)))
        """The episode each row of the batch holds."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        self.mask = torch.zeros(len(prompts), width, dtype=torch.long)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            self.mask[i, width - len(prompt) :] = 1
        self.lengths = self.mask.sum(dim=1)
        self.logits = self._forward(ids, (torch.cumsum(self.mask, dim=1) - 1).clamp(min=0))

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        # The batch's bookkeeping stays on the CPU (sampling draws from a CPU generator, so a GPU run
        # samples what a CPU run would from the same logits); only the forward pass runs on the model's device.
        device = self.model.device
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=self.mask.to(device),
            position_ids=positions.to(device),
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache = out.past_key_values
        return out.logits[:, -1].float().cpu()

    def step(self, tokens: list[int | None]) -> None:
        """Feeds each row its next token (None for an ended episode); `logits` then predicts the next ones."""
        fed = torch.tensor([t is not None for t in tokens], dtype=torch.long)
        ids = torch.tensor([self.pad_id if t is None else t for t in tokens], dtype=torch.long)
        self.mask = torch.cat([self.mask, fed[:, None]], dim=1)
        self.logits = self._forward(ids[:, None], self.lengths[:, None])
        self.lengths = self.lengths + fed

    def keep(self, rows: list[int]) -> None:
        """Keeps only the given rows (positions in the batch), dropping the rest from the cache."""
        index = torch.tensor(rows, dtype=torch.long)
        for layer in self.cache.layers:
            layer.batch_select_indices(index.to(self.model.device))
        self.mask, self.lengths, self.logits = self.mask[index], self.lengths[index], self.logits[index]
        self.rows = [self.rows[r] for r in rows]


def p_value_logits(logits: torch.Tensor, values: Sequence[int], temperature: float) -> torch.Tensor:
    """Returns `logits` (..., vocab) / temperature with every token but the p values at -inf."""
    keep = torch.full_like(logits, float("-inf"))
    index = torch.tensor(list(values), dtype=torch.long, device=logits.device)
    keep[..., index] = 0.0
    return logits / temperature + keep


def _sample(
    logits: torch.Tensor, sampling: Sampling, generator: torch.Generator, at_p: list[bool] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns sampled token ids and their log-probabilities under the sampling distribution.

    Rows flagged in `at_p` (their last written token is the p marker) sample among the p values at
    `sampling.p_temperature`; all rows draw from one multinomial call, so the generator advances
    as it would without them.
    """
    if at_p is not None and any(at_p) and sampling.p_temperature is not None:
        flags = torch.tensor(at_p)[:, None]
        tempered = torch.where(
            flags, p_value_logits(logits, sampling.p_values, sampling.p_temperature), logits / sampling.temperature
        )
        logp = torch.log_softmax(tempered, dim=-1)
        token = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        return token, logp.gather(1, token[:, None]).squeeze(1)
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
    timings: dict[str, float] | None = None,
) -> list[AgentEpisode]:
    """Returns one played episode per instance, all advanced together in one batch.

    `prefix` (few-shot examples) is read before each prompt and counts as part of the prompt.
    `max_turns` stops every episode after that many turns (to sample first moves).
    `timings`, if given, gains the seconds spent in the world (decoding and parsing turns, stepping
    the task, encoding observations) under "env_s".
    """
    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    generator = torch.Generator().manual_seed(sampling.seed)
    stops = set(stop_ids)
    states = [task.reset(inst) for inst in instances]
    episodes = [AgentEpisode(inst.id, task.prompt(s)) for inst, s in zip(instances, states, strict=True)]
    for ep in episodes:
        ep.prompt_ids = encode(tokenizer, chat_prompt(tokenizer, task, fmt, ep.prompt, prefix))
    playing = [not s.done and max_turns != 0 for s in states]
    if not any(playing):
        return _finish(episodes, states)
    batch = _Batch(model, pad_id, [ep.prompt_ids for ep in episodes])
    play = _Play(task, tokenizer, fmt, rngs, sampling, stops, max_turns, episodes, states, playing)
    explore_p = sampling.p_temperature is not None and sampling.temperature > 0
    while True:
        at_p = [play.at_p_marker(i) for i in batch.rows] if explore_p else None
        tokens, logps = (x.tolist() for x in _sample(batch.logits, sampling, generator, at_p))
        feed: list[int | None] = []
        for row, i in enumerate(batch.rows):
            if playing[i] and not play.queued[i]:
                play.take(i, tokens[row], logps[row])
            feed.append(play.queued[i].pop(0) if playing[i] else None)
        if not any(playing):
            break
        ended = [row for row, i in enumerate(batch.rows) if not playing[i]]
        # Dropping rows copies the cache once; doing it when an eighth of the batch has ended
        # bounds that cost while the ended rows' share of each forward pass stays small.
        if len(ended) * 8 >= len(batch.rows):
            kept = [row for row, i in enumerate(batch.rows) if playing[i]]
            feed = [feed[row] for row in kept]
            batch.keep(kept)
        batch.step(feed)
    if timings is not None:
        timings["env_s"] = timings.get("env_s", 0.0) + play.env_s
    return _finish(episodes, states)


@dataclass
class _Play:
    """The episodes of one batch being played: what each wrote this turn, and the tokens it must feed
    before it samples again (the turn's last token and the observation)."""

    task: Task
    tokenizer: Any
    fmt: str
    rngs: Sequence[np.random.Generator]
    sampling: Sampling
    stops: set[int]
    max_turns: int | None
    episodes: list[AgentEpisode]
    states: list[Any]
    playing: list[bool]
    written: list[list[int]] = field(init=False)
    queued: list[list[int]] = field(init=False)
    env_s: float = 0.0
    """Seconds spent in the world: decoding and parsing turns, stepping the task, encoding observations."""

    def __post_init__(self) -> None:
        self.written = [[] for _ in self.episodes]
        self.queued = [[] for _ in self.episodes]

    def at_p_marker(self, i: int) -> bool:
        """Returns whether episode i's last written token is the word before p (its next token is p's value)."""
        return bool(self.written[i]) and self.written[i][-1] == self.sampling.p_marker

    def take(self, i: int, token: int, logp: float) -> None:
        """Records the token episode i sampled; at a stop token or the turn's length limit, ends its turn."""
        episode = self.episodes[i]
        self.written[i].append(token)
        episode.completion_ids.append(token)
        episode.env_mask.append(1)
        episode.logprobs.append(logp)
        if token not in self.stops and len(self.written[i]) != self.sampling.max_turn_tokens:
            self.queued[i] = [token]
            return
        started = time.perf_counter()
        playing, observation = _end_turn(
            self.task, self.tokenizer, episode, self.states, i, self.written[i], self.fmt, self.rngs
        )
        self.env_s += time.perf_counter() - started
        self.playing[i] = playing and (self.max_turns is None or len(episode.turns) < self.max_turns)
        self.queued[i] = [token, *observation] if self.playing[i] else []
        self.written[i] = []


def _end_turn(
    task: Task,
    tokenizer: Any,
    episode: AgentEpisode,
    states: list[Any],
    i: int,
    written: list[int],
    fmt: str,
    rngs: Sequence[np.random.Generator],
) -> tuple[bool, list[int]]:
    """Steps episode i's world with the turn it wrote; returns (still playing, observation tokens)."""
    output = tokenizer.decode(written, skip_special_tokens=True)
    parsed = parse_turn(output, fmt)
    action = normalize(action_of(parsed))
    result = task.step(states[i], action, rngs[i])
    episode.turns.append(Turn(states[i], normalize(output), parsed, action, result.observation, list(written)))
    states[i] = result.state
    episode.success = result.reward > 0
    if result.state.done:
        return False, []
    observation = encode(tokenizer, render_observation(result.observation) + "\n")
    episode.completion_ids += observation
    episode.env_mask += [0] * len(observation)
    episode.logprobs += [0.0] * len(observation)
    return True, observation


def _finish(episodes: list[AgentEpisode], states: list[Any]) -> list[AgentEpisode]:
    for ep, state in zip(episodes, states):
        ep.final_state = state
    return episodes
