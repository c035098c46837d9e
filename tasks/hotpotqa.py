"""hotpotqa: multi-hop questions in the HotpotQA schema, answered by searching the question's paragraphs.

Records hold `question`, `answer`, `type`, `level`, `supporting_facts` (titles with sentence ids)
and `context` (titles with their sentences), either in the original JSON layout (lists of pairs:
`[[title, sent_id], ...]`, `[[title, [sentence, ...]], ...]`) or in the datasets-hub layout
(dicts of lists: `{"title": [...], "sent_id": [...]}`, `{"title": [...], "sentences": [...]}`).
This is the distractor setting: `search <query>` ranks the question's own context paragraphs with
the bm25s index of kb-search (a paragraph whose title equals the query ranks first, as a wiki's
"go to page" would) and returns the top paragraph's title and its first `sentences` sentences;
`answer <text>` ends the episode, a success on normalized exact match (the official HotpotQA
normalization), with token F1 kept beside it (`episode_scores`). The expert searches the
supporting-fact titles in order, then answers.

Q* is exact: the world is deterministic (`outcomes` is one step) and the expert knows the gold
answer (the value of an answer-reading oracle; see docs/benchmarks.md). The reference policy of
D_look's p (`tasks.base.NoisyExpert`) is exact too: the expert and the legal actions depend on the
set of titles found, so its values range over the subsets of a question's paragraphs that fit in
its few turns.
"""

from __future__ import annotations

import collections
import re
import string
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.core.errors import HarnessError
from harness.core.registry import register_task
from harness.core.traces import RESERVED
from tasks.base import INVALID_ACTION, knob
from tasks.benchmark_files import BenchmarkConfig, Located, plain_text, record_id
from tasks.bm25_index import Bm25Index
from tasks.tool_answer import ToolAnswerTask

FIXED_WORDS = ("question", "found", "turns", "none", "search", "answer", "correct", "wrong", "need", "is", "no")
FIXED_WORDS += ("results", ":", "yes", *INVALID_ACTION.split())
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Returns the official HotpotQA normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> bool:
    """Returns whether the normalized prediction equals the normalized gold answer."""
    return normalize_answer(prediction) == normalize_answer(gold)


def answer_f1(prediction: str, gold: str) -> float:
    """Returns token F1 of the normalized answers (official rule: yes/no/noanswer must match exactly)."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in ("yes", "no", "noanswer") or ref in ("yes", "no", "noanswer")) and pred != ref:
        return 0.0
    common = collections.Counter(pred.split()) & collections.Counter(ref.split())
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred.split()), same / len(ref.split())
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class HotpotConfig(BenchmarkConfig):
    """Knobs of hotpotqa: data, splits, slack turns and how much of a paragraph a search shows."""

    sentences: int = knob(2, "sentences of the top paragraph a search returns", 1, 20)


@dataclass(frozen=True)
class HotpotQuestion:
    """One question with its context paragraphs (title, sentences) and its supporting titles in order."""

    id: str
    question: str
    answer: str
    type: str
    level: str
    paragraphs: tuple[tuple[str, tuple[str, ...]], ...]
    support: tuple[str, ...]

    def __hash__(self) -> int:
        # States hash their question on every lookup of the reference policy's tables: the id
        # identifies it, where hashing every paragraph would dominate the cost.
        return hash(self.id)


@dataclass(frozen=True)
class HotpotState:
    """The Markov state: the question, the titles found so far, the turn, the outcome and the answer's F1."""

    question: HotpotQuestion
    found: tuple[str, ...]
    """The titles found so far, each once, in the order of the question's paragraphs."""
    t: int
    done: bool
    success: bool
    f1: float = 0.0


def _pairs(value: Any, keys: tuple[str, str], where: str, field: str) -> list[tuple[Any, Any]]:
    """Returns (a, b) pairs from either layout: a list of pairs or a dict of two parallel lists."""
    if isinstance(value, dict):
        if not all(isinstance(value.get(k), list) for k in keys) or len(value[keys[0]]) != len(value[keys[1]]):
            raise HarnessError(f"{where}: '{field}' must hold lists '{keys[0]}' and '{keys[1]}' of equal length")
        return list(zip(value[keys[0]], value[keys[1]]))
    if isinstance(value, list) and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in value):
        return [(a, b) for a, b in value]
    raise HarnessError(f"{where}: '{field}' must be a list of [{keys[0]}, {keys[1]}] pairs or a dict of lists")


