"""The scale collection of ``modelverse.bench.scale_stats`` (``tools/scale_stats.py``) generated
and scored on a torch device.

Ten million models' compressed statistics are about 226 GB (22.6 KiB each): more than one GPU, the
host memory or the disk of a lent GPU machine holds. So at that size the collection is generated in
batches on the device, each batch is scored exhaustively against a fixed query set while it is
there, and only what a first stage keeps stays resident (normalised means and lifted vectors, in
float16). The exhaustive exact scores of every model for every query are kept, which makes the
two-stage fidelity curve at any candidate count a gather instead of a second pass.

Same distribution as ``scale_stats.generate_batch`` (the numpy generator that writes stores), not
the same numbers: the random streams differ. Two changes make it fit a GPU:

- orthonormal directions by Cholesky QR (Q = A R^-1 with R^T R = A^T A) instead of Householder
  QR: one batched matrix product and a 16 x 16 factorisation per model;
- Gamma(4) residual scales as a sum of four Exp(1) draws (exact for an integer shape), which a
  seeded torch generator can draw.

Everything is float64 on the device apart from the float16 storage rounding, so the scores equal
``modelverse.core.scores`` on the same rounded statistics (tests/test_scale_gpu.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from modelverse.bench.scale_stats import Profile

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Layout:
    """The collection-wide draws every batch shares: clusters, concept and common directions."""

    assignment: torch.Tensor  # (N,) int64 cluster of each model
    concepts: torch.Tensor  # (clusters, d) float64 unit vectors
    common: torch.Tensor  # (d,) float64 unit vector

    @classmethod
    def draw(cls, profile: Profile, models: int, clusters: int, seed: int, device: torch.device) -> Layout:
        g = torch.Generator(device="cpu").manual_seed(seed)
        concepts = torch.randn(clusters, profile.dim, generator=g, dtype=torch.float64)
        concepts /= concepts.norm(dim=1, keepdim=True)
        common = torch.randn(profile.dim, generator=g, dtype=torch.float64)
        common /= common.norm()
        sizes = 1.0 / torch.arange(1, clusters + 1, dtype=torch.float64)  # Zipf, as scale_stats
        assignment = torch.multinomial(sizes / sizes.sum(), models, replacement=True, generator=g)
        return cls(assignment.to(device), concepts.to(device), common.to(device))


@dataclass(frozen=True)
class Batch:
    """Models start .. start + n - 1 as a store keeps them (diag and factor rounded to float16)."""

    start: int
    means: torch.Tensor  # (n, d) float32
    diag: torch.Tensor  # (n, d) float16
    factor: torch.Tensor  # (n, d, r) float16, columns orthogonal, largest first

    @property
    def size(self) -> int:
        return int(self.means.shape[0])


def _interp(u: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """np.interp(u, linspace(0, 1, len(quantiles)), quantiles) for u in [0, 1]."""
    position = u * (quantiles.numel() - 1)
    low = position.floor().long().clamp(max=quantiles.numel() - 2)
    frac = position - low
    return quantiles[low] + (quantiles[low + 1] - quantiles[low]) * frac


def generate_batch(profile: Profile, layout: Layout, start: int, count: int, seed: int) -> Batch:
    device = layout.common.device
    d, r = profile.dim, profile.rank
    g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + start)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device, dtype=torch.float64)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, device=device, dtype=torch.float64)

    c, w = profile.common_cosine, max(profile.within_cosine, profile.common_cosine**2 + 1e-3)
    a2 = max(w - c**2, 1e-4)
    o2 = max(1.0 - c**2 - a2, 1e-4)
    own = normal(count, d) / math.sqrt(d)
    direction = (math.sqrt(a2) * layout.concepts[layout.assignment[start:start + count]]
                 + c * layout.common + math.sqrt(o2) * own)
    direction /= direction.norm(dim=1, keepdim=True)
    quantiles = torch.tensor(profile.norm_quantiles, dtype=torch.float64, device=device)
    means = direction * _interp(uniform(count), quantiles)[:, None]

    a = normal(count, d, r)
    upper = torch.linalg.cholesky(a.transpose(1, 2) @ a).transpose(1, 2)  # R with R^T R = A^T A
    basis = torch.linalg.solve_triangular(upper, a, upper=True, left=False)  # A R^-1: orthonormal columns
    lam1 = torch.exp(profile.lambda1_log_mean + profile.lambda1_log_std * normal(count))
    lam = lam1[:, None] * torch.tensor(profile.spectrum, dtype=torch.float64, device=device)[None, :]
    factor = (basis * lam.sqrt()[:, None, :]).to(torch.float16)
    top_trace = lam.sum(dim=1)
    residual_total = top_trace * profile.residual_fraction / max(1e-9, 1.0 - profile.residual_fraction)
    gamma4 = -torch.log(uniform(count, d, 4).clamp_min(1e-300)).sum(dim=2)  # Gamma(shape 4, scale 1)
    diag = (residual_total[:, None] / d * 0.25 * gamma4).to(torch.float16)
    return Batch(start, means.to(torch.float32), diag, factor)


def sample_queries(batch: Batch, count: int, seed: int) -> torch.Tensor:
    """(count, d) float64 unit queries: one sample each from the Gaussians of ``count`` random
    models of the batch, as tools/bench_serving.py makes its vector queries."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    device = batch.means.device
    rows = torch.randperm(batch.size, generator=g)[:count].to(device)
    factor = batch.factor[rows].double()
    z = batch.means[rows].double()
    z = z + torch.einsum("mdr,mr->md", factor, torch.randn(count, factor.shape[2], generator=g, dtype=torch.float64).to(device))
    z = z + batch.diag[rows].double().sqrt() * torch.randn(z.shape, generator=g, dtype=torch.float64).to(device)
    return z / z.norm(dim=1, keepdim=True)


