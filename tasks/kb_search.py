"""kb-search: multi-hop questions over a seeded synthetic knowledge base, answered through a real BM25 index.

The world is a set of entities (person, company, city, country) and one fact per person and
relation (born_in, works_for), company (based_in) and city (located_in). Every fact is a
document "<head> <relation> <tail>" and every entity a document "<name> is a <type>"; all are
indexed with bm25s. A question "question bako born_in located_in" asks for the entity at the
end of the chain. The agent searches ("search <words...>", top_k documents come back) and
answers ("answer <entity>"). The task is deterministic: Q* is exact (0 or 1).

Held-out coverage (docs/design.md#data-recipes): each seed holds out some people. Their questions only
go to dev and test, so their born_in and works_for documents never appear in a train expert
episode, while exploration retrieves them: it never starts at a dev or test question, and half its
episodes start at one-hop questions (`question <person> born_in`) that no split holds. The other test questions are
built so that train expert episodes retrieve every document they need.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.core.registry import register_task
from harness.core.streams import stream
from harness.core.traces import FORMAT_WORDS
from tasks.base import INVALID_ACTION, Splits, Step, TaskConfig, knob
from tasks.bm25_index import Bm25Index

RELATIONS = ("born_in", "works_for", "based_in", "located_in")
TYPES = ("person", "company", "city", "country")
CHAIN_BORN = ("born_in", "located_in")
CHAIN_WORK = ("works_for", "based_in")
CHAIN_WORK3 = ("works_for", "based_in", "located_in")
CHAINS = (CHAIN_BORN, CHAIN_WORK, CHAIN_WORK3)
"""Question chains from a person. Two start with works_for so that a test question can be fully
covered by a different train question about the same person (see `KbSearch.splits`)."""
ONE_HOP = (("born_in",), ("works_for",))
"""Chains of exploration-only questions: no split holds them (see `KbSearch.sample_instance`)."""
EXPLORE_ONE_HOP = 0.5
"""Share of exploration episodes that start at a one-hop question."""
FIXED_WORDS = (
    "is", "a", "question", "search", "answer", "correct", "wrong", "no", "results", "|",
    "need", "of", "facts", "none", "turns", *INVALID_ACTION.split(),
)  # fmt: skip
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
# Salts keep the world's and the splits' random streams apart while both derive from knobs and seed.


def _round(x: float) -> int:
    return int(np.floor(x + 0.5))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class KbSearchConfig(TaskConfig):
    """Knobs of kb-search: world size, question mix, retrieval depth and slack turns."""

    n_train: int = knob(50, "train questions (expert episodes are played on these)", 1, 100_000)
    n_dev: int = knob(8, "dev questions (for model selection; never the test split)", 0, 100_000)
    n_test: int = knob(40, "test questions (evaluation only)", 1, 100_000)
    n_people: int = knob(40, "people in the knowledge base (each has born_in and works_for)", 2, 2000)
    n_companies: int = knob(8, "companies (each based_in a city)", 1, 200)
    n_cities: int = knob(10, "cities (each located_in a country)", 1, 200)
    n_countries: int = knob(4, "countries", 1, 50)
    three_hop_share: float = knob(0.3, "share of 3-hop questions; the rest are 2-hop", 0.0, 1.0)
    top_k: int = knob(1, "documents returned per search", 1, 5)
    extra_turns: int = knob(1, "slack turns: horizon = hops + 1 + extra_turns", 0, 5)
    world_seed: int = knob(0, "seed of the knowledge base (names and facts)", 0, 2**31 - 1)

    def problem(self) -> str | None:
        """Returns why these knobs are inconsistent (countries without cities, splits too big), or None."""
        if self.n_countries > self.n_cities:
            return f"n_countries ({self.n_countries}) exceeds n_cities ({self.n_cities}): a country would be empty"
        if self.n_cities > self.n_people or self.n_companies > self.n_people:
            return "n_cities and n_companies may not exceed n_people (every one of them must be reachable)"
        held_people, test_held, dev_held = split_sizes(self)
        seen = self.n_test + self.n_dev - test_held - dev_held
        if self.n_train < seen:
            return f"n_train ({self.n_train}) must be at least the {seen} dev+test questions that are not held out"
        seen_people = max(seen, _ceil_div(self.n_train + seen, len(CHAINS)))
        if held_people + seen_people > self.n_people:
            return (
                f"n_people ({self.n_people}) too small for the splits: {held_people} held-out and "
                f"{seen_people} other people needed ({len(CHAINS)} questions each)"
            )
        return None


def split_sizes(config: KbSearchConfig) -> tuple[int, int, int]:
    """Returns (held-out people, held-out test questions, held-out dev questions) for `config`."""
    test_held = _round(config.heldout_share * config.n_test)
    dev_held = _round(config.heldout_share * config.n_dev)
    held = test_held + dev_held
    seen = config.n_test + config.n_dev - held
    seen_people = max(seen, _ceil_div(config.n_train + seen, len(CHAINS)))
    # Spread held-out questions over more people (about two each) when the others leave room.
    people = max(_ceil_div(held, len(CHAINS)), min(_ceil_div(held, 2), config.n_people - seen_people))
    return people, test_held, dev_held


@dataclass(frozen=True)
class KbQuestion:
    """One question: the chain of relations from `entity`, and the entity it ends at."""

    id: str
    entity: str
    relations: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class KbState:
    """The Markov state: the question, the documents retrieved so far, the turn and the outcome."""

    entity: str
    relations: tuple[str, ...]
    answer: str
    retrieved: frozenset[int]
    t: int
    done: bool
    success: bool


def _names(rng: np.random.Generator, n: int) -> list[str]:
    """Returns `n` distinct pronounceable names of 2-3 consonant-vowel syllables."""
    banned = set(FIXED_WORDS) | set(FORMAT_WORDS) | set(TYPES) | set(RELATIONS)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        syllables = rng.integers([len(CONSONANTS), len(VOWELS)], size=(int(rng.integers(2, 4)), 2))
        name = "".join(CONSONANTS[c] + VOWELS[v] for c, v in syllables)
        if name not in seen and name not in banned:
            seen.add(name)
            names.append(name)
    return names


def _spread(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """Returns n targets in range(k), each used at least once when n >= k, in random order."""
    return [int(i) for i in rng.permutation(np.arange(n) % k)]


@register_task("kb-search")
class KbSearch:
    """Multi-hop question answering over a synthetic knowledge base with a real BM25 search tool."""

    name: ClassVar[str] = "kb-search"
    family: ClassVar[str] = "search"
    version: ClassVar[int] = 3
    Config: ClassVar[type[TaskConfig]] = KbSearchConfig

    def __init__(self, config: KbSearchConfig):
        self.config = config
        c = config
        rng = stream(c.world_seed, "kb-search-world")
        names = _names(rng, c.n_people + c.n_companies + c.n_cities + c.n_countries)
        self.people = names[: c.n_people]
        self.companies = names[c.n_people : c.n_people + c.n_companies]
        self.cities = names[c.n_people + c.n_companies : len(names) - c.n_countries]
        self.countries = names[len(names) - c.n_countries :]
        born = _spread(rng, c.n_people, c.n_cities)
        works = _spread(rng, c.n_people, c.n_companies)
        based = _spread(rng, c.n_companies, c.n_cities)
        located = _spread(rng, c.n_cities, c.n_countries)
        facts = [(p, "born_in", self.cities[born[i]]) for i, p in enumerate(self.people)]
        facts += [(p, "works_for", self.companies[works[i]]) for i, p in enumerate(self.people)]
        facts += [(co, "based_in", self.cities[based[i]]) for i, co in enumerate(self.companies)]
        facts += [(ci, "located_in", self.countries[located[i]]) for i, ci in enumerate(self.cities)]
        self.tail = {(h, r): t for h, r, t in facts}
        self.fact_doc = {(h, r): i for i, (h, r, _) in enumerate(facts)}
        kinds = zip(TYPES, (self.people, self.companies, self.cities, self.countries))
        entities = [(e, kind) for kind, group in kinds for e in group]
        self.docs = [" ".join(f) for f in facts] + [f"{e} is a {kind}" for e, kind in entities]
        self.doc_entities = [(h, t) for h, _, t in facts] + [(e,) for e, _ in entities]
        self.index = Bm25Index(self.docs, c.top_k)
        self._value: dict[KbState, float] = {}

    def answer_of(self, entity: str, relations: Sequence[str]) -> str:
        """Returns the entity at the end of the chain `relations` from `entity`."""
        for r in relations:
            entity = self.tail[(entity, r)]
        return entity

    def question(self, qid: str, person: int, chain: tuple[str, ...]) -> KbQuestion:
        """Returns the question `chain` about the person with index `person`."""
        entity = self.people[person]
        return KbQuestion(qid, entity, chain, self.answer_of(entity, chain))

    def splits(self, seed: int) -> Splits:
        """Returns disjoint train/dev/test questions of `seed`, heldout_share of the eval ones held out.

        Held-out people only get dev/test questions. Every other dev/test question asks about a
        person whose other works_for question is in train, which retrieves all it needs (a
        3-hop question whose last city is not covered swaps roles with its 2-hop partner).
        """
        c = self.config
        rng = stream(c.world_seed, "kb-search-split", seed)
        held_people, test_held, dev_held = split_sizes(c)
        people = [int(i) for i in rng.permutation(c.n_people)]
        held, rest = people[:held_people], people[held_people:]
        n_seen = c.n_test + c.n_dev - test_held - dev_held
        seen, train = [], []
        for p in rest[:n_seen]:
            three = rng.random() < c.three_hop_share
            seen.append((p, CHAIN_WORK3 if three else CHAIN_WORK))
            train.append((p, CHAIN_WORK if three else CHAIN_WORK3))
        taken = set(seen) | set(train)
        train += self._draw([(p, ch) for p in rest for ch in CHAINS if (p, ch) not in taken], c.n_train - n_seen, rng)
        covered = set().union(*(self._required(self.people[p], ch) for p, ch in train))
        for i, (p, ch) in enumerate(seen):
            if not self._required(self.people[p], ch) <= covered:
                seen[i], train[i] = (p, CHAIN_WORK), (p, CHAIN_WORK3)
                covered |= self._required(self.people[p], CHAIN_WORK3)
        held_eval = self._draw([(p, ch) for p in held for ch in CHAINS], test_held + dev_held, rng)
        n_test_seen = c.n_test - test_held
        groups = {
            "train": train,
            "dev": held_eval[test_held:] + seen[n_test_seen:],
            "test": held_eval[:test_held] + seen[:n_test_seen],
        }
        out = {}
        for split, questions in groups.items():
            order = rng.permutation(len(questions))
            out[split] = tuple(
                self.question(f"kb-search-s{seed}-{split}-{i}", *questions[j]) for i, j in enumerate(order)
            )
        return Splits(**out)

    def _draw(self, pool: list[tuple[int, tuple[str, ...]]], n: int, rng: np.random.Generator) -> list:
        """Returns `n` questions drawn without replacement from `pool`, 3-hop with prob three_hop_share."""
        by_hops = {3: [q for q in pool if len(q[1]) == 3], 2: [q for q in pool if len(q[1]) == 2]}
        drawn = []
        for _ in range(n):
            want = 3 if rng.random() < self.config.three_hop_share else 2
            group = by_hops[want] or by_hops[5 - want]
            j = int(rng.integers(len(group)))
            group[j], group[-1] = group[-1], group[j]
            drawn.append(group.pop())
        return drawn

    def _required(self, entity: str, chain: Sequence[str]) -> frozenset[int]:
        docs = set()
        for r in chain:
            docs.add(self.fact_doc[(entity, r)])
            entity = self.tail[(entity, r)]
        return frozenset(docs)

    def sample_instance(self, rng: np.random.Generator) -> KbQuestion:
        """Returns a question about any person of the world (exploration starts here, outside dev and test).

        Half are one-hop questions (`question <person> born_in`), which no split holds: with 120
        multi-hop questions in the default world, 48 of them dev and test, exploration from the
        multi-hop questions that remain would miss a third of the held-out people's documents.
        """
        person = int(rng.integers(self.config.n_people))
        if rng.random() < EXPLORE_ONE_HOP:
            chain = ONE_HOP[int(rng.integers(len(ONE_HOP)))]
        elif rng.random() < self.config.three_hop_share:
            chain = CHAIN_WORK3
        else:
            chain = (CHAIN_BORN, CHAIN_WORK)[int(rng.integers(2))]
        return self.question(f"kb-search-world-{person}-{'-'.join(chain)}", person, chain)

    def reset(self, instance: KbQuestion) -> KbState:
        """Returns the start state of `instance`: nothing retrieved, turn 0."""
        return KbState(instance.entity, instance.relations, instance.answer, frozenset(), 0, False, False)

    def horizon(self, state: KbState) -> int:
        """Returns the turn limit of the state's question: hops + 1 + extra_turns."""
        return len(state.relations) + 1 + self.config.extra_turns

    def prompt(self, state: KbState) -> str:
        """Returns "question <entity> <relations...>"."""
        return " ".join(("question", state.entity, *state.relations))

    def overlap_patterns(self, instance: KbQuestion) -> list[str]:
        """Returns regexes of training texts whose hop chain overlaps this question's (the contamination audit).

        The question inside a longer one (`question e r1` in `question e r1 r2 ...`), and each of its proper
        sub-questions, alone or inside a longer question: a contiguous part of its chain asked from the
        entity where that part starts (`question e r1` and `question t r2` for `question e r1 r2`, t the
        tail of r1 from e).
        """
        relations = "(?: (?:" + "|".join(RELATIONS) + "))"
        patterns = [rf"(?<!\S){re.escape(self.prompt(self.reset(instance)))}{relations}+(?!\S)"]
        entities = [instance.entity]
        for r in instance.relations:
            entities.append(self.tail[(entities[-1], r)])
        n = len(instance.relations)
        for i in range(n):
            for j in range(i + 1, n + 1):
                if (i, j) != (0, n):
                    words = " ".join(("question", entities[i], *instance.relations[i:j]))
                    patterns.append(rf"(?<!\S){re.escape(words)}(?!\S)")
        return patterns

    def describe(self, state: KbState) -> str:
        """Returns the question, the retrieved documents (by document id) and the turns left."""
        facts = " | ".join(self.docs[i] for i in sorted(state.retrieved)) or "none"
        return f"{self.prompt(state)} facts {facts} turns {self.horizon(state) - state.t}"

    def _progress(self, state: KbState) -> tuple[str, str | None]:
        """Returns (entity reached, next relation to look up or None) from the retrieved documents."""
        entity = state.entity
        for r in state.relations:
            if self.fact_doc[(entity, r)] not in state.retrieved:
                return entity, r
            entity = self.tail[(entity, r)]
        return entity, None

    def thought(self, state: KbState) -> str:
        """Returns "need <relation> of <entity>" for the next missing hop, or "answer is <entity>"."""
        entity, relation = self._progress(state)
        return f"need {relation} of {entity}" if relation else f"answer is {entity}"

    def expert(self, state: KbState) -> str:
        """Returns "search <entity> <relation>" for the next missing hop, or "answer <entity>" at the end."""
        entity, relation = self._progress(state)
        return f"search {entity} {relation}" if relation else f"answer {entity}"

    def step(self, state: KbState, action: str, rng: np.random.Generator) -> Step:
        """Returns the result of `action`; draws one uniform number though the world is deterministic."""
        rng.random()
        return self._transition(state, action)

    def outcomes(self, state: KbState, action: str) -> list[tuple[float, Step]]:
        """Returns the one step `action` leads to: kb-search is deterministic."""
        return [(1.0, self._transition(state, action))]

    def _transition(self, state: KbState, action: str) -> Step:
        if state.done:
            return Step(state, INVALID_ACTION, True, 0.0)
        words = action.split()
        verb, args = (words[0], words[1:]) if words else ("", [])
        retrieved, done, success = state.retrieved, False, False
        if verb == "search" and args:
            hits = self.index.search(args)
            observation = " | ".join(self.docs[i] for i in hits) if hits else "no results"
            retrieved = retrieved | frozenset(hits)
        elif verb == "answer" and args:
            done, success = True, args == [state.answer]
            observation = "correct" if success else "wrong"
        else:
            observation = INVALID_ACTION
        t = state.t + 1
        done = done or t >= self.horizon(state)
        nxt = dataclasses.replace(state, retrieved=retrieved, t=t, done=done, success=success)
        return Step(nxt, observation, done, float(success))

    def legal_actions(self, state: KbState) -> list[str]:
        """Returns "search <e> <r>" for every known entity and relation, then "answer <e>" per known entity."""
        known = dict.fromkeys([state.entity] + [e for i in sorted(state.retrieved) for e in self.doc_entities[i]])
        return [f"search {e} {r}" for e in known for r in RELATIONS] + [f"answer {e}" for e in known]

    def q_star(self, state: KbState, plan: Sequence[str]) -> float:
        """Returns 1.0 if executing `plan`, then the expert, answers right within the horizon, else 0.0."""
        for action in plan:
            if state.done:
                break
            state = self._transition(state, action).state
        return self._expert_value(state)

    def _expert_value(self, state: KbState) -> float:
        if state not in self._value:
            end = state
            while not end.done:
                end = self._transition(end, self.expert(end)).state
            self._value[state] = float(end.success)
        return self._value[state]

    def items(self, state: KbState, action: str, nxt: KbState) -> frozenset:
        """Returns the ids of the documents the transition retrieves for the first time."""
        return nxt.retrieved - state.retrieved

    def required(self, instance: KbQuestion) -> frozenset:
        """Returns the ids of the fact documents on the gold chain of `instance`."""
        return self._required(instance.entity, instance.relations)

    def vocabulary(self) -> list[str]:
        """Returns the fixed words, relations, types, turn counts (0 to the longest horizon) and every name."""
        numbers = [str(i) for i in range(len(CHAIN_WORK3) + 2 + self.config.extra_turns)]
        names = self.people + self.companies + self.cities + self.countries
        return [*FIXED_WORDS, *RELATIONS, *TYPES, *numbers, *names]
