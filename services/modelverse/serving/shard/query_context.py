"""What a shard keeps beside its vector indexes for issue 17: a full-text index of its models'
metadata (METADATA / HYBRID text search) and a fixed sample of its models whose scores give a
query's typical score (SearchHit.confidence). Both are rebuilt by a sync that changes the shard's
models, and replaced with the snapshot they belong to, so a search never sees them half built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modelverse.core.collection import Collection
from modelverse.core.confidence import logsumexp, reference_rows
from modelverse.core.params import ScoringParams
from modelverse.core.reference import ExactSearch
from modelverse.core.text_index import MetadataDocument, TextIndex
from modelverse.core.types import Method, QueryPart
from modelverse.store.metadata import ModelMetadata


def document_of(metadata: ModelMetadata) -> MetadataDocument:
    return MetadataDocument(metadata.id, metadata.name, metadata.description, metadata.tags, metadata.creator)


@dataclass(frozen=True)
class QueryContext:
    text_index: TextIndex
    reference: Collection | None  # None: the shard serves no model
    # pack row -> document of text_index (-1: none): candidates are looked up by row, in one
    # numpy step (by id, the lookups cost more than the BM25 scoring at 3,200 candidates)
    document_of_row: np.ndarray

    @classmethod
    def build(cls, metadata: Mapping[str, ModelMetadata], collection: Collection | None,
              row_of: Mapping[str, int]) -> QueryContext:
        ids = sorted(row_of)
        text_index = TextIndex([document_of(metadata[m]) for m in ids])
        reference = None
        if collection is not None and ids:
            rows = np.array([row_of[ids[i]] for i in reference_rows(len(ids))], dtype=np.int64)
            reference = collection.take(rows)
        pack_rows = np.fromiter((row_of[m] for m in ids), dtype=np.int64, count=len(ids))
        document_of_row = np.full(int(pack_rows.max()) + 1 if ids else 0, -1, dtype=np.int64)
        document_of_row[pack_rows] = np.arange(len(ids))
        return cls(text_index, reference, document_of_row)

    def text_candidates(self, query_text: str, k: int, allowed: set[str] | None) -> list[str]:
        """The shard's best BM25 matches (positive scores only), best first."""
        if allowed is None:
            ids, _ = self.text_index.top(query_text, k)
            return [str(i) for i in ids]
        ids, _ = self.text_index.top(query_text, len(self.text_index))
        return [str(i) for i in ids if i in allowed][:k]

    def text_scores(self, query_text: str, rows: np.ndarray) -> np.ndarray:
        """BM25 scores of the candidates at these pack rows (0 for a row without a document)."""
        rows = np.asarray(rows, dtype=np.int64)
        inside = rows < self.document_of_row.size
        documents = np.where(inside, self.document_of_row[np.where(inside, rows, 0)], -1)
        values = self.text_index.scores(query_text)
        return np.where(documents >= 0, values[np.maximum(documents, 0)], 0.0).astype(np.float32)

    def reference_summary(self, parts: list[QueryPart], params: ScoringParams) -> tuple[float, int]:
        """Log-sum-exp and count of the reference models' MGF scores (core.confidence)."""
        if self.reference is None or not parts:
            return 0.0, 0
        values = ExactSearch(self.reference, params).score_parts(parts, Method.MGF)
        return logsumexp(values), int(values.shape[0])
