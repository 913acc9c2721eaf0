"""Lifting: a second-order score approximated as an inner product, for a first stage.

Pure NumPy: the vectors of the models and of a query. The FAISS indexes that hold them and the
choice of first stage per method are in ``serving.first_stage`` and ``serving.shard.index``.

A first-moment index ranks by the cosine of the means, which is what FIRST_MOMENT scores. The
1st + 2nd moment score (MGF, text queries' default),

    mgf(q, m) = tau q.mu + 1/2 tau^2 (sum_j D_j q_j^2 + sum_k (w_k . q)^2),   Sigma ~ D + W W^T,

is at tau = 100 dominated by the covariance term, which the cosine does not see
(docs/SERVING.md: 0.405 top-10 agreement at 800 candidates per shard). Here it becomes a
maximum of inner products of a lifted query [q, 1] with a few vectors per model:

- sum_j D_j q_j^2 -> mean(D) (q is a unit vector; the diagonal's spread across coordinates
  moves the score by less than its spread across models, measured: adding it as a [q^2] block
  changes no recall);
- the columns past the ``columns`` largest, sum_k>t (w_k . q)^2 -> sum_k>t |w_k|^2 / d, their
  mean over directions;
- each of the t largest columns keeps its direction through the tangent lower bound of the
  square at s_k = alpha |w_k|:  x^2 >= 2 s_k |x| - s_k^2 = max_{g = +-1} (2 g s_k x) - s_k^2.
  With the sign g unknown before the query, a model gets one vector per sign pattern
  (2^t vectors) and scores as its best one:

      mgf ~ max_g <[q, 1], [tau mu + tau^2 sum_k g_k s_k w_k,
                            1/2 tau^2 (mean(D) + sum_k>t |w_k|^2/d - sum_k<=t s_k^2)]>.

  The bound is tight where |w_k . q| = s_k; alpha is where a column's alignment with a query
  starts to decide the top of the ranking. Measured on 100,000 SyntheticZoo-profile models (exact scans,
  20 queries, tools/bench_first_stage.py): recall of the exact top 10 among the top 100 is
  0.58 for the mean alone, 0.92 for t = 1 and 0.965 for t = 2 at alpha = 0.1; top-10 agreement
  through the shards at 200 / 400 candidates per shard: 0.93 / 0.978 (docs/SERVING.md). On the
  zoo-calibrated profile smaller tangent points are better: DEFAULT_ALPHA = 0.05 (see there).

GAUSSIAN has the analogous single vector (the density under an isotropic covariance
s^2 I, s^2 = mean(D) + eps, which is linear in q plus a per-model constant):

    log N(q; mu, s^2 I) + const = <[q, 1], [mu / s^2, -(1 + |mu|^2) / (2 s^2) - 1/2 logdet]>.

A query of several parts (weights w_i) lifts to [sum_i w_i q_i, sum_i w_i]: exact for the
linear parts of the score, and a lower bound of the weighted sum of the parts' maxima.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelverse.core.scores import normalize_query
from modelverse.core.types import Method, QueryPart

DEFAULT_COLUMNS = 2
# The tangent point decides the MGF first stage's fidelity more than the number of columns. On the
# zoo-calibrated profile (tools/bench_gpu_scale.py, docs/SERVING.md "10,000,000 models on one
# GPU"): 0.07 is best up to ~800 candidates in all, 0.05 from ~1,600 on, at 1M and 10M models;
# both beat 0.1 everywhere. The gateway asks for 3,200 per shard, so 0.05 (1M models, 2 shards:
# 0.975 of the exhaustive top 10, run 7). On the SyntheticZoo profile 0.1 is better.
DEFAULT_ALPHA = 0.05
BLOCK = 8192  # models per block when lifting a whole shard


@dataclass(frozen=True)
class LiftSpec:
    """How one method's first-stage vectors are made (saved with the index that holds them)."""

    method: str  # a Method value
    columns: int = DEFAULT_COLUMNS  # MGF: columns of W kept by direction (0: the mean only)
    alpha: float = DEFAULT_ALPHA  # MGF: tangent point s_k = alpha |w_k|
    # MGF: the store's temperature (ScoringParams.tau), required; no other lift reads it, so it
    # is None there and a store's tau never rebuilds a GAUSSIAN index.
    tau: float | None = None

    def __post_init__(self) -> None:
        method = Method(self.method)
        if method not in LIFTABLE:
            raise ValueError(f"no lifted first stage for {self.method!r}")
        if method is Method.MGF and self.tau is None:
            raise ValueError("the MGF lift needs the store's tau")
        if method is not Method.MGF:
            object.__setattr__(self, "tau", None)  # records saved with a tau still compare equal
        if not 0 <= self.columns <= 4:
            raise ValueError(f"columns must be between 0 and 4, got {self.columns}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")

    @property
    def copies(self) -> int:
        """Vectors per model: one per sign pattern of the kept columns."""
        return 2 ** self.columns if Method(self.method) is Method.MGF else 1

    def dim(self, d: int) -> int:
        """[q, 1] padded with zeros to a multiple of 16: FAISS's SIMD scan of 8-bit codes needs
        it (measured: 100k codes of 513 dimensions in 44 ms, of 528 in 3 ms)."""
        return padded_dim(d)


