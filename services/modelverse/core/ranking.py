"""Top-k with a total order: score descending, then model id ascending on ties."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    rank: int  # 1-based


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if np.any(np.isnan(scores)):
        raise ValueError("scores contain NaN")
    k = min(k, scores.shape[0])
    if k < scores.shape[0]:
        # Everything tied with the k-th best score competes for the last places by id.
        threshold = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
        candidates = np.flatnonzero(scores >= threshold)
    else:
        candidates = np.arange(scores.shape[0])
    order = candidates[np.lexsort((ids[candidates], -scores[candidates]))][:k]
    return [Hit(str(ids[i]), float(scores[i]), rank) for rank, i in enumerate(order, start=1)]
