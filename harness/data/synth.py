"""Generated data sets in the GSM8K and HotpotQA schemas, so the whole pipeline runs without the real sets.

`harness data synth --schema gsm8k|hotpotqa --n N --seed S --out FILE` writes them. Nothing here
is copied from the real data sets: GSM8K-format records are template word problems whose worked
solutions carry correct calculator annotations `<<a*b=c>>` and a final `#### N` line; HotpotQA-
format records are bridge and comparison questions over kb-search's generated knowledge base, each
with its two supporting paragraphs and distractor paragraphs of other entities (the distractor
setting). The same seed gives the same bytes. An --out without a suffix is a folder that gets
disjoint train.jsonl and test.jsonl (questions are unique across the whole output).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.core.store import atomic_write_text
from harness.core.streams import stream
from tasks.kb_search import KbSearch, KbSearchConfig

SCHEMAS = ("gsm8k", "hotpotqa")
LAYOUTS = ("original", "hub")
ITEMS = ("apples", "pencils", "books", "stickers", "cookies", "marbles", "shells", "cards", "stamps", "beads")
SYLLABLES = ("ba", "ko", "mi", "ra", "te", "lu", "si", "no", "da", "ve", "pa", "fi", "go", "ze")


def _name(rng: np.random.Generator) -> str:
    return "".join(SYLLABLES[int(i)] for i in rng.integers(len(SYLLABLES), size=int(rng.integers(2, 4)))).capitalize()


def _int(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1))


def _worked(*steps: tuple[str, str, object, str]) -> str:
    """Returns a worked GSM8K solution: a line per step, then `#### <the last step's value>`.

    A step (lead, expression, value, unit) reads `<lead> <expression>=<<expression=value>>value <unit>.`
    """
    lines = [f"{lead} {expr}=<<{expr}={value}>>{value} {unit}." for lead, expr, value, unit in steps]
    return "\n".join(lines) + f"\n#### {steps[-1][2]}"


def _gift(rng: np.random.Generator) -> tuple[str, str]:
    a, b, name, other, item = _int(rng, 5, 60), _int(rng, 2, 30), _name(rng), _name(rng), str(rng.choice(ITEMS))
    c = _int(rng, 1, a + b - 1)
    s, r = a + b, a + b - c
    question = (
        f"{name} has {a} {item}. {other} gives {name} {b} more. Then {name} gives away {c} of them. "
        f"How many {item} does {name} have now?"
    )
    return question, _worked(
        (f"After the gift {name} has", f"{a}+{b}", s, item), (f"After giving {c} away {name} has", f"{s}-{c}", r, item)
    )


def _change(rng: np.random.Generator) -> tuple[str, str]:
    a, price, name, item = _int(rng, 2, 12), _int(rng, 2, 15), _name(rng), str(rng.choice(ITEMS))
    cost = a * price
    bill = (cost // 10 + 1 + _int(rng, 0, 5)) * 10
    question = (
        f"{name} buys {a} packs of {item} at ${price} each and pays with ${bill}. How much change does {name} get?"
    )
    return question, _worked(
        ("The packs cost", f"{a}*{price}", cost, "dollars"), ("The change is", f"{bill}-{cost}", bill - cost, "dollars")
    )


def _share(rng: np.random.Generator) -> tuple[str, str]:
    trays, per_tray, name, item = _int(rng, 2, 6), _int(rng, 2, 12), _name(rng), str(rng.choice(ITEMS))
    total = trays * per_tray
    divisors = [d for d in range(2, 10) if total % d == 0]  # trays itself is one
    k = divisors[int(rng.integers(len(divisors)))]
    question = (
        f"{name} packs {trays} boxes with {per_tray} {item} each and shares all of them equally among {k} friends. "
        f"How many {item} does each friend get?"
    )
    return question, _worked(
        ("There are", f"{trays}*{per_tray}", total, item), ("Each friend gets", f"{total}/{k}", total // k, item)
    )


def _week(rng: np.random.Generator) -> tuple[str, str]:
    a, item = _int(rng, 4, 40), str(rng.choice(ITEMS))
    t = a * 2
    c = _int(rng, 1, t - 1)
    w = t - c
    question = (
        f"A shop sells {a} {item} on Monday, twice as many on Tuesday, and {c} fewer on Wednesday than on Tuesday. "
        f"How many {item} does it sell over the three days?"
    )
    return question, _worked(
        ("On Tuesday it sells", f"{a}*2", t, item),
        ("On Wednesday it sells", f"{t}-{c}", w, item),
        ("In all it sells", f"{a}+{t}+{w}", a + t + w, item),
    )


def _walk(rng: np.random.Generator) -> tuple[str, str]:
    a, d, name = _int(rng, 1, 9), _int(rng, 2, 7), _name(rng)
    x = a * d
    h = x / 2
    half = f"{h:g}"
    question = (
        f"{name} walks {a} km every day for {d} days, then walks half of that distance once more. "
        f"How many km does {name} walk in all?"
    )
    return question, _worked(
        (f"In {d} days {name} walks", f"{a}*{d}", x, "km"),
        ("Half of that is", f"{x}/2", half, "km"),
        (f"In all {name} walks", f"{x}+{half}", f"{x + h:g}", "km"),
    )


TEMPLATES: tuple[Callable[[np.random.Generator], tuple[str, str]], ...] = (_gift, _change, _share, _week, _walk)


def gsm8k_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Returns `n` distinct GSM8K-schema records {question, answer}, templates taken in turn."""
    rng = stream(seed, "synth-gsm8k")
    records, seen = [], set()
    attempts = 0
    while len(records) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise HarnessError(f"could not generate {n} distinct gsm8k questions")
        question, answer = TEMPLATES[len(records) % len(TEMPLATES)](rng)
        if question not in seen:
            seen.add(question)
            records.append({"question": question, "answer": answer})
    return records


