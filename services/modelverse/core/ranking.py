"""Top-k with a total order: score descending, then model id ascending on ties.

Scores are compared at float32 precision. The same model can get scores that differ in the
last float64 bits depending on its row position (BLAS blocks rows differently), which would
make duplicates (a model uploaded twice) and sharded results order arbitrarily; at float32
precision such scores tie and the id decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelverse.errors import InvalidInputError


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    rank: int  # 1-based


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
    if k <= 0:
        raise InvalidInputError(f"k must be positive, got {k}")
    if np.any(np.isnan(scores)):
        raise ValueError("scores contain NaN")
    k = min(k, scores.shape[0])
    keys = np.asarray(scores).astype(np.float32)
    if k < keys.shape[0]:
        # Everything tied with the k-th best score competes for the last places by id.
        threshold = np.partition(keys, keys.shape[0] - k)[keys.shape[0] - k]
        candidates = np.flatnonzero(keys >= threshold)
    else:
        candidates = np.arange(keys.shape[0])
    order = candidates[np.lexsort((ids[candidates], -keys[candidates]))][:k]
    return [Hit(str(ids[i]), float(scores[i]), rank) for rank, i in enumerate(order, start=1)]
