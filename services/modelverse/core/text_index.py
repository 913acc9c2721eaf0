"""A full-text index of model metadata (name, description, tags, creator): BM25 by ``bm25s``.

Each recall shard keeps one over the models it serves (the shard already holds their metadata),
rebuilt when the store's model set changes, so the admin's writes reach it the way they reach
the vector index. English stop words are dropped and words are stemmed (PyStemmer), so
"shoes" finds "shoe". Scores are BM25's: 0 for a model sharing no word with the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")


@dataclass(frozen=True)
class MetadataDocument:
    """The searchable text of one model."""

    model_id: str
    name: str = ""
    description: str = ""
    tags: Sequence[str] = ()
    creator: str = ""

    def text(self) -> str:
        # the id too: users paste model ids ("fashion-vae-bag") into search boxes
        return " ".join([self.model_id.replace("-", " "), self.name, self.description, *self.tags, self.creator])


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


class TextIndex:
    """BM25 over a fixed list of documents; ``scores`` gives every document's score."""

    def __init__(self, documents: Sequence[MetadataDocument]) -> None:
        self.ids = np.array([d.model_id for d in documents], dtype=str)
        self._position = {d.model_id: i for i, d in enumerate(documents)}
        self._retriever: bm25s.BM25 | None = None
        if documents:
            tokens = bm25s.tokenize([d.text() for d in documents], stopwords="en", stemmer=_STEMMER,
                                    show_progress=False)
            self._retriever = bm25s.BM25()
            self._retriever.index(tokens, show_progress=False)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (float32, document order)."""
        if self._retriever is None:
            return np.zeros(0, dtype=np.float32)
        words = _tokens([query])[0]
        if not words:  # only stop words: nothing to match
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(words), dtype=np.float32)

    def scores_of(self, query: str, ids: Sequence[str]) -> np.ndarray:
        """BM25 scores of the documents ``ids`` (0 for an id not in the index)."""
        values = self.scores(query)
        rows = np.array([self._position.get(m, -1) for m in ids], dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.float32)
        known = rows >= 0
        out[known] = values[rows[known]]
        return out

    def top(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents with a positive score: (ids, scores), best first, ties by id."""
        values = self.scores(query)
        positive = np.flatnonzero(values > 0)
        if positive.size == 0:
            return self.ids[:0], values[:0]
        if positive.size > k:  # keep the k best (and any tied with the k-th) before sorting
            kth = np.partition(values[positive], positive.size - k)[positive.size - k]
            positive = positive[values[positive] >= kth]
        order = positive[np.lexsort((self.ids[positive], -values[positive]))][:k]
        return self.ids[order], values[order]