def normalized_means(batch: Batch) -> torch.Tensor:
    m = batch.means.double()
    norms = m.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, m / norms.clamp_min(1e-300), torch.zeros_like(m))


def exact_scores(batch: Batch, queries: torch.Tensor, tau: float, eps: float) -> dict[str, torch.Tensor]:
    """(Q, n) float64 per method for unit queries (Q, d) float64: FIRST_MOMENT, MGF, GAUSSIAN as
    ``modelverse.core.scores`` defines them, on the batch's stored (rounded) statistics."""
    mu = batch.means.double()
    diag = batch.diag.double()
    w = batch.factor.double()
    d = mu.shape[1]
    q = queries
    q2 = q * q
    proj = torch.einsum("ndr,qd->qnr", w, q)  # w_k . q
    quadratic = q2 @ diag.T + (proj * proj).sum(dim=2)  # q^T (D + W W^T) q
    mgf = tau * (q @ mu.T) + 0.5 * tau**2 * quadratic

    # Gaussian through Woodbury: Sigma' = D' + W W^T, D' = D + eps, C = I + W^T D'^-1 W.
    inv_d = 1.0 / (diag + eps)
    w_scaled = w * inv_d[:, :, None]  # D'^-1 W
    capacitance = torch.eye(w.shape[2], dtype=torch.float64, device=w.device) + w.transpose(1, 2) @ w_scaled
    chol = torch.linalg.cholesky(capacitance)
    logdet = torch.log(diag + eps).sum(dim=1) + 2.0 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(dim=1)
    # x = q - mu: x^T D'^-1 x expanded so no (Q, n, d) tensor is formed.
    diag_term = q2 @ inv_d.T - 2.0 * q @ (mu * inv_d).T + (mu * mu * inv_d).sum(dim=1)[None, :]
    u = torch.einsum("ndr,qd->qnr", w_scaled, q) - torch.einsum("ndr,nd->nr", w_scaled, mu)[None]  # W^T D'^-1 x
    solved = torch.cholesky_solve(u.permute(1, 2, 0), chol)  # (n, r, Q): C^-1 u
    correction = (u.permute(1, 2, 0) * solved).sum(dim=1).T  # u^T C^-1 u, (Q, n)
    gaussian = -0.5 * (diag_term - correction + logdet[None, :] + d * LOG_2PI)
    return {"first_moment": q @ normalized_means(batch).T, "mgf": mgf, "gaussian": gaussian}


