"""The second stage: a method's exact score on the candidates, from the compressed statistics.

Scores come from ``modelverse.core`` (the same functions as the reference search), applied to
the candidates' rows only, so the two-stage search equals the exhaustive one whenever the
candidates contain the exhaustive top k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelverse.core import scores
from modelverse.core.collection import Collection
from modelverse.core.params import ScoringParams
from modelverse.core.reference import ExactSearch
from modelverse.core.second_order import CompressedCovariances
from modelverse.core.types import Method, QueryPart, SecondOrderForm


@dataclass(frozen=True)
class QueryModelStats:
    """A stored model used as a query (Frechet): its mean and compressed covariance."""

    id: str
    mean: np.ndarray  # (d,)
    compressed: CompressedCovariances  # one row; only diag, factor and trace are read

    @classmethod
    def from_arrays(cls, model_id: str, mean: np.ndarray, diag: np.ndarray, factor: np.ndarray, trace: float, eps: float) -> QueryModelStats:
        rank = factor.shape[1]
        compressed = CompressedCovariances(
            diag=diag[None], factor=factor[None], woodbury=np.zeros((1, rank, rank), np.float32),
            logdet=np.zeros(1), traces=np.array([trace], dtype=np.float64), eps=eps,
        )
        return cls(model_id, np.asarray(mean, dtype=np.float64), compressed)


def candidates_collection(collection: Collection, rows: np.ndarray, method: Method) -> Collection:
    """The candidates' rows, with the second order only for a method that reads it."""
    return collection.take(rows, second_order=method is not Method.FIRST_MOMENT)


def first_moment_scores(parts: list[QueryPart], means: np.ndarray) -> np.ndarray:
    """FIRST_MOMENT of the candidates whose means are ``means`` (k, d): ``ExactSearch.score_parts``'
    arithmetic (each part normalised, scored by ``scores.first_moment``, combined), without a
    Collection of the candidates around it."""
    if not parts:
        raise ValueError("a query needs at least one part")
    dim = means.shape[1]
    return scores.combine([scores.first_moment(scores.normalize_query(p.vector, dim), means) for p in parts],
                          [p.weight for p in parts])


def rerank_scores(
    candidates: Collection,
    method: Method,
    params: ScoringParams,
    *,
    parts: list[QueryPart] | None = None,
    query_model: QueryModelStats | None = None,
) -> np.ndarray:
    """The method's score of every candidate (higher is better)."""
    if method is Method.FRECHET:
        if query_model is None:
            raise ValueError("the Frechet score needs a query model")
        return scores.frechet_compressed(
            query_model.mean, query_model.compressed, candidates.means, candidates.compressed
        )
    if not parts:
        raise ValueError("a query needs at least one part")
    if method is Method.FIRST_MOMENT:  # the cosine of the means; no second order read
        return first_moment_scores(parts, candidates.means)
    search = ExactSearch(candidates, params)
    return search.score_parts(parts, method, SecondOrderForm.COMPRESSED)
