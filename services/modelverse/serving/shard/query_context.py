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
from modelverse.core.reference import ExactSearch, Method, QueryPart
from modelverse.core.text_index import MetadataDocument, TextIndex
from modelverse.store.metadata import ModelMetadata


def document_of(metadata: ModelMetadata) -> MetadataDocument:
    return MetadataDocument(metadata.id, metadata.name, metadata.description, metadata.tags, metadata.creator)


@dataclass(frozen=True)
class QueryContext:
    text_index: TextIndex
    reference: Collection | None  # None: the shard serves no model

    @classmethod
    def build(cls, metadata: Mapping[str, ModelMetadata], collection: Collection | None,
              row_of: Mapping[str, int]) -> QueryContext:
        ids = sorted(row_of)
        text_index = TextIndex([document_of(metadata[m]) for m in ids])
        reference = None
        if collection is not None and ids:
            rows = np.array([row_of[ids[i]] for i in reference_rows(len(ids))], dtype=np.int64)
            reference = collection.take(rows)
        return cls(text_index, reference)

    def text_candidates(self, query_text: str, k: int, allowed: set[str] | None) -> list[str]:
        """The shard's best BM25 matches (positive scores only), best first."""
        if allowed is None:
            ids, _ = self.text_index.top(query_text, k)
            return [str(i) for i in ids]
        ids, _ = self.text_index.top(query_text, len(self.text_index))
        return [str(i) for i in ids if i in allowed][:k]

    def text_scores(self, query_text: str, ids: list[str]) -> np.ndarray:
        return self.text_index.scores_of(query_text, ids)

    def reference_summary(self, parts: list[QueryPart], params: ScoringParams) -> tuple[float, int]:
        """Log-sum-exp and count of the reference models' MGF scores (core.confidence)."""
        if self.reference is None or not parts:
            return 0.0, 0
        values = ExactSearch(self.reference, params).score_parts(parts, Method.MGF)
        return logsumexp(values), int(values.shape[0])