def lift_mgf(batch: Batch, tau: float, columns: int, alpha: float) -> torch.Tensor:
    """(n * 2^columns, d + 1) float64: ``modelverse.core.lift``'s MGF vectors, same rows order."""
    mu = batch.means.double()
    w = batch.factor.double()
    n, d = mu.shape
    norms2 = (w * w).sum(dim=1)
    order = torch.argsort(-norms2, dim=1, stable=True)[:, :columns]
    kept = torch.gather(w, 2, order[:, None, :].expand(n, d, columns))
    kept2 = torch.gather(norms2, 1, order)
    s = alpha * kept2.sqrt()
    rest = (norms2.sum(dim=1) - kept2.sum(dim=1)) / d
    constant = 0.5 * tau**2 * (batch.diag.double().mean(dim=1) + rest - (s * s).sum(dim=1))
    bits = (torch.arange(2**columns, device=mu.device)[:, None] >> torch.arange(columns, device=mu.device)) & 1
    signs = 1.0 - 2.0 * bits.double()  # (P, t), pattern p's signs
    linear = tau * mu[:, None, :] + tau**2 * torch.einsum("pt,ndt->npd", signs, kept * s[:, None, :])
    constants = constant[:, None, None].expand(n, signs.shape[0], 1)
    return torch.cat([linear, constants], dim=2).reshape(n * signs.shape[0], d + 1)


def lift_gaussian(batch: Batch, eps: float) -> torch.Tensor:
    """(n, d + 1) float64: the isotropic Gaussian vector of ``modelverse.core.lift``."""
    mu = batch.means.double()
    diag = batch.diag.double()
    w = batch.factor.double()
    inv_d = 1.0 / (diag + eps)
    capacitance = torch.eye(w.shape[2], dtype=torch.float64, device=w.device) + w.transpose(1, 2) @ (w * inv_d[:, :, None])
    logdet = torch.log(diag + eps).sum(dim=1) + torch.logdet(capacitance)
    s2 = diag.mean(dim=1) + eps
    constant = -(1.0 + (mu * mu).sum(dim=1)) / (2.0 * s2) - 0.5 * logdet
    return torch.cat([mu / s2[:, None], constant[:, None]], dim=1)


def half_gemm_with_float_output(device: torch.device) -> bool:
    """Whether this torch has CUDA's half-in, float-out GEMM (``torch.mm(out_dtype=)``, torch >= 2.8)."""
    if device.type != "cuda":
        return False
    try:
        probe = torch.ones(2, 2, dtype=torch.float16, device=device)
        return torch.mm(probe, probe, out_dtype=torch.float32).dtype == torch.float32
    except (TypeError, RuntimeError, NotImplementedError):
        return False


CHUNK = 1 << 20  # rows converted to float32 at a time where the half-in float-out GEMM is missing


