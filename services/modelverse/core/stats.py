"""Finalised per-model statistics: what the index and the scores are built from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelverse.core.compression import CompressedCovariance, compress_covariance
from modelverse.core.moments import PartialMoments, l2_normalize_rows

# The paper's constants (Lu et al., "Content-Based Search for Deep Generative Models").
DEFAULT_TAU = 100.0
DEFAULT_EPS = 1e-3
DEFAULT_RANK = 16


def store_rank(dim: int, requested: int | None = None) -> int:
    """The rank of a new store's compressed covariance, decided here for every path that creates
    one (the CLI's add, embedded and fleet indexing): the requested rank, else DEFAULT_RANK,
    never above the features' dimension."""
    return min(DEFAULT_RANK if requested is None else requested, dim)


@dataclass(frozen=True)
class ModelStats:
    """One model's summary: first moment, second order in two forms, optionally raw samples."""

    count: int
    mean: np.ndarray  # (d,) float64, not re-normalised
    compressed: CompressedCovariance
    covariance: np.ndarray | None = None  # (d, d) full covariance, for small collections
    samples: np.ndarray | None = None  # (n, d) L2-normalised features, for Monte Carlo
    # Identity ("name:fingerprint") of the encoder that made the features: statistics are only
    # comparable with queries encoded by the same weights. "" = features of unstated origin.
    encoder: str = ""

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


def summarize(
    moments: PartialMoments,
    *,
    rank: int = DEFAULT_RANK,
    eps: float = DEFAULT_EPS,
    keep_covariance: bool = True,
    samples: np.ndarray | None = None,
    encoder: str = "",
) -> ModelStats:
    """Finalise merged partial moments into the statistics the store keeps."""
    if moments.count < 1:
        raise ValueError("cannot summarise a model from zero samples")
    covariance = moments.covariance()
    return ModelStats(
        count=moments.count,
        mean=moments.mean.copy(),
        compressed=compress_covariance(covariance, rank=store_rank(moments.dim, rank), eps=eps),
        covariance=covariance if keep_covariance else None,
        samples=None if samples is None else np.asarray(samples, dtype=np.float32),
        encoder=encoder,
    )


def stats_from_features(
    features: np.ndarray,
    *,
    rank: int = DEFAULT_RANK,
    eps: float = DEFAULT_EPS,
    keep_covariance: bool = True,
    keep_samples: bool = False,
    encoder: str = "",
) -> ModelStats:
    """Statistics of a model from its samples' raw features (N x d); rows are L2-normalised."""
    z = l2_normalize_rows(features)
    return summarize(
        PartialMoments.from_samples(z),
        rank=rank,
        eps=eps,
        keep_covariance=keep_covariance,
        samples=z if keep_samples else None,
        encoder=encoder,
    )
