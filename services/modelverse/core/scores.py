"""Every score of the method: one query against many models, vectorised. Higher is better.

q is the L2-normalised query feature; mu_m and Sigma_m are a model's first and second moments.

| score         | formula                                                  |
|---------------|----------------------------------------------------------|
| first moment  | q . mu_m / ||mu_m||                                      |
| mgf           | tau q . mu_m + 1/2 tau^2 q^T Sigma_m q   (mu not normalised) |
| gaussian      | log N(q; mu_m, Sigma_m + eps I)                           |
| monte carlo   | log (1/N) sum_i exp(tau q . z_i)                          |
| frechet       | -(||mu_q - mu_m||^2 + tr(S_q + S_m - 2 (S_q S_m)^{1/2}))    |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelverse.core.second_order import CompressedCovariances, FullCovariances, SecondOrder
from modelverse.errors import InvalidInputError

LOG_2PI = float(np.log(2.0 * np.pi))


def normalize_query(vector: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Validate a raw query feature and L2-normalise it (float64); InvalidInputError when it
    cannot be one (shape, dimension, NaN, zero)."""
    q = np.asarray(vector, dtype=np.float64)
    if q.ndim == 2 and q.shape[0] == 1:
        q = q[0]
    if q.ndim != 1:
        raise InvalidInputError(f"a query vector must be 1-D, got shape {np.shape(vector)}")
    if dim is not None and q.shape[0] != dim:
        raise InvalidInputError(f"query has dimension {q.shape[0]}, the collection has {dim}")
    if not np.all(np.isfinite(q)):
        raise InvalidInputError("query vector contains NaN or infinity")
    norm = np.linalg.norm(q)
    if norm == 0:
        raise InvalidInputError("query vector is all zeros and has no direction")
    return q / norm


def normalized_means(means: np.ndarray) -> np.ndarray:
    """mu_m / ||mu_m||; a zero mean (features that cancel out) stays zero and scores 0."""
    m = np.asarray(means, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


def first_moment(q: np.ndarray, means: np.ndarray) -> np.ndarray:
    return normalized_means(means) @ q


def mgf(
    q: np.ndarray, means: np.ndarray, second: SecondOrder, tau: float
) -> np.ndarray:
    """Closed form of log E[exp(tau q.z)] for z ~ N(mu, Sigma): the 1st + 2nd moment score."""
    return tau * (np.asarray(means, dtype=np.float64) @ q) + 0.5 * tau**2 * second.quadratic_form(q)


def gaussian(
    q: np.ndarray, means: np.ndarray, second: SecondOrder, eps: float
) -> np.ndarray:
    diffs = q[None, :] - np.asarray(means, dtype=np.float64)
    maha, logdet = second.mahalanobis_and_logdet(diffs, eps)
    return -0.5 * (maha + logdet + q.shape[0] * LOG_2PI)


@dataclass(frozen=True)
class SampleSets:
    """Raw sample features of M models, concatenated: rows offsets[m]:offsets[m+1] are model m's."""

    features: np.ndarray  # (sum N_m, d) float32, L2-normalised
    offsets: np.ndarray  # (M + 1,) int64

    @classmethod
    def from_list(cls, samples: list[np.ndarray]) -> SampleSets:
        if any(s.shape[0] == 0 for s in samples):
            raise ValueError("every model needs at least one sample for Monte Carlo scoring")
        offsets = np.concatenate([[0], np.cumsum([s.shape[0] for s in samples])]).astype(np.int64)
        return cls(np.concatenate(samples).astype(np.float32), offsets)

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)


def monte_carlo(q: np.ndarray, samples: SampleSets, tau: float) -> np.ndarray:
    """log mean_i exp(tau q.z_i) per model: a log-sum-exp over each model's rows."""
    logits = tau * (samples.features.astype(np.float64) @ q)
    starts = samples.offsets[:-1]
    counts = np.diff(samples.offsets)
    peak = np.maximum.reduceat(logits, starts)
    summed = np.add.reduceat(np.exp(logits - np.repeat(peak, counts)), starts)
    return peak + np.log(summed) - np.log(counts)


def monte_carlo_many(queries: np.ndarray, samples: SampleSets, tau: float) -> np.ndarray:
    """``monte_carlo`` for many normalised queries at once: (Q, M) scores.

    One model's rows at a time, against every query: the float64 copy of the features then
    never exceeds one model's, which keeps a benchmark over 10,000 samples per model in memory.
    """
    q = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    out = np.empty((q.shape[0], len(samples)))
    for model, (start, stop) in enumerate(zip(samples.offsets[:-1], samples.offsets[1:])):
        logits = tau * (samples.features[start:stop].astype(np.float64) @ q.T)  # (n_m, Q)
        peak = logits.max(axis=0)
        out[:, model] = peak + np.log(np.exp(logits - peak).sum(axis=0)) - np.log(stop - start)
    return out


def frechet_full(
    query_mean: np.ndarray,
    query_covariance: np.ndarray,
    means: np.ndarray,
    covariances: FullCovariances,
) -> np.ndarray:
    return _frechet(
        query_mean,
        float(np.trace(query_covariance)),
        covariances.sqrt_trace_product(query_covariance),
        means,
        covariances.trace(),
    )


def frechet_compressed(
    query_mean: np.ndarray,
    query: CompressedCovariances,
    means: np.ndarray,
    covariances: CompressedCovariances,
) -> np.ndarray:
    return _frechet(
        query_mean,
        float(query.traces[0]),
        covariances.sqrt_trace_product(query),
        means,
        covariances.trace(),
    )


def _frechet(
    query_mean: np.ndarray,
    query_trace: float,
    cross: np.ndarray,
    means: np.ndarray,
    traces: np.ndarray,
) -> np.ndarray:
    diffs = np.asarray(means, dtype=np.float64) - np.asarray(query_mean, dtype=np.float64)
    distance = np.einsum("md,md->m", diffs, diffs) + query_trace + traces - 2.0 * cross
    return -distance


def combine(part_scores: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Multimodal score: the weighted sum of the parts' log-likelihood scores.

    With unit weights this is the paper's product of likelihoods (in log space). Because it is a
    per-model sum, it needs no statistics of the whole collection, so it works unchanged when
    the collection is sharded. See docs/METHOD.md for why all parts share one method.
    """
    if not part_scores:
        raise InvalidInputError("a query needs at least one part")
    if len(part_scores) != len(weights):
        raise ValueError("one weight per query part")
    for weight in weights:
        if not np.isfinite(weight) or weight <= 0:
            raise InvalidInputError(f"part weights must be positive and finite, got {weight}")
    return sum(w * s for w, s in zip(weights, part_scores))
