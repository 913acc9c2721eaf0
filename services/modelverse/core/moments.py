"""Streaming first and second moments that merge exactly.

Indexing splits one model's samples into chunks that different workers process. Each chunk
becomes a :class:`PartialMoments` (count, mean, M2 = sum of outer products of deviations from
the mean), and partials merge with Chan, Golub and LeVeque's pairwise update, which is exact in
exact arithmetic and numerically stable in float64, in any order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Iterable

import numpy as np

from modelverse.errors import InvalidInputError


@dataclass(frozen=True)
class PartialMoments:
    """Count, mean and M2 (sum of outer products of deviations) of a set of feature vectors."""

    count: int
    mean: np.ndarray  # (d,) float64
    m2: np.ndarray  # (d, d) float64

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def empty(cls, dim: int) -> PartialMoments:
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def from_samples(cls, features: np.ndarray) -> PartialMoments:
        """Moments of the rows of ``features`` (n, d), accumulated in float64."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be a 2-D array (n, d), got shape {x.shape}")
        if x.shape[0] == 0:
            return cls.empty(x.shape[1])
        mean = x.mean(axis=0)
        centered = x - mean
        return cls(int(x.shape[0]), mean, centered.T @ centered)

    def merge(self, other: PartialMoments) -> PartialMoments:
        if self.dim != other.dim:
            raise ValueError(f"cannot merge moments of dimension {self.dim} and {other.dim}")
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        total = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / total)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.count * other.count / total)
        return PartialMoments(total, mean, m2)

    def covariance(self) -> np.ndarray:
        """Unbiased (N - 1) covariance; all zeros when fewer than two samples were seen.

        Zero rather than NaN: a single sample says nothing about spread, and the scores that
        need an inverse add the paper's eps to the diagonal.
        """
        if self.count < 2:
            return np.zeros_like(self.m2)
        cov = self.m2 / (self.count - 1)
        return (cov + cov.T) / 2.0  # exact symmetry despite rounding in the updates


def merge_all(partials: Iterable[PartialMoments]) -> PartialMoments:
    """Merge any number of partials; the result does not depend on their order (to rounding)."""
    items = list(partials)
    if not items:
        raise ValueError("merge_all needs at least one partial moment")
    return reduce(PartialMoments.merge, items)


def l2_normalize_rows(features: np.ndarray) -> np.ndarray:
    """z_i = f(x_i) / ||f(x_i)||, as the method does for CLIP features.

    Raises InvalidInputError for rows that are zero or not finite, which would otherwise turn into NaN
    statistics without a trace of where they came from.
    """
    x = np.asarray(features, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x).all(axis=-1)).ravel()[:5].tolist()
        raise InvalidInputError(f"features contain NaN or infinity (rows {bad})")
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        bad = np.argwhere(norms.ravel() == 0).ravel()[:5].tolist()
        raise InvalidInputError(f"features contain all-zero rows, which have no direction (rows {bad})")
    return x / norms
