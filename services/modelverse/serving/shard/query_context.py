"""What a shard keeps beside its vector indexes for issue 17: a full-text index of its models'
metadata and their sentence embeddings (METADATA / HYBRID text search: BM25 and the dense match),
and a fixed sample of its models whose scores give a query's typical score (SearchHit.confidence).
All are rebuilt by a sync that changes the shard's models, and replaced with the snapshot they
belong to, so a search never sees them half built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from modelverse.core.collection import Collection
from modelverse.core.confidence import logsumexp, reference_rows
from modelverse.core.params import ScoringParams
from modelverse.core.reference import ExactSearch
from modelverse.core.sentence_encoder import DIM
from modelverse.core.text_index import MetadataDocument, TextIndex, described_texts
from modelverse.core.types import Method, QueryPart
from modelverse.serving.shard.semantic_index import SemanticIndex
from modelverse.store.embedding_cache import EmbeddingCache
from modelverse.store.metadata import ModelMetadata


def document_of(metadata: ModelMetadata) -> MetadataDocument:
    return MetadataDocument(metadata.id, metadata.name, metadata.description, metadata.tags, metadata.creator)


def semantic_index(documents: Sequence[MetadataDocument], cache: EmbeddingCache | None,
                   previous: SemanticIndex | None = None) -> SemanticIndex | None:
    """The dense match over the documents when ``cache`` holds every described one's embedding;
    None while some are still to embed (``ShardState`` embeds them a slice at a time); no cache:
    an empty match (every cosine 0: BM25 alone)."""
    if cache is None:
        return SemanticIndex.empty(len(documents), DIM)
    positions, texts = described_texts(documents)
    if cache.missing(texts):
        return None
    vectors = np.zeros((len(documents), DIM), dtype=np.float32)
    vectors[positions] = cache.vectors(texts)
    return SemanticIndex.build(vectors, positions, previous=previous)


@dataclass(frozen=True)
class QueryContext:
    text_index: TextIndex
    documents: tuple[MetadataDocument, ...]  # text_index's, in its order
    # the dense match, rows in text_index's document order; None until every described model's
    # metadata is embedded (queries meanwhile get BM25 alone)
    semantic: SemanticIndex | None
    reference: Collection | None  # None: the shard serves no model
    # pack row -> document of text_index (-1: none): candidates are looked up by row, in one
    # numpy step (by id, the lookups cost more than the BM25 scoring at 3,200 candidates)
    document_of_row: np.ndarray

    @property
    def semantic_pending(self) -> bool:
        return self.semantic is None

    def with_semantic(self, embeddings: EmbeddingCache | None, previous: SemanticIndex | None = None) -> QueryContext:
        """This context with its dense match built, if the cache now holds every embedding."""
        return replace(self, semantic=semantic_index(self.documents, embeddings, previous))

    @classmethod
    def build(cls, metadata: Mapping[str, ModelMetadata], collection: Collection | None,
              row_of: Mapping[str, int], embeddings: EmbeddingCache | None = None,
              previous: QueryContext | None = None) -> QueryContext:
        """``previous``: the context this one replaces (its dense index's training is reused)."""
        ids = sorted(row_of)
        documents = [document_of(metadata[m]) for m in ids]
        text_index = TextIndex(documents)
        semantic = semantic_index(documents, embeddings, None if previous is None else previous.semantic)
        reference = None
        if collection is not None and ids:
            rows = np.array([row_of[ids[i]] for i in reference_rows(len(ids))], dtype=np.int64)
            reference = collection.take(rows)
        pack_rows = np.fromiter((row_of[m] for m in ids), dtype=np.int64, count=len(ids))
        document_of_row = np.full(int(pack_rows.max()) + 1 if ids else 0, -1, dtype=np.int64)
        document_of_row[pack_rows] = np.arange(len(ids))
        return cls(text_index, tuple(documents), semantic, reference, document_of_row)

    def text_candidates(self, query_text: str, k: int, allowed: set[str] | None) -> list[str]:
        """The shard's best BM25 matches (positive scores only), best first."""
        if allowed is None:
            ids, _ = self.text_index.top(query_text, k)
            return [str(i) for i in ids]
        ids, _ = self.text_index.top(query_text, len(self.text_index))
        return [str(i) for i in ids if i in allowed][:k]

    def semantic_candidates(self, query: np.ndarray, k: int, allowed: set[str] | None) -> list[str]:
        """The shard's best dense matches (embedded models only), best first."""
        if self.semantic is None:
            return []
        permitted = None
        if allowed is not None:
            permitted = np.flatnonzero(np.isin(self.text_index.ids, np.array(sorted(allowed), dtype=str)))
        documents, _ = self.semantic.top(query, k, permitted)
        return [str(i) for i in self.text_index.ids[documents]]

    def _documents(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        inside = rows < self.document_of_row.size
        return np.where(inside, self.document_of_row[np.where(inside, rows, 0)], -1)

    def text_scores(self, query_text: str, rows: np.ndarray) -> np.ndarray:
        """BM25 scores of the candidates at these pack rows (0 for a row without a document)."""
        documents = self._documents(rows)
        values = self.text_index.scores(query_text)
        return np.where(documents >= 0, values[np.maximum(documents, 0)], 0.0).astype(np.float32)

    def semantic_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """Cosines of the query text's embedding with the candidates' metadata (0: not embedded);
        None while the dense match is pending or when no model is embedded."""
        if self.semantic is None or self.semantic.embedded.size == 0:
            return None
        return self.semantic.scores(query, self._documents(rows))

    def reference_summary(self, parts: list[QueryPart], params: ScoringParams) -> tuple[float, int]:
        """Log-sum-exp and count of the reference models' MGF scores (core.confidence)."""
        if self.reference is None or not parts:
            return 0.0, 0
        values = ExactSearch(self.reference, params).score_parts(parts, Method.MGF)
        return logsumexp(values), int(values.shape[0])
