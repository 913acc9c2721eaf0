"""A second-order score as one inner product over a basis the collection shares, with bounds.

Both second-order scores of the method are, for a unit query q and a model m,

    s_m(q) = c_m + l_m . q + e_m . (q * q) + ||V_m^T q||^2          (V_m: d x r)

- MGF (``mgf_forms``):  c = 0, l = tau mu, e = tau^2/2 D, V = tau / sqrt(2) W   (Sigma ~ D + W W^T);
- GAUSSIAN (``gaussian_forms``): with D_eps = D + eps and G = D_eps^-1 W L (L L^T = C^-1, the
  stored Woodbury factor), the log-density -1/2 ((q - mu)^T (D_eps + W W^T)^-1 (q - mu) + logdet
  + d log 2 pi) expands to c = -1/2 (mu^T D_eps^-1 mu - ||G^T mu||^2 + logdet + d log 2 pi),
  l = mu / D_eps - G G^T mu, e = -1 / (2 D_eps), V = G / sqrt(2). The Woodbury correction adds
  ||G^T q||^2 / 2: a positive semi-definite term, like MGF's.

With an orthonormal basis B (d x k) fitted on the collection (``fit_basis``), A_m = B^T V_m,
R_m = V_m - B A_m and p = B^T q:

    ||V^T q||^2 = p^T (A A^T) p + 2 (A^T p) . (R^T q) + ||R^T q||^2,
    p^T (A A^T) p = svec(A A^T) . svec(p p^T)

(svec: the upper triangle with off-diagonals times sqrt 2, so svec(X) . svec(Y) = tr(X Y)). The
score becomes one inner product of a model vector [c, l, e, svec(A A^T)] with a query vector
[1, q, q * q, svec(p p^T)] in 1 + 2d + k(k+1)/2 dimensions, plus a residual. R^T q = R^T q_perp
(q_perp = q - B p, R's columns are orthogonal to B), so with a = ||A^T p|| <= ||A||_2 ||p||
and b = ||R||_2 ||q_perp||, the residual lies in [-2ab, 2ab + b^2].

Compressed (``fit_compression``): the second-order block g_m = [e_m, svec(A_m A_m^T)] is
replaced by its coordinates z_m on c principal directions P of the collection's g (centred at
g_bar): g_m = g_bar + P z_m + eps_m. For the query block h = [q * q, svec(p p^T)],
g_m . h = g_bar . h + z_m . (P^T h) + eps_m . h with |eps_m . h| <= ||eps_m|| ||h - P P^T h||
(eps_m is orthogonal to P). The model vector is [c, l, z] (1 + d + c dimensions).

Either way every model keeps three slack numbers s_m = [||eps_m||, 2 ||A_m||_2 ||R_m||_2,
||R_m||_2^2] (||eps_m|| = 0 uncompressed), the query three weights w = [||h_perp||, ||p||
||q_perp||, ||q_perp||^2], and

    estimate_m - s_m[:2] . w[:2]  <=  s_m(q)  <=  estimate_m + s_m . w,

so the upper bound is an inner product too, and scanning models in upper-bound order until the
k-th best exact score reaches the next bound returns the exact top k with a certificate
(``certified_top_k``). NumPy only; float64 unless the caller's arrays are float32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))
BLOCK = 4096  # models per block: 4096 x 512 x 16 float64 = 256 MiB at most in flight


@dataclass(frozen=True)
class QuadraticForms:
    """s_m(q) = constant_m + linear_m . q + diagonal_m . (q * q) + ||factor_m^T q||^2 for M models."""

    constant: np.ndarray  # (M,)
    linear: np.ndarray  # (M, d)
    diagonal: np.ndarray  # (M, d)
    factor: np.ndarray  # (M, d, r); V = factor_scale * factor
    # Stored float16 factors stay float16 (a float32 copy of 100k models' is 3.3 GB); the
    # temperature scales them as they are read, a block at a time.
    factor_scale: float = 1.0

    def __len__(self) -> int:
        return int(self.constant.shape[0])

    @property
    def dim(self) -> int:
        return int(self.linear.shape[1])

    def take(self, rows: np.ndarray) -> QuadraticForms:
        return QuadraticForms(self.constant[rows], self.linear[rows], self.diagonal[rows], self.factor[rows],
                              self.factor_scale)

    def scores(self, q: np.ndarray) -> np.ndarray:
        """The exact scores of one query, float64 accumulation."""
        return self.scores_many(np.asarray(q)[None])[0]

    def scores_many(self, queries: np.ndarray) -> np.ndarray:
        """(Q, M) exact scores of unit queries (Q, d), a block of models at a time."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
        out = np.empty((queries.shape[0], len(self)))
        for start in range(0, len(self), BLOCK):
            stop = min(start + BLOCK, len(self))
            out[:, start:stop] = _form_scores(
                self.constant[start:stop], self.linear[start:stop], self.diagonal[start:stop],
                self.factor[start:stop], queries, self.factor_scale,
            )
        return out


