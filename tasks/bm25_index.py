"""A bm25s index with deterministic top-k retrieval: the search engine of kb-search and hotpotqa."""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np


class Bm25Index:
    """A bm25s index (Lucene BM25) over whitespace-split documents with deterministic top-k retrieval.

    Documents are given to bm25s already split, so "born_in" stays one token and nothing is
    stemmed or dropped as a stopword. Ranking is by score, ties by document index.
    """

    def __init__(self, docs: Sequence[str], top_k: int):
        self.top_k = top_k
        self.retriever = bm25s.BM25()
        self.retriever.index([doc.split() for doc in docs], show_progress=False)
        self.n_docs = len(docs)
        self._cache: dict[tuple[int, ...], tuple[int, ...]] = {}

    def scores(self, words: Sequence[str]) -> np.ndarray:
        """Returns the BM25 score of every document for the query `words` (zeros if none is indexed)."""
        ids = self.retriever.get_tokens_ids([w for w in words if w])
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        return self.retriever.get_scores_from_ids(ids)

    def search(self, words: Sequence[str]) -> tuple[int, ...]:
        """Returns the ids of the top_k documents with a positive score, best first."""
        key = tuple(self.retriever.get_tokens_ids([w for w in words if w]))
        if key not in self._cache:
            scores = self.scores(words)
            order = np.argsort(-scores, kind="stable")[: self.top_k]
            self._cache[key] = tuple(int(i) for i in order if scores[i] > 0)
        return self._cache[key]
