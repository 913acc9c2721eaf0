"""Fusing a content ranking with a metadata (full-text) ranking of the same candidates.

Two rules, both measured on the unseen-style set and the zoo's own descriptions
(docs/QUALITY.md, tools/bench_unseen.py):

- reciprocal rank fusion (Cormack et al., SIGIR 2009): sum over rankings of 1 / (k + rank);
  needs no score scale, a model missing from a ranking gets nothing from it;
- a weighted sum of the two scores, each min-max scaled over the candidates, with the text
  weight tuned on the evaluation set.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

RRF_K = 60.0  # the constant of Cormack et al.


class Fusion(str, Enum):
    RRF = "rrf"
    WEIGHTED = "weighted"


def ranks(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """1-based rank of each entry, best (highest) first, ties by id."""
    order = np.lexsort((ids, -np.asarray(values, dtype=np.float64)))
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(1, len(order) + 1)
    return out


def reciprocal_rank_fusion(content: np.ndarray, text: np.ndarray, ids: np.ndarray, k: float = RRF_K,
                           text_weight: float = 1.0) -> np.ndarray:
    """RRF of the content and text scores of the same candidates. A candidate whose text score is
    0 (no word in common) takes no text term: BM25 does not rank what it did not match."""
    fused = 1.0 / (k + ranks(content, ids))
    matched = np.asarray(text) > 0
    fused = fused + np.where(matched, text_weight / (k + ranks(text, ids)), 0.0)
    return fused


def _minmax(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    span = float(values.max() - values.min()) if values.size else 0.0
    return np.zeros_like(values) if span <= 0 else (values - values.min()) / span


def weighted_fusion(content: np.ndarray, text: np.ndarray, text_weight: float) -> np.ndarray:
    """(1 - w) * content + w * text, each min-max scaled over the candidates."""
    if not 0.0 <= text_weight <= 1.0:
        raise ValueError(f"the text weight must be in [0, 1], got {text_weight}")
    return (1.0 - text_weight) * _minmax(content) + text_weight * _minmax(text)


def fuse(rule: Fusion, content: np.ndarray, text: np.ndarray, ids: np.ndarray, text_weight: float) -> np.ndarray:
    if rule is Fusion.RRF:
        return reciprocal_rank_fusion(content, text, ids, text_weight=text_weight)
    return weighted_fusion(content, text, text_weight)


# What HYBRID serves (gateway and CLI alike): on the zoo's own descriptions the weighted sum at
# text weight 0.6 has top-1 0.765 against 0.647 for RRF (k = 60; 0.706-0.765 for k = 1 and text
# weights 1-3), and both leave paraphrases where content alone has them (tools/bench_unseen.py;
# the weight is tuned on that same set: docs/QUALITY.md).
HYBRID_RULE = Fusion.WEIGHTED
HYBRID_TEXT_WEIGHT = 0.6
