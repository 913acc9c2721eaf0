"""A full-text index of model metadata (name, description, tags, creator): BM25 by ``bm25s``.

Each recall shard keeps one over the models it serves (the shard already holds their metadata),
rebuilt when the store's model set changes, so the admin's writes reach it the way they reach
the vector index. English stop words are dropped and words are stemmed (PyStemmer), so
"shoes" finds "shoe". Scores are BM25's: 0 for a model sharing no word with the query.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer

# bm25s sets its own logger to DEBUG at import, so any process that configures logging (the CLI
# does) printed "Building index from IDs objects" into every text search's output.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_STEMMER = Stemmer.Stemmer("english")
# A query word found in more than this fraction of the documents (and in more than
# COMMON_MIN_DOCUMENTS, so small collections keep every word) is left out of the query.
COMMON_FRACTION = 0.05
COMMON_MIN_DOCUMENTS = 1000


@dataclass(frozen=True)
class MetadataDocument:
    """The searchable text of one model."""

    model_id: str
    name: str = ""
    description: str = ""
    tags: Sequence[str] = ()
    creator: str = ""

    @property
    def described(self) -> bool:
        """Whether it says anything beyond its id (bulk-written benchmark stores hold ids only)."""
        return bool(self.name.strip() or self.description.strip() or any(t.strip() for t in self.tags)
                    or self.creator.strip())

    def text(self) -> str:
        # the id too: users paste model ids ("fashion-vae-bag") into search boxes
        return " ".join([self.model_id.replace("-", " "), self.name, self.description, *self.tags, self.creator])


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


class TextIndex:
    """BM25 over a fixed list of documents; ``scores`` gives every document's score."""

    def __init__(self, documents: Sequence[MetadataDocument]) -> None:
        self.ids = np.array([d.model_id for d in documents], dtype=str)
        self._retriever: bm25s.BM25 | None = None
        self._recent = functools.lru_cache(maxsize=16)(self._compute)  # thread-safe
        self._common: set[str] = set()
        if documents:
            tokens = bm25s.tokenize([d.text() for d in documents], stopwords="en", stemmer=_STEMMER,
                                    show_progress=False)
            self._retriever = bm25s.BM25()
            self._retriever.index(tokens, show_progress=False)
            # Words in most documents of a large index weigh almost nothing in BM25 (tiny IDF) but
            # cost a pass over their postings on every query: left out of queries, like stop words.
            postings = np.diff(self._retriever.scores["indptr"])
            limit = max(COMMON_FRACTION * len(documents), COMMON_MIN_DOCUMENTS)
            self._common = {word for word, token in self._retriever.vocab_dict.items()
                            if token < postings.size and postings[token] > limit}

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (float32, document order, read-only).
        The last few queries' scores are kept: a shard asks for its best matches and then for
        its candidates' scores of the same query, and at 1M models each pass costs milliseconds."""
        return self._recent(query)

    def _compute(self, query: str) -> np.ndarray:
        values = self._score(query)
        values.setflags(write=False)
        return values

    def _score(self, query: str) -> np.ndarray:
        if self._retriever is None:
            return np.zeros(0, dtype=np.float32)
        words = _tokens([query])[0]
        rare = [w for w in words if w not in self._common]
        words = rare or words  # a query of common words only still gets their ranking
        if not words:  # only stop words: nothing to match
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(words), dtype=np.float32)

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


def described_texts(documents: Sequence[MetadataDocument]) -> tuple[np.ndarray, list[str]]:
    """(positions, texts) of the documents that say anything beyond their id: what the dense
    metadata match embeds (the others score 0 there, as a document sharing no word does in BM25)."""
    positions = [i for i, d in enumerate(documents) if d.described]
    return np.array(positions, dtype=np.int64), [documents[i].text() for i in positions]
