"""Exact reference search: every model scored, nothing approximated but what you ask for.

This is the oracle that the fast paths (FAISS recall, sharding, gRPC) are tested against.
"""

from __future__ import annotations

import numpy as np

from modelverse.core import scores
from modelverse.core.collection import Collection
from modelverse.core.params import ScoringParams
from modelverse.core.ranking import Hit, top_k
from modelverse.core.second_order import SecondOrder
from modelverse.core.types import Method, QueryPart, SecondOrderForm
from modelverse.errors import FailedPreconditionError


class MissingStatisticsError(FailedPreconditionError, ValueError):
    """The collection lacks what a method needs (full covariances, raw samples): the query is
    fine, the store cannot answer it (a ValueError too, as it was)."""


class ExactSearch:
    def __init__(self, collection: Collection, params: ScoringParams) -> None:
        self.collection = collection
        self.params = params

    def _second_order(self, form: SecondOrderForm) -> SecondOrder:
        if form is SecondOrderForm.COMPRESSED:
            return self.collection.compressed
        if self.collection.full is None:
            raise MissingStatisticsError(
                "full covariances are not stored for every model; use the compressed form"
            )
        return self.collection.full

    def score_vector(
        self, q: np.ndarray, method: Method, form: SecondOrderForm = SecondOrderForm.COMPRESSED
    ) -> np.ndarray:
        """Scores of every model for one normalised query vector."""
        means = self.collection.means
        if method is Method.FIRST_MOMENT:
            return scores.first_moment(q, means)
        if method is Method.MGF:
            return scores.mgf(q, means, self._second_order(form), self.params.tau)
        if method is Method.GAUSSIAN:
            return scores.gaussian(q, means, self._second_order(form), self.params.eps)
        if method is Method.MONTE_CARLO:
            if self.collection.samples is None:
                raise MissingStatisticsError(
                    "Monte Carlo needs every model's raw sample features; add them with samples kept"
                )
            return scores.monte_carlo(q, self.collection.samples, self.params.tau)
        raise ValueError(f"method {method.value!r} does not take a query vector")

    def score_parts(
        self,
        parts: list[QueryPart],
        method: Method,
        form: SecondOrderForm = SecondOrderForm.COMPRESSED,
    ) -> np.ndarray:
        dim = self.collection.dim
        normalized = [scores.normalize_query(p.vector, dim) for p in parts]
        return scores.combine(
            [self.score_vector(q, method, form) for q in normalized], [p.weight for p in parts]
        )

    def search(
        self,
        parts: list[QueryPart],
        method: Method = Method.FIRST_MOMENT,
        k: int = 10,
        form: SecondOrderForm = SecondOrderForm.COMPRESSED,
    ) -> list[Hit]:
        live = self.collection.live_mask()
        return top_k(self.collection.ids[live], self.score_parts(parts, method, form)[live], k)

    def search_many(
        self,
        queries: list[list[QueryPart]],
        method: Method,
        k: int = 10,
        block: int = 16_384,
    ) -> list[list[Hit]]:
        """``search`` for many queries (compressed form) in one pass over the collection.

        Each block of rows is read once (a memory-mapped pack of a million models is larger
        than memory) and every query is scored on it by ``score_parts``; a block keeps its top
        k per query, and the top k of those is the answer (``top_k``'s order is total, so this
        equals one ``search`` per query)."""
        live = self.collection.live_mask()
        kept: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in queries]
        for start in range(0, len(self.collection), block):
            rows = start + np.flatnonzero(live[start:start + block])
            if rows.size == 0:
                continue
            c = self.collection
            part = c.take(rows, second_order=method is not Method.FIRST_MOMENT)
            search = ExactSearch(part, self.params)
            for parts, best in zip(queries, kept):
                hits = top_k(part.ids, search.score_parts(parts, method), k)
                best.append((np.array([h.id for h in hits]), np.array([h.score for h in hits])))
        return [top_k(np.concatenate([i for i, _ in best]), np.concatenate([s for _, s in best]), k)
                if best else [] for best in kept]

    def score_similar(
        self, model_id: str, form: SecondOrderForm = SecondOrderForm.COMPRESSED
    ) -> np.ndarray:
        """Negative Frechet distance from a stored model to every model (itself included)."""
        row = self.collection.row_of(model_id)
        means = self.collection.means
        if form is SecondOrderForm.COMPRESSED:
            compressed = self.collection.compressed
            return scores.frechet_compressed(
                means[row], compressed.take(np.array([row])), means, compressed
            )
        full = self._second_order(SecondOrderForm.FULL)
        return scores.frechet_full(means[row], full.covariances[row], means, full)

    def similar(
        self, model_id: str, k: int = 10, form: SecondOrderForm = SecondOrderForm.COMPRESSED
    ) -> list[Hit]:
        """Models closest to a stored model by Frechet distance; the model itself is left out."""
        others = (self.collection.ids != model_id) & self.collection.live_mask()
        all_scores = self.score_similar(model_id, form)
        return top_k(self.collection.ids[others], all_scores[others], k)
