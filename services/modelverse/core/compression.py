"""Diagonal + low-rank compression of one model's covariance.

A full d x d covariance is 1 MiB per model at d = 512 in float32. We keep

    Sigma ~ D + W W^T,   W = U_r sqrt(Lambda_r)  (top-r eigenpairs),  D = diag(Sigma) - diag(W W^T)

so the diagonal (and hence the trace) of Sigma is preserved exactly, and precompute, for the
paper's regulariser eps, the factors that make a Gaussian log-density O(d r) with no solve at
query time:

    C = I_r + W^T (D + eps)^-1 W,   L L^T = C^-1  (Woodbury),   logdet = sum log(D + eps) + log det C.

D and W are stored in float16; C, L and logdet are computed in float64 *from the rounded
float16 values*, so the stored factors are consistent with the stored matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STORAGE_DTYPE = np.float16


@dataclass(frozen=True)
class CompressedCovariance:
    diag: np.ndarray  # (d,) float16, residual variance D >= 0
    factor: np.ndarray  # (d, r) float16, W with orthogonal columns, largest first
    eps: float  # the regulariser the Woodbury factors below include
    woodbury: np.ndarray  # (r, r) float32, lower-triangular L with L L^T = C^-1
    logdet: float  # log det(D + eps I + W W^T)
    trace: float  # trace of the covariance it came from (exact, for Frechet)

    @property
    def dim(self) -> int:
        return int(self.diag.shape[0])

    @property
    def rank(self) -> int:
        return int(self.factor.shape[1])

    @property
    def nbytes(self) -> int:
        return self.diag.nbytes + self.factor.nbytes + self.woodbury.nbytes + 2 * 4

    def dense(self) -> np.ndarray:
        """D + W W^T in float64 (without eps): for tests and evaluation only."""
        w = self.factor.astype(np.float64)
        return np.diag(self.diag.astype(np.float64)) + w @ w.T


def compress_covariance(covariance: np.ndarray, rank: int, eps: float) -> CompressedCovariance:
    cov = np.asarray(covariance, dtype=np.float64)
    d = cov.shape[0]
    if cov.shape != (d, d):
        raise ValueError(f"covariance must be square, got shape {cov.shape}")
    if not 0 <= rank <= d:
        raise ValueError(f"rank must be between 0 and {d}, got {rank}")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
    top = slice(d - rank, d) if rank else slice(0, 0)
    # Rounding makes tiny eigenvalues of a rank-deficient covariance (few samples) negative.
    lam = np.clip(eigenvalues[top][::-1], 0.0, None)
    w = (eigenvectors[:, top][:, ::-1] * np.sqrt(lam)).astype(STORAGE_DTYPE)
    w64 = w.astype(np.float64)
    residual = np.clip(np.diag(cov) - np.einsum("ij,ij->i", w64, w64), 0.0, None)
    diag = residual.astype(STORAGE_DTYPE)
    woodbury, logdet = woodbury_factors(diag, w, eps)
    return CompressedCovariance(
        diag=diag,
        factor=w,
        eps=float(eps),
        woodbury=woodbury,
        logdet=logdet,
        trace=float(np.trace(cov)),
    )


def woodbury_factors(diag: np.ndarray, factor: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    """(L, logdet) for D + eps I + W W^T, computed in float64 from the stored values."""
    woodbury, logdet = woodbury_factors_many(diag[None], factor[None], eps)
    return woodbury[0], float(logdet[0])


def woodbury_factors_many(diag: np.ndarray, factor: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(L, logdet) of M models at once: diag (M, d), factor (M, d, r) -> (M, r, r) float32, (M,).

    numpy's linalg broadcasts over the leading axis, so a million synthetic models or a
    re-compression of a whole store costs a few batched LAPACK calls, not a Python loop."""
    d_eps = diag.astype(np.float64) + eps
    w = factor.astype(np.float64)
    m, r = w.shape[0], w.shape[2]
    if r == 0:
        return np.zeros((m, 0, 0), dtype=np.float32), np.sum(np.log(d_eps), axis=1)
    capacitance = np.eye(r) + np.einsum("mdi,mdj->mij", w / d_eps[:, :, None], w)
    chol_inv = np.linalg.cholesky(np.linalg.inv(capacitance))
    _, logdet_c = np.linalg.slogdet(capacitance)
    return chol_inv.astype(np.float32), np.sum(np.log(d_eps), axis=1) + logdet_c