def parse_record(record: Any, where: str) -> HotpotQuestion:
    """Returns the question of one HotpotQA record (either layout); HarnessError naming `where` if malformed."""
    if not isinstance(record, dict):
        raise HarnessError(f"{where}: a record must be an object")
    for field in ("question", "answer"):
        if not isinstance(record.get(field), str) or not record[field].strip():
            raise HarnessError(f"{where}: '{field}' is missing or not a non-empty string")
    for field in ("context", "supporting_facts"):
        if field not in record:
            raise HarnessError(f"{where}: '{field}' is missing")
    paragraphs, counts = [], {}  # counts: title -> sentences in the record
    for title, sentences in _pairs(record["context"], ("title", "sentences"), where, "context"):
        if (
            not isinstance(title, str)
            or not isinstance(sentences, list)
            or not all(isinstance(s, str) for s in sentences)
        ):
            raise HarnessError(f"{where}: a context paragraph must be a title and a list of sentences")
        paragraphs.append((plain_text(title, RESERVED), tuple(plain_text(s, RESERVED) for s in sentences if s.strip())))
        counts[paragraphs[-1][0]] = len(sentences)  # sent_id counts blank sentences too
    titles = [t for t, _ in paragraphs]
    support: list[str] = []
    for title, sent_id in _pairs(record["supporting_facts"], ("title", "sent_id"), where, "supporting_facts"):
        if not isinstance(title, str) or not isinstance(sent_id, int):
            raise HarnessError(f"{where}: a supporting fact must be a title and a sentence id")
        title = plain_text(title, RESERVED)
        if title not in titles:
            raise HarnessError(f"{where}: supporting fact title {title!r} is not among the context titles")
        if not 0 <= sent_id < counts[title]:
            raise HarnessError(
                f"{where}: supporting fact ({title!r}, {sent_id}) names no sentence: that paragraph has {counts[title]}"
            )
        if title not in support:
            support.append(title)
    if not support:
        raise HarnessError(f"{where}: no supporting facts")
    return HotpotQuestion(
        id=f"hotpotqa-{record_id(record, where, ('_id', 'id'))}",
        question=plain_text(record["question"], RESERVED),
        answer=plain_text(record["answer"], RESERVED),
        type=str(record.get("type", "")),
        level=str(record.get("level", "")),
        paragraphs=tuple(paragraphs),
        support=tuple(support),
    )


def _terms(text: str) -> list[str]:
    """Returns the lower-case words of `text` without punctuation, as the index sees them."""
    return "".join(" " if ch in _PUNCT else ch for ch in text.lower()).split()


