"""The unseen-style evaluation: top-1 / top-5 of the queries users write (``unseen_queries``)
under the default method of their modality, and how well a confidence score tells the queries
that have a right model from those that have none (ROC AUC).

Scores come from the exact reference search (``core.reference.ExactSearch``, compressed second
order, as the shards store it), so the numbers measure the method, not a fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from modelverse.core.reference import ExactSearch
from modelverse.core.types import Method, QueryPart
from modelverse.encoders.base import Encoder
from modelverse.evaluation.unseen_queries import UnseenQuery
from modelverse.query.parts import Modality, default_method

MODALITIES = {"text": Modality.TEXT, "image": Modality.IMAGE, "sketch": Modality.SKETCH}


@dataclass(frozen=True)
class ScoredQuery:
    """A query's scores for every model of the collection (its modality's default method), and
    the confidence measures of its best hit."""

    query: UnseenQuery
    method: Method
    ranking: list[str]
    confidence: dict[str, float]
    values: np.ndarray  # the score of every model of the collection, in collection order
    vector: np.ndarray | None = None  # the encoded query


Ranker = Callable[[UnseenQuery, np.ndarray], np.ndarray]  # (query, content scores) -> final scores


def encode_queries(queries: Sequence[UnseenQuery], encoder: Encoder,
                   prepare_sketch: Callable | None = None) -> list[np.ndarray]:
    """One L2-normalised feature per query; ``prepare_sketch`` (if given) is applied to each
    drawing first, as the search front ends apply it to sketch queries."""
    vectors: list[np.ndarray | None] = [None] * len(queries)
    texts = [(i, q.text) for i, q in enumerate(queries) if q.modality == "text"]
    pictures = []
    for i, q in enumerate(queries):
        if q.picture is not None:
            picture = prepare_sketch(q.picture) if prepare_sketch and q.modality == "sketch" else q.picture
            pictures.append((i, picture))
    if texts:
        for (i, _), row in zip(texts, encoder.encode_texts([t for _, t in texts])):
            vectors[i] = row
    if pictures:
        for (i, _), row in zip(pictures, encoder.encode_images([p for _, p in pictures])):
            vectors[i] = row
    out = []
    for v in vectors:
        assert v is not None
        v = np.asarray(v, dtype=np.float64)
        out.append(v / np.linalg.norm(v))
    return out


def content_scores(search: ExactSearch, query: UnseenQuery, vector: np.ndarray) -> tuple[Method, np.ndarray]:
    method = default_method([MODALITIES[query.modality]])
    return method, search.score_parts([QueryPart(vector)], method)


def ranking_of(ids: np.ndarray, values: np.ndarray) -> list[str]:
    order = np.lexsort((ids, -values))
    return [str(i) for i in ids[order]]


def top_k_rates(scored: Sequence[ScoredQuery], *, key: Callable[[ScoredQuery], list[str]] | None = None) -> dict[str, float]:
    """top-1 / top-5 over the queries that have a right model."""
    rank = key or (lambda s: s.ranking)
    matched = [s for s in scored if s.query.has_match]
    if not matched:
        return {}
    return {
        "count": len(matched),
        "top1": float(np.mean([any(m in s.query.ground_truth for m in rank(s)[:1]) for s in matched])),
        "top5": float(np.mean([any(m in s.query.ground_truth for m in rank(s)[:5]) for s in matched])),
    }


def auc(scored: Sequence[ScoredQuery], measure: str) -> float | None:
    """ROC AUC of a confidence measure: queries with a right model are positives, no-match
    queries negatives. None when one of the two kinds is absent."""
    labels = [s.query.has_match for s in scored]
    if all(labels) or not any(labels):
        return None
    return float(roc_auc_score(labels, [s.confidence[measure] for s in scored]))