def inner_products(queries: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """(Q, n) float32 inner products of queries with resident vectors (float16 or wider).

    float16 products are accumulated and returned in float32: a float16 result would round a
    score of 1,000 to 0.5. With CUDA's half-in float-out GEMM that costs nothing; without it the
    vectors are widened a chunk at a time (``gemm_path`` says which ran)."""
    if vectors.dtype == torch.float16 and gemm_path(vectors.device) == "half-in float-out":
        return torch.mm(queries.to(torch.float16), vectors.T, out_dtype=torch.float32)
    q = queries.float()
    out = torch.empty(q.shape[0], vectors.shape[0], dtype=torch.float32, device=vectors.device)
    for start in range(0, vectors.shape[0], CHUNK):
        out[:, start:start + CHUNK] = q @ vectors[start:start + CHUNK].float().T
    return out


_GEMM_PATHS: dict[torch.device, str] = {}


def gemm_path(device: torch.device) -> str:
    if device not in _GEMM_PATHS:
        _GEMM_PATHS[device] = "half-in float-out" if half_gemm_with_float_output(device) else "float32 chunks"
    return _GEMM_PATHS[device]


def lifted_first_stage(vectors: torch.Tensor, copies: int, queries: torch.Tensor) -> torch.Tensor:
    """(Q, n) best lifted inner product per model for unit queries (Q, d): [q, 1] . v, max over copies."""
    lifted = torch.cat([queries, torch.ones(queries.shape[0], 1, dtype=queries.dtype, device=queries.device)], dim=1)
    scores = inner_products(lifted, vectors)  # (Q, n * copies)
    return scores.view(queries.shape[0], -1, copies).amax(dim=2)


@dataclass(frozen=True)
class Resident:
    """Statistics held on the device as a store keeps them, laid out for one GEMM per chunk:
    W^T's rows contiguous, so W_m^T q for every model of a chunk is one half-in float-out GEMM."""

    means: torch.Tensor  # (n, d) float32
    diag: torch.Tensor  # (n, d) float16
    columns: torch.Tensor  # (n, r, d) float16: W^T
    woodbury: torch.Tensor  # (n, r, r) float32, lower L with L L^T = C^-1 (``core.compression``)
    logdet: torch.Tensor  # (n,) float64, log det(D + eps I + W W^T)

    @property
    def size(self) -> int:
        return int(self.means.shape[0])

    @classmethod
    def generate(cls, profile: Profile, layout: Layout, models: int, batch: int, seed: int, eps: float) -> Resident:
        device = layout.common.device
        d, r = profile.dim, profile.rank
        means = torch.empty(models, d, dtype=torch.float32, device=device)
        diag = torch.empty(models, d, dtype=torch.float16, device=device)
        columns = torch.empty(models, r, d, dtype=torch.float16, device=device)
        woodbury = torch.empty(models, r, r, dtype=torch.float32, device=device)
        logdet = torch.empty(models, dtype=torch.float64, device=device)
        for start in range(0, models, batch):
            count = min(batch, models - start)
            b = generate_batch(profile, layout, start, count, seed)
            means[start:start + count] = b.means
            diag[start:start + count] = b.diag
            columns[start:start + count] = b.factor.transpose(1, 2)
            w = b.factor.double()
            d_eps = b.diag.double() + eps
            capacitance = torch.eye(r, dtype=torch.float64, device=device) + w.transpose(1, 2) @ (w / d_eps[:, :, None])
            chol = torch.linalg.cholesky(capacitance)
            woodbury[start:start + count] = torch.linalg.cholesky(torch.cholesky_inverse(chol)).float()
            logdet[start:start + count] = (torch.log(d_eps).sum(dim=1)
                                           + 2.0 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(dim=1))
        return cls(means, diag, columns, woodbury, logdet)

    def batch(self, start: int, stop: int) -> Batch:
        """Rows start .. stop - 1 as a :class:`Batch` (for the float64 reference scores)."""
        return Batch(start, self.means[start:stop], self.diag[start:stop], self.columns[start:stop].transpose(1, 2))


def resident_scores(res: Resident, queries: torch.Tensor, method: str, tau: float, eps: float,
                    chunk: int = 1 << 18) -> torch.Tensor:
    """(Q, n) float32 MGF or GAUSSIAN scores of every resident model: the exhaustive second-order
    search, float16 statistics with float32 arithmetic (the reference is ``exact_scores``)."""
    q = queries.float()
    q2 = q * q
    n, r, d = res.columns.shape
    out = torch.empty(q.shape[0], n, dtype=torch.float32, device=q.device)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        count = stop - start
        mu = res.means[start:stop]
        diag = res.diag[start:stop].float()
        cols = res.columns[start:stop]
        if method == "mgf":
            proj = inner_products(q, cols.reshape(count * r, d)).view(-1, count, r)  # w_k . q
            quadratic = q2 @ diag.T + (proj * proj).sum(dim=2)
            out[:, start:stop] = tau * (q @ mu.T) + 0.5 * tau**2 * quadratic
        elif method == "gaussian":
            inv_d = 1.0 / (diag + eps)
            diag_term = q2 @ inv_d.T - 2.0 * q @ (mu * inv_d).T + (mu * mu * inv_d).sum(dim=1)[None, :]
            scaled = cols.float() * inv_d[:, None, :]  # (W^T D'^-1) rows
            u = (q @ scaled.reshape(count * r, d).T).view(-1, count, r) - (scaled * mu[:, None, :]).sum(dim=2)[None]
            v = torch.einsum("crs,qcr->qcs", res.woodbury[start:stop], u)  # L^T u
            maha = diag_term - (v * v).sum(dim=2)
            out[:, start:stop] = -0.5 * (maha + res.logdet[start:stop].float()[None, :] + d * LOG_2PI)
        else:
            raise ValueError(f"no resident scores for {method!r}")
    return out