@register_task("hotpotqa")
class HotpotQa(ToolAnswerTask):
    """HotpotQA-format multi-hop questions with BM25 search over each question's paragraphs."""

    name: ClassVar[str] = "hotpotqa"
    family: ClassVar[str] = "search"
    version: ClassVar[int] = 3
    actions_help: ClassVar[str] = (
        "Actions: 'search <title or words>' shows the best matching paragraph of this question's documents; "
        "'answer <text>' gives the final answer and ends the task."
    )
    Config: ClassVar[type[BenchmarkConfig]] = HotpotConfig
    HUB = ("hotpotqa/hotpot_qa", "distractor")
    TOOL = "search"

    def __init__(self, config: HotpotConfig):
        super().__init__(config)
        self._indexes: dict[str, Bm25Index] = {}
        self._hits: dict[tuple[str, str], int | None] = {}

    def parse(self, located: Located, index: int) -> HotpotQuestion:
        """Returns the question of one record; HarnessError naming the file and line of a bad one."""
        return parse_record(located.record, located.where)

    def index(self, question: HotpotQuestion) -> Bm25Index:
        """Returns the bm25s index over the question's paragraphs (title words twice, then the sentences)."""
        if question.id not in self._indexes:
            docs = [" ".join(_terms(t) * 2 + _terms(" ".join(s))) or "_" for t, s in question.paragraphs]
            self._indexes[question.id] = Bm25Index(docs, 1)
        return self._indexes[question.id]

    def search(self, question: HotpotQuestion, query: str) -> int | None:
        """Returns the paragraph a query finds: the one titled exactly so, else the BM25 top hit, else None."""
        key = (question.id, query)
        if key not in self._hits:
            words = _terms(query)
            found = next((i for i, (title, _) in enumerate(question.paragraphs) if _terms(title) == words), None)
            if found is None:
                hits = self.index(question).search(words)
                found = hits[0] if hits else None
            self._hits[key] = found
        return self._hits[key]

    def paragraph_text(self, question: HotpotQuestion, i: int) -> str:
        """Returns what a search shows of paragraph i: "<title> : <first sentences>"."""
        title, sentences = question.paragraphs[i]
        return f"{title} : {' '.join(sentences[: self.config.sentences])}".strip()

    def reset(self, instance: HotpotQuestion) -> HotpotState:
        """Returns the start state: nothing found, turn 0."""
        return HotpotState(instance, (), 0, False, False)

    def horizon(self, state: HotpotState) -> int:
        """Returns the turn limit: one search per supporting title, the answer, and extra_turns."""
        return len(state.question.support) + 1 + self.config.extra_turns

    def prompt(self, state: HotpotState) -> str:
        """Returns "question <text>"."""
        return f"question {state.question.question}"

    def describe(self, state: HotpotState) -> str:
        """Returns the question, the titles found so far and the turns left."""
        found = " | ".join(state.found) or "none"
        return f"{self.prompt(state)} found {found} turns {self.horizon(state) - state.t}"

    def next_need(self, state: HotpotState) -> str | None:
        """Returns the next supporting title not yet found, or None."""
        return next((t for t in state.question.support if t not in state.found), None)

    def gold(self, state: HotpotState) -> str:
        """Returns the gold answer."""
        return state.question.answer

    def use_tool(self, state: HotpotState, query: str) -> tuple[str, dict]:
        """Returns what a search for `query` shows ("no results" when nothing matches) and the titles found after it."""
        hit = self.search(state.question, query)
        if hit is None:
            return "no results", {}
        title, found = state.question.paragraphs[hit][0], state.found
        if title not in found:
            # One canonical order (the paragraphs') keeps states that found the same titles equal.
            found = tuple(dict.fromkeys(t for t, _ in state.question.paragraphs if t in found or t == title))
        return self.paragraph_text(state.question, hit), {"found": found}

    def judge(self, state: HotpotState, text: str) -> tuple[bool, dict]:
        """Returns whether `text` matches the gold answer exactly (normalized), and its token F1."""
        return exact_match(text, state.question.answer), {"f1": answer_f1(text, state.question.answer)}

    def episode_scores(self, state: HotpotState) -> dict[str, float]:
        """Returns the scores reported beside success for an ended episode: the answer's token F1."""
        return {"f1": state.f1}

    def legal_actions(self, state: HotpotState) -> list[str]:
        """Returns "search <title>" for every paragraph, then "answer <title>" per found title, yes and no."""
        titles = [t for t, _ in state.question.paragraphs]
        return [f"search {t}" for t in titles] + [f"answer {a}" for a in (*state.found, "yes", "no")]

    def items(self, state: HotpotState, action: str, nxt: HotpotState) -> frozenset:
        """Returns the (question, title) paragraphs a transition finds for the first time."""
        return frozenset((state.question.id, t) for t in nxt.found if t not in state.found)

    def required(self, instance: HotpotQuestion) -> frozenset:
        """Returns the (question, title) of every supporting paragraph of `instance`."""
        return frozenset((instance.id, t) for t in instance.support)

    def vocabulary(self) -> list[str]:
        """Returns the fixed words, turn counts and every word a question, answer or search result can show."""
        words = set(FIXED_WORDS) | self.turn_words()
        for q in self.instances():
            words.update(q.question.split())
            words.update(q.answer.split())
            for i in range(len(q.paragraphs)):
                words.update(self.paragraph_text(q, i).split())
        return sorted(words)