def _form_scores(constant: np.ndarray, linear: np.ndarray, diagonal: np.ndarray, factor: np.ndarray,
                 queries: np.ndarray, scale: float = 1.0) -> np.ndarray:
    dtype = np.float32 if factor.dtype in (np.float16, np.float32) else np.float64
    q = queries.astype(dtype)
    n, d, r = factor.shape
    # (n r, d) @ (d, Q): one matrix product for every column of every model
    projected = (np.ascontiguousarray(np.swapaxes(factor, 1, 2), dtype=dtype).reshape(n * r, d) @ q.T)
    quad = scale**2 * (projected.astype(np.float64) ** 2).reshape(n, r, -1).sum(axis=1).T  # (Q, n)
    return (np.asarray(constant, dtype=np.float64)[None, :]
            + (queries @ np.asarray(linear, dtype=np.float64).T)
            + ((queries * queries) @ np.asarray(diagonal, dtype=np.float64).T)
            + quad)


def mgf_forms(means: np.ndarray, diag: np.ndarray, factor: np.ndarray, tau: float) -> QuadraticForms:
    """MGF as a quadratic form: tau q.mu + tau^2/2 (D . q^2 + ||W^T q||^2). Keeps the factor's dtype."""
    factor = np.asarray(factor)
    stored = factor.dtype == np.float16  # kept as it is, scaled when read
    means = np.asarray(means, dtype=np.float64)
    return QuadraticForms(
        constant=np.zeros(means.shape[0]),
        linear=tau * means,
        diagonal=0.5 * tau**2 * np.asarray(diag, dtype=np.float64),
        factor=factor if stored else factor * (tau / np.sqrt(2.0)),
        factor_scale=tau / np.sqrt(2.0) if stored else 1.0,
    )


def gaussian_forms(means: np.ndarray, diag: np.ndarray, factor: np.ndarray, woodbury: np.ndarray,
                   logdet: np.ndarray, eps: float, factor_dtype: type = np.float64) -> QuadraticForms:
    """The Gaussian log-density log N(q; mu, D + eps I + W W^T) as a quadratic form in q (float64;
    the form's factor in ``factor_dtype``: float32 halves the memory of a large collection)."""
    means = np.asarray(means, dtype=np.float64)
    m, d = means.shape
    constant = np.empty(m)
    linear = np.empty((m, d))
    factor_out = np.empty(np.shape(factor), dtype=factor_dtype)
    d_eps = np.asarray(diag, dtype=np.float64) + eps
    for start in range(0, m, BLOCK):
        rows = slice(start, min(start + BLOCK, m))
        g = np.matmul(np.asarray(factor[rows], dtype=np.float64) / d_eps[rows, :, None],
                      np.asarray(woodbury[rows], dtype=np.float64))
        mu = means[rows]
        g_mu = np.einsum("bds,bd->bs", g, mu)
        constant[rows] = -0.5 * ((mu * mu / d_eps[rows]).sum(axis=1) - (g_mu * g_mu).sum(axis=1)
                                 + np.asarray(logdet[rows], dtype=np.float64) + d * LOG_2PI)
        linear[rows] = mu / d_eps[rows] - np.einsum("bds,bs->bd", g, g_mu)
        factor_out[rows] = g / np.sqrt(2.0)
    return QuadraticForms(constant, linear, -0.5 / d_eps, factor_out)


