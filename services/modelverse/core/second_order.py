"""The second order of many models at once, in full or compressed form.

Both classes answer the same four questions for one query against all their models, with no
per-model Python loop (work is done in blocks of models to bound memory):

- ``quadratic_form(q)``: q^T Sigma_m q, for the 1st + 2nd moment score;
- ``mahalanobis_and_logdet(diffs, eps)``: x_m^T (Sigma_m + eps I)^-1 x_m and log det(Sigma_m + eps I),
  for the Gaussian log-density;
- ``trace()``: tr Sigma_m;
- ``sqrt_trace_product(query)``: tr((Sigma_q Sigma_m)^{1/2}), for the Frechet distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, Sequence

import numpy as np

from modelverse.core.compression import CompressedCovariance, woodbury_factors_many

FULL_BLOCK = 32  # models per block: 32 x 512 x 512 float64 = 64 MiB
COMPRESSED_BLOCK = 8192  # 8192 x 512 x 16 float32 = 256 MiB


def _blocks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


class SecondOrder(Protocol):
    def __len__(self) -> int: ...

    def quadratic_form(self, q: np.ndarray) -> np.ndarray: ...

    def mahalanobis_and_logdet(
        self, diffs: np.ndarray, eps: float
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def trace(self) -> np.ndarray: ...

    def take(self, rows: np.ndarray) -> SecondOrder: ...


@dataclass(frozen=True)
class FullCovariances:
    """Full covariances, (M, d, d). Arithmetic in float64."""

    covariances: np.ndarray
    # Precisions and log-determinants of (Sigma + eps I) per eps: the factorisation is the
    # expensive part of the Gaussian score and depends on the collection only, not the query.
    _precision_cache: dict[float, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __len__(self) -> int:
        return int(self.covariances.shape[0])

    @classmethod
    def stack(cls, covariances: Sequence[np.ndarray]) -> FullCovariances:
        return cls(np.stack([np.asarray(c) for c in covariances]))

    def take(self, rows: np.ndarray) -> FullCovariances:
        return FullCovariances(self.covariances[rows])

    def quadratic_form(self, q: np.ndarray) -> np.ndarray:
        out = np.empty(len(self))
        for block in _blocks(len(self), FULL_BLOCK):
            cov = self.covariances[block].astype(np.float64)
            out[block] = (cov @ q) @ q
        return out

    def mahalanobis_and_logdet(
        self, diffs: np.ndarray, eps: float
    ) -> tuple[np.ndarray, np.ndarray]:
        precisions, logdet = self._precisions(eps)
        maha = np.empty(len(self))
        for block in _blocks(len(self), FULL_BLOCK):
            x = diffs[block]
            maha[block] = np.einsum("md,md->m", x, (precisions[block] @ x[..., None])[..., 0])
        return maha, logdet

    def _precisions(self, eps: float) -> tuple[np.ndarray, np.ndarray]:
        if eps not in self._precision_cache:
            d = self.covariances.shape[1]
            precisions = np.empty(self.covariances.shape, dtype=np.float64)
            logdet = np.empty(len(self))
            identity = np.eye(d)
            for block in _blocks(len(self), FULL_BLOCK):
                chol = np.linalg.cholesky(self.covariances[block].astype(np.float64) + eps * identity)
                chol_inv = np.linalg.solve(chol, np.broadcast_to(identity, chol.shape))
                precisions[block] = np.swapaxes(chol_inv, 1, 2) @ chol_inv
                logdet[block] = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            self._precision_cache[eps] = (precisions, logdet)
        return self._precision_cache[eps]

    def trace(self) -> np.ndarray:
        return np.trace(self.covariances, axis1=1, axis2=2).astype(np.float64)

    def sqrt_trace_product(self, query_covariance: np.ndarray) -> np.ndarray:
        """tr((S_q S_m)^{1/2}) = sum of sqrt eigenvalues of S_q^{1/2} S_m S_q^{1/2} (PSD).

        With S_q = F F^T (F: d x k, the query's non-null eigen-directions scaled), those
        non-zero eigenvalues are the eigenvalues of F^T S_m F, a k x k matrix: a query made of
        a few images (k < n images) costs k^3 per model instead of d^3.
        """
        eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(query_covariance, dtype=np.float64))
        keep = eigenvalues > max(float(eigenvalues.max()), 0.0) * 1e-12  # null directions add nothing
        factor = eigenvectors[:, keep] * np.sqrt(eigenvalues[keep])
        out = np.zeros(len(self))
        if factor.shape[1] == 0:  # a query with no spread at all
            return out
        for block in _blocks(len(self), FULL_BLOCK):
            sandwich = factor.T @ self.covariances[block].astype(np.float64) @ factor
            eigenvalues = np.linalg.eigvalsh(sandwich)
            out[block] = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum(axis=1)
        return out


@dataclass(frozen=True)
class CompressedCovariances:
    """Diagonal + low-rank covariances of M models (see ``compression``). Arithmetic in float32."""

    diag: np.ndarray  # (M, d) float16
    factor: np.ndarray  # (M, d, r) float16
    woodbury: np.ndarray  # (M, r, r) float32
    logdet: np.ndarray  # (M,) float64
    traces: np.ndarray  # (M,) float64
    eps: float

    def __len__(self) -> int:
        return int(self.diag.shape[0])

    @property
    def rank(self) -> int:
        return int(self.factor.shape[2])

    @classmethod
    def stack(cls, items: Sequence[CompressedCovariance]) -> CompressedCovariances:
        if not items:
            raise ValueError("no covariances to stack")
        eps_values = {item.eps for item in items}
        if len(eps_values) != 1:
            raise ValueError(f"compressed covariances were built for different eps: {eps_values}")
        return cls(
            diag=np.stack([item.diag for item in items]),
            factor=np.stack([item.factor for item in items]),
            woodbury=np.stack([item.woodbury for item in items]),
            logdet=np.array([item.logdet for item in items]),
            traces=np.array([item.trace for item in items]),
            eps=items[0].eps,
        )

    def take(self, rows: np.ndarray) -> CompressedCovariances:
        return CompressedCovariances(
            self.diag[rows], self.factor[rows], self.woodbury[rows], self.logdet[rows],
            self.traces[rows], self.eps,
        )

    def item(self, row: int) -> CompressedCovariance:
        return CompressedCovariance(
            diag=np.asarray(self.diag[row]),
            factor=np.asarray(self.factor[row]),
            eps=self.eps,
            woodbury=np.asarray(self.woodbury[row]),
            logdet=float(self.logdet[row]),
            trace=float(self.traces[row]),
        )

    def quadratic_form(self, q: np.ndarray) -> np.ndarray:
        q32 = q.astype(np.float32)
        out = np.empty(len(self))
        for block in _blocks(len(self), COMPRESSED_BLOCK):
            diag = self.diag[block].astype(np.float32)
            projected = q32 @ self.factor[block].astype(np.float32)  # (B, r) = W_m^T q
            out[block] = diag @ (q32 * q32) + np.einsum("br,br->b", projected, projected)
        return out

    def mahalanobis_and_logdet(
        self, diffs: np.ndarray, eps: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Woodbury: x^T (D_eps + W W^T)^-1 x = x^T D_eps^-1 x - ||L^T W^T D_eps^-1 x||^2."""
        woodbury, logdet = (self.woodbury, self.logdet) if eps == self.eps else self._refactor(eps)
        maha = np.empty(len(self))
        for block in _blocks(len(self), COMPRESSED_BLOCK):
            x = diffs[block].astype(np.float32)
            scaled = x / (self.diag[block].astype(np.float32) + np.float32(eps))
            y = np.einsum("bd,bdr->br", scaled, self.factor[block].astype(np.float32))
            z = np.einsum("br,brs->bs", y, woodbury[block])  # L^T y, as rows
            maha[block] = np.einsum("bd,bd->b", x, scaled) - np.einsum("bs,bs->b", z, z)
        return maha, logdet

    def _refactor(self, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Woodbury factors for an eps other than the one stored (costs O(d r^2) per model)."""
        return woodbury_factors_many(np.asarray(self.diag), np.asarray(self.factor), eps)

    def trace(self) -> np.ndarray:
        return self.traces.astype(np.float64)

    def sqrt_trace_product(self, query: CompressedCovariances) -> np.ndarray:
        """tr((S_q S_m)^{1/2}) with each covariance read as s^2 I + W W^T, s^2 = mean(D).

        This isotropic-residual reading (probabilistic PCA) makes the product exact in closed
        form: S_q^{1/2} S_m S_q^{1/2} = c I + B B^T with c = s_q^2 s_m^2 and
        B = [s_m W_q, S_q^{1/2} W_m], whose spectrum comes from the 2r x 2r matrix B^T B.
        The diagonal residual is replaced by its mean only here; its fidelity is measured
        in docs/COMPRESSION.md.
        """
        if len(query) != 1:
            raise ValueError("sqrt_trace_product takes exactly one query covariance")
        d = self.diag.shape[1]
        wq = query.factor[0].astype(np.float64)
        sq2 = float(query.diag[0].astype(np.float64).mean())
        sq = np.sqrt(sq2)
        # S_q^{1/2} = s_q I + U (sqrt(s_q^2 + sigma^2) - s_q) U^T, from the thin SVD of W_q.
        u, sigma, _ = np.linalg.svd(wq, full_matrices=False)
        gain = np.sqrt(sq2 + sigma**2) - sq
        out = np.empty(len(self))
        for block in _blocks(len(self), COMPRESSED_BLOCK):
            wm = self.factor[block].astype(np.float64)  # (B, d, r)
            sm2 = self.diag[block].astype(np.float64).mean(axis=1)  # (B,)
            coeff = np.einsum("dk,bdr->bkr", u, wm) * gain[None, :, None]
            root_wm = sq * wm + np.einsum("dk,bkr->bdr", u, coeff)  # S_q^{1/2} W_m
            b = np.concatenate(
                [np.sqrt(sm2)[:, None, None] * wq[None], root_wm], axis=2
            )  # (B, d, 2r)
            gram = np.einsum("bdi,bdj->bij", b, b)
            c = sq2 * sm2
            eigenvalues = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
            inner = np.sqrt(c[:, None] + eigenvalues).sum(axis=1)
            out[block] = inner + (d - b.shape[2]) * np.sqrt(c)
        return out
