"""Fusing the rankings of the same candidates: content (the method's score of the encoded query),
BM25 (the metadata's words) and the dense metadata match (the cosine of sentence embeddings).

Two rules, both measured on the unseen-style set and the zoo's own descriptions
(docs/QUALITY.md, tools/bench_unseen.py):

- reciprocal rank fusion (Cormack et al., SIGIR 2009): sum over rankings of w / (k + rank);
  needs no score scale; a candidate a ranking did not match (BM25 0: no word shared; cosine 0:
  no metadata embedded) gets nothing from it;
- a weighted sum of the scores, each min-max scaled over the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

RRF_K = 60.0  # the constant of Cormack et al.


class Fusion(str, Enum):
    RRF = "rrf"
    WEIGHTED = "weighted"


@dataclass(frozen=True)
class Signal:
    """One ranking's scores of the candidates, its weight, and which candidates it ranks at all."""

    values: np.ndarray
    weight: float
    matched: np.ndarray | None = None  # bool per candidate; None: all


@dataclass(frozen=True)
class Weights:
    """The weight of each ranking in a fusion: content, BM25, the dense metadata match."""

    content: float
    bm25: float
    semantic: float

    def __post_init__(self) -> None:
        values = (self.content, self.bm25, self.semantic)
        if not all(np.isfinite(values)) or min(values) < 0 or sum(values) <= 0:
            raise ValueError(f"fusion weights must be finite, not negative, and not all 0: {values}")


def ranks(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """1-based rank of each entry, best (highest) first, ties by id."""
    order = np.lexsort((ids, -np.asarray(values, dtype=np.float64)))
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(1, len(order) + 1)
    return out


def reciprocal_rank_fusion(signals: Sequence[Signal], ids: np.ndarray, k: float = RRF_K) -> np.ndarray:
    fused = np.zeros(len(ids), dtype=np.float64)
    for signal in signals:
        if signal.weight == 0:
            continue
        term = signal.weight / (k + ranks(signal.values, ids))
        fused += term if signal.matched is None else np.where(signal.matched, term, 0.0)
    return fused


def _minmax(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    span = float(values.max() - values.min()) if values.size else 0.0
    return np.zeros_like(values) if span <= 0 else (values - values.min()) / span


def weighted_fusion(signals: Sequence[Signal]) -> np.ndarray:
    """sum of w * (scores min-max scaled over the candidates)."""
    fused = np.zeros(len(signals[0].values) if signals else 0, dtype=np.float64)
    for signal in signals:
        if signal.weight != 0:
            fused += signal.weight * _minmax(signal.values)
    return fused


def fuse(rule: Fusion, ids: np.ndarray, content: np.ndarray, bm25: np.ndarray, semantic: np.ndarray,
         weights: Weights, k: float = RRF_K) -> np.ndarray:
    """The fused score of each candidate (higher is better); ``k``: RRF's constant."""
    bm25 = np.asarray(bm25)
    semantic = np.asarray(semantic)
    signals = [Signal(np.asarray(content), weights.content), Signal(bm25, weights.bm25, bm25 > 0),
               Signal(semantic, weights.semantic, semantic != 0)]
    if rule is Fusion.RRF:
        return reciprocal_rank_fusion(signals, ids, k)
    return weighted_fusion(signals)


def unit_rank(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Values mapped to (0, 1] by rank, best = 1: a tie-breaker that never outweighs a fused score
    when scaled by 1e-9."""
    order = np.lexsort((ids, -np.asarray(values, dtype=np.float64)))
    out = np.empty(len(values), dtype=np.float64)
    out[order] = 1.0 - np.arange(len(values)) / max(len(values), 1)
    return out


def metadata_ranking(ids: np.ndarray, content: np.ndarray, bm25: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """METADATA's order: BM25 and the dense match fused, content breaking ties only."""
    return (fuse(METADATA_RULE, ids, content, bm25, semantic, METADATA_WEIGHTS, METADATA_RRF_K)
            + 1e-9 * unit_rank(np.asarray(content), ids))


def hybrid_ranking(ids: np.ndarray, content: np.ndarray, bm25: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """HYBRID's order: content, BM25 and the dense match fused."""
    return fuse(HYBRID_RULE, ids, content, bm25, semantic, HYBRID_WEIGHTS)


# What METADATA and HYBRID serve (gateway and CLI alike), chosen on the zoo's own descriptions by
# (top-1, top-5, MRR) over a grid of rules (evaluation/text_fusion.py) and reported on the
# paraphrases, which played no part in the choice (tools/bench_unseen.py, docs/QUALITY.md):
# - HYBRID: own descriptions top-1 0.824 (0.745 cross-validated), paraphrases 0.600 / top-5 0.800;
#   RRF (content 1, BM25 3, dense 3, k = 60) ties it on the own descriptions (the grid lists the
#   weighted sums first) and gives paraphrases 0.622 / 0.822;
# - METADATA: RRF of BM25 (3) and the dense match (2), k = 1: own 0.804, paraphrases 0.622 / 0.756.
HYBRID_RULE = Fusion.WEIGHTED
HYBRID_WEIGHTS = Weights(content=0.1, bm25=0.5, semantic=0.4)
METADATA_RULE = Fusion.RRF
METADATA_WEIGHTS = Weights(content=0.0, bm25=3.0, semantic=2.0)
METADATA_RRF_K = 1.0