def _kb(n: int, seed: int) -> KbSearch:
    people = max(12, n)
    cities = max(4, people // 4)
    config = KbSearchConfig(
        n_people=people,
        n_companies=max(3, people // 5),
        n_cities=cities,
        n_countries=max(2, cities // 3),
        n_train=1,
        n_dev=0,
        n_test=1,
        world_seed=seed,
    )
    return KbSearch(config)


def _paragraphs(kb: KbSearch) -> dict[str, list[str]]:
    """Returns each entity's paragraph (title -> sentences) written from the knowledge base's facts."""
    cap = str.capitalize
    out: dict[str, list[str]] = {}
    for p in kb.people:
        city, company = kb.tail[(p, "born_in")], kb.tail[(p, "works_for")]
        out[cap(p)] = [f"{cap(p)} is a person born in {cap(city)}.", f"{cap(p)} works for {cap(company)}."]
    for c in kb.companies:
        out[cap(c)] = [f"{cap(c)} is a company.", f"{cap(c)} is based in {cap(kb.tail[(c, 'based_in')])}."]
    for c in kb.cities:
        out[cap(c)] = [f"{cap(c)} is a city.", f"{cap(c)} is located in {cap(kb.tail[(c, 'located_in')])}."]
    for c in kb.countries:
        out[cap(c)] = [f"{cap(c)} is a country."]
    return out


BRIDGES = (
    ("born_in", "located_in", "In which country is the city where {} was born?", (0, 1)),
    ("works_for", "based_in", "In which city is the company that {} works for based?", (1, 1)),
)
"""Bridge questions: a person's first relation names an entity whose second relation is the answer,
with the question's wording and the sentence ids of the two supporting facts."""


def _question(kb: KbSearch, rng: np.random.Generator) -> tuple[str, str, str, list[tuple[str, int]]]:
    """Returns (question, answer, type, supporting facts) of one random bridge or comparison question."""
    cap = str.capitalize
    kind = int(rng.integers(3))
    p = kb.people[int(rng.integers(len(kb.people)))]
    if kind < len(BRIDGES):
        first, second, wording, (i, j) = BRIDGES[kind]
        bridge = kb.tail[(p, first)]
        return wording.format(cap(p)), cap(kb.tail[(bridge, second)]), "bridge", [(cap(p), i), (cap(bridge), j)]
    q = kb.people[int(rng.integers(len(kb.people)))]
    same = kb.tail[(p, "born_in")] == kb.tail[(q, "born_in")]
    return (
        f"Were {cap(p)} and {cap(q)} born in the same city?",
        "yes" if same else "no",
        "comparison",
        [(cap(p), 0), (cap(q), 0)],
    )


def hotpotqa_records(n: int, seed: int, layout: str = "original", distractors: int = 8) -> list[dict[str, Any]]:
    """Returns `n` distinct HotpotQA-schema records over a generated knowledge base, in `layout`.

    Each record's context holds its supporting paragraphs and `distractors` paragraphs of other
    entities, shuffled; `original` writes lists of pairs, `hub` the datasets hub's dicts of lists.
    """
    if layout not in LAYOUTS:
        raise HarnessError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    kb = _kb(n, seed)
    paragraphs = _paragraphs(kb)
    titles = sorted(paragraphs)
    rng = stream(seed, "synth-hotpotqa")
    records, seen, attempts = [], set(), 0
    while len(records) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise HarnessError(f"could not generate {n} distinct hotpotqa questions (the knowledge base is too small)")
        question, answer, kind, support = _question(kb, rng)
        support_titles = list(dict.fromkeys(t for t, _ in support))
        if question in seen or len(support_titles) < 2:
            continue
        seen.add(question)
        others = [t for t in titles if t not in support_titles]
        picked = [others[int(i)] for i in rng.choice(len(others), size=min(distractors, len(others)), replace=False)]
        context = [support_titles[int(i)] for i in rng.permutation(len(support_titles))] + picked
        context = [context[int(i)] for i in rng.permutation(len(context))]
        record = {
            "_id": f"synth-{seed}-{len(records)}",
            "question": question,
            "answer": answer,
            "type": kind,
            "level": ("easy", "medium", "hard")[len(records) % 3],
            "supporting_facts": [[t, i] for t, i in support],
            "context": [[t, paragraphs[t]] for t in context],
        }
        records.append(_hub_layout(record) if layout == "hub" else record)
    return records


def _hub_layout(record: dict[str, Any]) -> dict[str, Any]:
    """Returns a record in the datasets hub's layout: `id`, and dicts of parallel lists."""
    return {
        "id": record["_id"],
        "question": record["question"],
        "answer": record["answer"],
        "type": record["type"],
        "level": record["level"],
        "supporting_facts": {
            "title": [t for t, _ in record["supporting_facts"]],
            "sent_id": [i for _, i in record["supporting_facts"]],
        },
        "context": {"title": [t for t, _ in record["context"]], "sentences": [s for _, s in record["context"]]},
    }


def synth_records(schema: str, n: int, seed: int, layout: str = "original") -> list[dict[str, Any]]:
    """Returns `n` generated records of `schema` (gsm8k or hotpotqa)."""
    if schema not in SCHEMAS:
        raise HarnessError(f"unknown schema {schema!r} (known: {', '.join(SCHEMAS)})")
    if n < 1:
        raise HarnessError(f"--n must be at least 1, got {n}")
    return gsm8k_records(n, seed) if schema == "gsm8k" else hotpotqa_records(n, seed, layout)


def write_records(records: list[dict[str, Any]], out: Path) -> None:
    """Writes records atomically as .jsonl (one per line), .json (one list) or .parquet (hub layout only)."""
    if out.suffix == ".jsonl":
        atomic_write_text(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    elif out.suffix == ".json":
        atomic_write_text(out, "[\n" + ",\n".join(json.dumps(r, sort_keys=True) for r in records) + "\n]\n")
    elif out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        if records and isinstance(records[0].get("context"), list):
            raise HarnessError("parquet holds the hub layout only: add --layout hub")
        tmp = out.with_name(f".{out.name}.tmp")
        pq.write_table(pa.Table.from_pylist(records), tmp)
        tmp.replace(out)
    else:
        raise HarnessError(f"--out {out}: give a .jsonl, .json or .parquet file, or a folder without a suffix")


def synth(schema: str, n: int, seed: int, out: Path, layout: str = "original", test_share: float = 0.2) -> list[Path]:
    """Writes `n` generated records to `out` and returns the files written.

    A file gets all of them; a folder (no suffix) gets train.jsonl and test.jsonl, the first
    `test_share` of the records in test (questions are unique, so the two never share one).
    """
    if out.exists() and out.is_dir() and out.suffix:
        raise HarnessError(f"--out {out} is a directory")
    records = synth_records(schema, n, seed, layout)
    if out.suffix:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_records(records, out)
        return [out]
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    n_test = max(1, round(test_share * n)) if n > 1 else 0
    files = [out / "train.jsonl", out / "test.jsonl"]
    write_records(records[n_test:], files[0])
    write_records(records[:n_test], files[1])
    return files