def fit_basis(factor: np.ndarray, k: int, sample: np.ndarray | None = None) -> np.ndarray:
    """(d, k) orthonormal: the top-k eigenvectors of sum_m V_m V_m^T, the basis that keeps the most
    of the collection's low-rank energy. ``sample``: rows to fit on (None: all)."""
    rows = np.arange(factor.shape[0]) if sample is None else np.asarray(sample)
    d, r = factor.shape[1], factor.shape[2]
    if not 0 < k <= d:
        raise ValueError(f"k must be between 1 and {d}, got {k}")
    scatter = np.zeros((d, d))
    for start in range(0, rows.size, BLOCK):
        v = np.asarray(factor[rows[start:start + BLOCK]], dtype=np.float64)
        flat = np.swapaxes(v, 1, 2).reshape(-1, d)  # every column as a row
        scatter += flat.T @ flat
    _, vectors = np.linalg.eigh(scatter)  # ascending
    return np.ascontiguousarray(vectors[:, ::-1][:, :k])


def kept_energy(factor: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(M,) ||B^T V_m||_F^2 / ||V_m||_F^2: the share of each model's low-rank energy the basis keeps."""
    out = np.empty(factor.shape[0])
    for start in range(0, factor.shape[0], BLOCK):
        v = np.asarray(factor[start:start + BLOCK], dtype=np.float64)
        total = (v * v).sum(axis=(1, 2))
        a = np.matmul(basis.T, v)
        out[start:start + v.shape[0]] = np.divide((a * a).sum(axis=(1, 2)), total, out=np.ones_like(total),
                                                  where=total > 0)
    return out


def svec_size(k: int) -> int:
    return k * (k + 1) // 2


def svec(matrices: np.ndarray) -> np.ndarray:
    """(..., k, k) symmetric -> (..., k(k+1)/2): upper triangle, off-diagonals times sqrt 2."""
    k = matrices.shape[-1]
    rows, cols = np.triu_indices(k)
    weights = np.where(rows == cols, 1.0, np.sqrt(2.0))
    flat = matrices.reshape(*matrices.shape[:-2], k * k)
    return np.take(flat, rows * k + cols, axis=-1) * weights


@dataclass(frozen=True)
class Compression:
    """Principal directions of the weighted second-order block w * g, g = [e, svec(A A^T)].

    The weights w scale g's coordinates before the directions are found and divide the query's
    h, so that g . h = (w g) . (h / w) is unchanged; they say which coordinates' errors cost more
    score (a query's q * q is much shorter than its svec(p p^T)).
    """

    center: np.ndarray  # (d + K,) the mean of w * g
    directions: np.ndarray  # (d + K, c) orthonormal P
    weights: np.ndarray  # (d + K,) w

    @property
    def columns(self) -> int:
        return int(self.directions.shape[1])


@dataclass(frozen=True)
class QuadraticLift:
    """How models and queries are lifted: the shared basis and, optionally, the compression."""

    basis: np.ndarray  # (d, k) orthonormal B
    compression: Compression | None = None

    @property
    def dim(self) -> int:
        return int(self.basis.shape[0])

    @property
    def k(self) -> int:
        return int(self.basis.shape[1])

    @property
    def width(self) -> int:
        """Dimensions of a lifted vector (slack not included)."""
        tail = self.compression.columns if self.compression else self.dim + svec_size(self.k)
        return 1 + self.dim + tail


@dataclass(frozen=True)
class LiftedModels:
    vectors: np.ndarray  # (M, width): [c, l, e, svec(A A^T)] or, compressed, [c, l, z]
    slack: np.ndarray  # (M, 3): [||eps||, 2 ||A||_2 ||R||_2, ||R||_2^2]

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def nbytes_per_model(self) -> int:
        return int(self.vectors.shape[1] * self.vectors.itemsize + self.slack.shape[1] * self.slack.itemsize)


@dataclass(frozen=True)
class LiftedQuery:
    vector: np.ndarray  # (width,)
    offset: float  # g_bar . h (compressed), 0 otherwise: the same for every model
    slack_weights: np.ndarray  # (3,): [||h_perp||, ||p|| ||q_perp||, ||q_perp||^2]


def _second_order_blocks(lift: QuadraticLift, forms: QuadraticForms, rows: slice
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a block of models: g = [e, svec(A A^T)] (float64), ||A||_2 and ||R||_2."""
    v = np.asarray(forms.factor[rows], dtype=np.float64) * forms.factor_scale
    a = np.matmul(lift.basis.T, v)  # (b, k, r)
    a_gram = np.matmul(np.swapaxes(a, 1, 2), a)  # (b, r, r) A^T A
    # R^T R = V^T (I - B B^T) V = V^T V - A^T A (B orthonormal): no (b, d, r) residual in memory.
    # In float64 the cancellation costs ~1e-16 ||V||^2, far below any residual that matters.
    r_gram = np.matmul(np.swapaxes(v, 1, 2), v) - a_gram
    g = np.concatenate([np.asarray(forms.diagonal[rows], dtype=np.float64),
                        svec(np.matmul(a, np.swapaxes(a, 1, 2)))], axis=1)
    a_norm = np.sqrt(np.clip(np.linalg.eigvalsh(a_gram)[:, -1], 0.0, None))
    # The subtraction's rounding (a few ulps of ||V||_F^2) is added back, so the bound stays a bound.
    rounding = 1e-14 * np.trace(a_gram + r_gram, axis1=1, axis2=2)
    r_norm = np.sqrt(np.clip(np.linalg.eigvalsh(r_gram)[:, -1], 0.0, None) + rounding)
    return g, a_norm, r_norm


def fit_compression(lift: QuadraticLift, forms: QuadraticForms, columns: int, sample: np.ndarray | None = None,
                    diagonal_weight: float = 1.0) -> QuadraticLift:
    """``lift`` with the second-order block compressed to ``columns`` principal directions of the
    weighted blocks w * g of ``sample`` rows of ``forms`` (None: all). ``diagonal_weight`` is w on
    the diagonal block (1 on the svec block)."""
    if lift.compression is not None:
        raise ValueError("the lift is compressed already")
    rows = np.arange(len(forms)) if sample is None else np.asarray(sample)
    weights = np.concatenate([np.full(lift.dim, float(diagonal_weight)), np.ones(svec_size(lift.k))])
    if not 0 < columns <= weights.size:
        raise ValueError(f"columns must be between 1 and {weights.size}, got {columns}")
    g = np.concatenate([_second_order_blocks(lift, forms.take(rows[s:s + BLOCK]), slice(None))[0]
                        for s in range(0, rows.size, BLOCK)]) * weights
    center = g.mean(axis=0)
    centred = g - center
    _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
    directions = np.ascontiguousarray(vectors[:, ::-1][:, :columns])
    return QuadraticLift(lift.basis, Compression(center, directions, weights))


def lift_models(lift: QuadraticLift, forms: QuadraticForms, dtype: type = np.float64) -> LiftedModels:
    """Every model's lifted vector and slack (see the module's docstring)."""
    m, d = len(forms), forms.dim
    vectors = np.empty((m, lift.width), dtype=dtype)
    slack = np.zeros((m, 3))
    for start in range(0, m, BLOCK):
        rows = slice(start, min(start + BLOCK, m))
        g, a_norm, r_norm = _second_order_blocks(lift, forms, rows)
        vectors[rows, 0] = forms.constant[rows]
        vectors[rows, 1:1 + d] = forms.linear[rows]
        if lift.compression is None:
            vectors[rows, 1 + d:] = g
        else:
            c = lift.compression
            shifted = g * c.weights - c.center
            z = shifted @ c.directions
            vectors[rows, 1 + d:] = z
            slack[rows, 0] = np.linalg.norm(shifted - z @ c.directions.T, axis=1)
        slack[rows, 1] = 2.0 * a_norm * r_norm
        slack[rows, 2] = r_norm**2
    return LiftedModels(vectors, slack)


def lift_query(lift: QuadraticLift, q: np.ndarray) -> LiftedQuery:
    """The query side: [1, q, q * q, svec(p p^T)] (or [1, q, P^T (h / w)]), offset and slack weights.
    ``q`` is used as given (normalise it first: core.scores.normalize_query)."""
    q = np.asarray(q, dtype=np.float64)
    p = lift.basis.T @ q
    q_perp = float(np.linalg.norm(q - lift.basis @ p))
    h = np.concatenate([q * q, svec(np.outer(p, p))])
    offset, h_perp = 0.0, 0.0
    if lift.compression is not None:
        c = lift.compression
        h = h / c.weights
        offset = float(c.center @ h)
        projected = c.directions.T @ h
        h_perp = float(np.sqrt(max(float(h @ h) - float(projected @ projected), 0.0)))
        h = projected
    vector = np.concatenate([[1.0], q, h])
    return LiftedQuery(vector, offset, np.array([h_perp, float(np.linalg.norm(p)) * q_perp, q_perp**2]))


def estimates(models: LiftedModels, query: LiftedQuery) -> np.ndarray:
    """(M,) the inner products: the scores without the residual."""
    return models.vectors @ query.vector.astype(models.vectors.dtype) + query.offset


def bounds(models: LiftedModels, query: LiftedQuery, estimate: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of every model's exact score."""
    est = estimates(models, query) if estimate is None else estimate
    spread = models.slack[:, :2] @ query.slack_weights[:2]
    return est - spread, est + spread + models.slack[:, 2] * query.slack_weights[2]


@dataclass(frozen=True)
class CertifiedResult:
    rows: np.ndarray  # (k,) the best k rows found, best first
    scores: np.ndarray  # (k,) their exact scores
    certified: bool  # no unexamined model can score above the k-th
    examined: int  # models scored exactly


def certified_top_k(upper: np.ndarray, exact: Callable[[np.ndarray], np.ndarray], k: int, budget: int,
                    block: int = 64, margin: float = 0.0) -> CertifiedResult:
    """Score models exactly in descending ``upper`` order, ``block`` at a time, until the k-th best
    exact score is above every unexamined bound (certified) or ``budget`` models were scored.

    ``exact(rows)`` returns the exact scores of those rows. ``margin`` is added to every bound
    (the rounding of scores computed in float32 against bounds in float64).
    """
    if k <= 0 or budget <= 0:
        raise ValueError("k and budget must be positive")
    total = upper.shape[0]
    budget = min(budget, total)
    order = np.argsort(-upper, kind="stable")
    found_rows = np.empty(0, dtype=np.int64)
    found_scores = np.empty(0)
    examined = 0
    while examined < budget:
        take = order[examined:min(examined + block, budget)]
        found_rows = np.concatenate([found_rows, take])
        found_scores = np.concatenate([found_scores, np.asarray(exact(take), dtype=np.float64)])
        examined += take.size
        keep = np.argsort(-found_scores, kind="stable")[:k]
        found_rows, found_scores = found_rows[keep], found_scores[keep]
        if examined == total:
            break
        if found_scores.size == k and found_scores[-1] > upper[order[examined]] + margin:
            break
        block *= 2  # geometric: a query whose bounds are loose costs few rounds
    certified = examined == total or (found_scores.size == min(k, total)
                                      and found_scores[-1] > upper[order[examined]] + margin)
    return CertifiedResult(found_rows, found_scores, bool(certified), examined)