LIFTABLE = (Method.MGF, Method.GAUSSIAN)


def padded_dim(d: int) -> int:
    return -(-(d + 1) // 16) * 16


def _sign_patterns(columns: int) -> np.ndarray:
    """(2^t, t) of +-1: row p holds the signs of pattern p."""
    if columns == 0:
        return np.ones((1, 0))
    bits = (np.arange(2**columns)[:, None] >> np.arange(columns)[None, :]) & 1
    return 1.0 - 2.0 * bits


def lift_models(
    spec: LiftSpec,
    means: np.ndarray,
    diag: np.ndarray,
    factor: np.ndarray,
    *,
    logdet: np.ndarray | None,
    eps: float,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """(n * copies, padded_dim(d)) float32: model i's vectors are rows i * copies ... (i + 1) * copies - 1.

    ``rows`` selects models of the (memory-mapped) columns, read a block at a time; None: all.
    """
    if rows is None:
        rows = np.arange(means.shape[0])
    rows = np.asarray(rows, dtype=np.int64)
    n, d = rows.size, means.shape[1]
    out = np.zeros((n * spec.copies, padded_dim(d)), dtype=np.float32)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        take = rows[start:stop]
        block = _lift_block(
            spec, np.asarray(means[take], dtype=np.float64), np.asarray(diag[take], dtype=np.float64),
            np.asarray(factor[take], dtype=np.float32), None if logdet is None else np.asarray(logdet[take]),
            eps,
        )
        out[start * spec.copies : stop * spec.copies, : d + 1] = block
    return out


def _lift_block(
    spec: LiftSpec, mu: np.ndarray, diag: np.ndarray, factor: np.ndarray, logdet: np.ndarray | None, eps: float
) -> np.ndarray:
    n, d = mu.shape
    if Method(spec.method) is Method.GAUSSIAN:
        if logdet is None:
            raise ValueError("the Gaussian lift needs the models' log-determinants")
        s2 = diag.mean(axis=1) + eps
        constant = -(1.0 + (mu**2).sum(axis=1)) / (2.0 * s2) - 0.5 * logdet
        return np.concatenate([mu / s2[:, None], constant[:, None]], axis=1).astype(np.float32)
    tau, t = spec.tau, spec.columns
    norms2 = (factor.astype(np.float64) ** 2).sum(axis=1)  # (n, r) squared column norms
    order = np.argsort(-norms2, axis=1, kind="stable")[:, :t]  # the t largest columns
    kept = np.take_along_axis(factor, order[:, None, :], axis=2).astype(np.float64)  # (n, d, t)
    kept2 = np.take_along_axis(norms2, order, axis=1)  # (n, t)
    s = spec.alpha * np.sqrt(kept2)  # tangent points
    rest = (norms2.sum(axis=1) - kept2.sum(axis=1)) / d
    constant = 0.5 * tau**2 * (diag.mean(axis=1) + rest - (s**2).sum(axis=1))
    signs = _sign_patterns(t)  # (P, t)
    # (n, P, d): tau mu + tau^2 sum_k g_k s_k w_k
    linear = tau * mu[:, None, :] + tau**2 * np.einsum("pt,ndt->npd", signs, kept * s[:, None, :])
    out = np.concatenate([linear, np.broadcast_to(constant[:, None, None], (n, signs.shape[0], 1))], axis=2)
    return out.reshape(n * signs.shape[0], d + 1).astype(np.float32)


def lift_query(parts: list[QueryPart], dim: int) -> np.ndarray:
    """[sum_i w_i q_i, sum_i w_i, 0 ...] (padded_dim(d),) float32, q_i normalised."""
    out = np.zeros(padded_dim(dim), dtype=np.float32)
    out[:dim] = sum(p.weight * normalize_query(p.vector, dim) for p in parts)
    out[dim] = sum(p.weight for p in parts)
    return out
