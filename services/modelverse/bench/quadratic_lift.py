"""Second-order first stages measured against the exhaustive exact scores, at 100k models on one
core (tools/bench_quadratic_lift.py is the command line).

For one store (or its structured variant, ``structured_factors``), one method and a set of
queries, every candidate first stage ranks all models; against the exact scores of all models
(``core.quadratic_lift.QuadraticForms``, checked against ``core.reference.ExactSearch``) it
reports recall of the exact top 10 within the top N, top-10 agreement after an exact rerank of
the top N, how often the certificate of ``core.quadratic_lift.certified_top_k`` holds within N,
bytes per model and milliseconds per query on one core (a FAISS 8-bit exhaustive scan, and the
exact rerank of N candidates from the stored float16 factors).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelverse.core import quadratic_lift as ql
from modelverse.core.compression import woodbury_factors_many
from modelverse.core.scores import normalized_means
from modelverse.core.types import Method
from modelverse.core import lift as tangent

GRID = (100, 200, 400, 800, 1600, 3200)
TOP = 10
BLOCK = 8192


@dataclass(frozen=True)
class StoreArrays:
    """A store's live statistics, resident: what a shard holds of them for a second-order query."""

    ids: np.ndarray
    means: np.ndarray  # (M, d) float32
    diag: np.ndarray  # (M, d) float16
    factor: np.ndarray  # (M, d, r) float16
    woodbury: np.ndarray  # (M, r, r) float32
    logdet: np.ndarray  # (M,) float64
    eps: float

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def head(self, n: int) -> StoreArrays:
        """The first ``n`` models (a quicker run)."""
        return StoreArrays(self.ids[:n], self.means[:n], self.diag[:n], self.factor[:n], self.woodbury[:n],
                           self.logdet[:n], self.eps)


def load_arrays(store_path: Path) -> tuple[StoreArrays, float]:
    """A directory store's live rows (and its tau)."""
    from modelverse.store.directory import DirectoryStore

    store = DirectoryStore.open(store_path)
    collection = store.collection()
    live = np.flatnonzero(collection.live_mask())
    c = collection.compressed
    arrays = StoreArrays(
        ids=np.asarray(collection.ids)[live],
        means=np.asarray(collection.means, dtype=np.float32)[live],
        diag=np.asarray(c.diag)[live],
        factor=np.asarray(c.factor)[live],
        woodbury=np.asarray(c.woodbury)[live],
        logdet=np.asarray(c.logdet, dtype=np.float64)[live],
        eps=float(c.eps),
    )
    return arrays, float(store.config.tau)


# The shared spectrum of covariance directions in ``structured_factors``: lambda_j ~ j^-1 e^-j/50 over
# d directions. Fitted (tools, 2,000 models, d = 512, the zoo's eigenvalue curve per model) so that a
# basis of 16 / 32 / 64 / 128 directions fitted on other models keeps a median 0.65 / 0.82 / 0.94 /
# 0.99 of a model's low-rank energy; on the bundled zoo (51 models, d = 256, issue 13): 0.70 / 0.82 /
# 0.94 / 0.99. The random directions of tools/scale_stats.py keep 0.29 at 32.
STRUCTURE_POWER = 1.0
STRUCTURE_CUTOFF = 50.0


def structured_factors(factor: np.ndarray, seed: int, power: float = STRUCTURE_POWER,
                       cutoff: float = STRUCTURE_CUTOFF) -> np.ndarray:
    """(M, d, r) float16: every model's factor with the same column norms (its spectrum), its
    directions redrawn from one spectrum of directions the collection shares: column j of model
    m before orthonormalisation is U (sigma * g), g ~ N(0, I), sigma_j^2 = j^-power e^(-j/cutoff)."""
    m, d, r = factor.shape
    rng = np.random.default_rng(seed)
    shared = np.linalg.qr(rng.standard_normal((d, d)))[0]
    j = np.arange(1, d + 1)
    sigma = np.sqrt(j ** (-power) * np.exp(-j / cutoff))
    out = np.empty(factor.shape, dtype=np.float16)
    for start in range(0, m, BLOCK):
        stop = min(start + BLOCK, m)
        norms = np.linalg.norm(np.asarray(factor[start:stop], dtype=np.float64), axis=1)  # (b, r)
        raw = np.matmul(shared, sigma[None, :, None] * rng.standard_normal((stop - start, d, r)))
        directions = np.linalg.qr(raw)[0]
        out[start:stop] = (directions * norms[:, None, :]).astype(np.float16)
    return out


def with_factor(arrays: StoreArrays, factor: np.ndarray) -> StoreArrays:
    """The same models with another factor (and its Woodbury factors, from the float16 values)."""
    woodbury, logdet = woodbury_factors_many(arrays.diag, factor, arrays.eps)
    return StoreArrays(arrays.ids, arrays.means, arrays.diag, factor, woodbury, logdet, arrays.eps)


def forms_of(arrays: StoreArrays, method: Method, tau: float) -> ql.QuadraticForms:
    if method is Method.MGF:
        return ql.mgf_forms(arrays.means, arrays.diag, arrays.factor, tau)
    if method is Method.GAUSSIAN:
        return ql.gaussian_forms(arrays.means, arrays.diag, arrays.factor, arrays.woodbury, arrays.logdet,
                                 arrays.eps, factor_dtype=np.float32)
    raise ValueError(f"no quadratic form for {method.value}")


@dataclass
class FirstStage:
    """One candidate's ranking of every model for every query, and its index for timing."""

    name: str
    estimate: np.ndarray  # (Q, M) the score it ranks by
    upper: np.ndarray | None  # (Q, M) certified upper bounds, where it has them
    bytes_per_model: int
    search: Callable[[int, int], np.ndarray] | None  # (query index, n) -> rows, timed
    fit_seconds: float = 0.0
    notes: str = ""


def sq8_index(width: int):
    import faiss

    return faiss.IndexScalarQuantizer(padded(width), faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)


def padded(width: int) -> int:
    """FAISS's SIMD scan of 8-bit codes wants a multiple of 16 (core.lift.padded_dim)."""
    return -(-width // 16) * 16


def pad(x: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((x.shape[0], width), dtype=np.float32)
    out[:, : x.shape[1]] = x
    return out


def quadratic_stage(forms: ql.QuadraticForms, queries: np.ndarray, k: int, columns: int | None, seed: int,
                    diagonal_weight: float = 1.0, sample: int = 8192, index: bool = True) -> FirstStage:
    """The shared-basis lift (``core.quadratic_lift``): basis and compression fitted on ``sample``
    models; estimates and bounds in float64; the index holds [vector, slack] as 8-bit codes, and
    ranks by the estimate (slack weights 0 in the query)."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(forms), min(sample, len(forms)), replace=False))
    lift = ql.QuadraticLift(ql.fit_basis(forms.factor, k, rows))
    if columns is not None:
        lift = ql.fit_compression(lift, forms, columns, rows, diagonal_weight)
    lifted = [ql.lift_query(lift, q) for q in queries.astype(np.float64)]
    qv = np.stack([x.vector for x in lifted], axis=1)  # (width, Q)
    offsets = np.array([x.offset for x in lifted])
    weights = np.stack([x.slack_weights for x in lifted], axis=1)  # (3, Q)
    m = len(forms)
    estimate = np.empty((len(lifted), m))
    upper = np.empty((len(lifted), m))
    faiss_index = sq8_index(lift.width + 3) if index else None
    if faiss_index is not None:
        train = ql.lift_models(lift, forms.take(rows))
        faiss_index.train(pad(np.concatenate([train.vectors, train.slack], axis=1), faiss_index.d))
    for start in range(0, m, BLOCK):
        block = slice(start, min(start + BLOCK, m))
        models = ql.lift_models(lift, forms.take(np.arange(block.start, block.stop)))
        est = (models.vectors @ qv).T + offsets[:, None]
        estimate[:, block] = est
        upper[:, block] = est + (models.slack @ weights).T
        if faiss_index is not None:
            faiss_index.add(pad(np.concatenate([models.vectors, models.slack], axis=1), faiss_index.d))
    fit_seconds = time.perf_counter() - started
    search = None
    if faiss_index is not None:
        query_codes = pad(np.concatenate([qv.T, np.zeros((len(lifted), 3))], axis=1), faiss_index.d)

        def search(i: int, n: int) -> np.ndarray:
            return faiss_index.search(query_codes[i:i + 1], n)[1][0]

    name = f"quad k={k}" + (f" pca={columns}" if columns else " (full)")
    return FirstStage(name, estimate, upper, padded(lift.width + 3), search, fit_seconds,
                      notes=f"width {lift.width} + 3 slack, 8-bit codes")


def tangent_stage(arrays: StoreArrays, queries: np.ndarray, tau: float, columns: int = tangent.DEFAULT_COLUMNS,
                  alpha: float = tangent.DEFAULT_ALPHA, index: bool = True) -> FirstStage:
    """Today's MGF first stage (core.lift): the max over 2^t sign-pattern vectors, computed
    in closed form for the ranking; the index is the shards' (4 vectors per model, 8-bit codes)."""
    started = time.perf_counter()
    m, d = arrays.means.shape
    q64 = queries.astype(np.float64)
    estimate = np.empty((q64.shape[0], m))
    spec = tangent.LiftSpec(Method.MGF.value, columns=columns, alpha=alpha, tau=tau)
    faiss_index = sq8_index(tangent.padded_dim(d)) if index else None
    if faiss_index is not None:
        faiss_index.train(tangent.lift_models(spec, arrays.means, arrays.diag, arrays.factor, logdet=None,
                                              eps=arrays.eps, rows=np.arange(min(m, 16384))))
    for start in range(0, m, BLOCK):
        rows = np.arange(start, min(start + BLOCK, m))
        w = arrays.factor[rows].astype(np.float32)
        energy = (w.astype(np.float64) ** 2).sum(axis=1)
        order = np.argsort(-energy, axis=1, kind="stable")[:, :columns]
        top_w = np.take_along_axis(w, order[:, None, :], axis=2)
        top_e = np.take_along_axis(energy, order, axis=1)
        s = alpha * np.sqrt(top_e)
        rest = (energy.sum(axis=1) - top_e.sum(axis=1)) / d
        x = np.abs(np.einsum("mdt,qd->qmt", top_w, queries.astype(np.float32))).astype(np.float64)
        second = arrays.diag[rows].astype(np.float64).mean(axis=1) + rest + (2 * s * x - s**2).sum(axis=2)
        estimate[:, rows] = tau * (q64 @ arrays.means[rows].astype(np.float64).T) + 0.5 * tau**2 * second
        if faiss_index is not None:
            faiss_index.add(tangent.lift_models(spec, arrays.means, arrays.diag, arrays.factor, logdet=None,
                                                eps=arrays.eps, rows=rows))
    fit_seconds = time.perf_counter() - started
    search = None
    if faiss_index is not None:
        from modelverse.core.types import QueryPart

        query_codes = np.stack([tangent.lift_query([QueryPart(q)], d) for q in queries])
        copies = spec.copies

        def search(i: int, n: int) -> np.ndarray:
            found = faiss_index.search(query_codes[i:i + 1], n * copies)[1][0] // copies
            _, first = np.unique(found, return_index=True)
            return found[np.sort(first)][:n]

    return FirstStage(f"tangent t={columns} alpha={alpha}", estimate, None, copies * tangent.padded_dim(d), search,
                      fit_seconds, notes="today's MGF first stage (core.lift), 8-bit codes")


def gaussian_baselines(arrays: StoreArrays, queries: np.ndarray) -> list[FirstStage]:
    """GAUSSIAN today: the cosine of the means (the shards' IVF, 4x the lists) and the isotropic lift."""
    q64 = queries.astype(np.float64)
    means = arrays.means.astype(np.float64)
    cosine = q64 @ normalized_means(means).T
    s2 = arrays.diag.astype(np.float64).mean(axis=1) + arrays.eps
    iso = (q64 @ means.T) / s2 - (1 + (means**2).sum(axis=1)) / (2 * s2) - 0.5 * arrays.logdet
    d = means.shape[1]
    return [FirstStage("cosine", cosine, None, d, None, notes="first moments (today's GAUSSIAN recall, IVF)"),
            FirstStage("isotropic lift", iso, None, tangent.padded_dim(d), None,
                       notes="core.lift GAUSSIAN vector (--lifted gaussian)")]


def certificate_size(upper: np.ndarray, exact: np.ndarray, k: int = TOP, margin: float = 0.0) -> int:
    """The fewest models that, examined in descending upper-bound order, certify the exact top k:
    the k-th best exact score among the first n beats the (n+1)-th bound. Monotone in n (the
    k-th best only rises, the next bound only falls), so a binary search finds it."""
    order = np.argsort(-upper, kind="stable")
    bounds = upper[order]
    scores = exact[order]
    m = upper.shape[0]

    def holds(n: int) -> bool:
        if n >= m:
            return True
        kth = np.partition(scores[:n], n - k)[n - k]
        return bool(kth > bounds[n] + margin)

    low, high = k, m
    while low < high:
        mid = (low + high) // 2
        if holds(mid):
            high = mid
        else:
            low = mid + 1
    return low


def evaluate(stage: FirstStage, exact: np.ndarray, grid=GRID) -> dict:
    """Recall, agreement after the exact rerank, and the certificate, over all queries."""
    recall = {n: [] for n in grid}
    agree = {n: [] for n in grid}
    certificate = []
    for i in range(exact.shape[0]):
        truth = np.argsort(-exact[i], kind="stable")[:TOP]
        ranked = np.argpartition(-stage.estimate[i], max(grid))[: max(grid)]
        ranked = ranked[np.argsort(-stage.estimate[i][ranked], kind="stable")]
        for n in grid:
            top = ranked[:n]
            recall[n].append(len(set(truth) & set(top)) / TOP)
            found = top[np.argsort(-exact[i][top], kind="stable")[:TOP]]
            agree[n].append(float(np.mean(found == truth)))
        if stage.upper is not None:
            margin = 1e-6 * float(np.abs(exact[i]).max())
            certificate.append(certificate_size(stage.upper[i], exact[i], TOP, margin))
    out = {
        "recall": {n: round(float(np.mean(v)), 4) for n, v in recall.items()},
        "agreement": {n: round(float(np.mean(v)), 4) for n, v in agree.items()},
    }
    if certificate:
        sizes = np.array(certificate)
        out["certified_within"] = {n: round(float(np.mean(sizes <= n)), 3) for n in grid}
        out["certificate_size"] = {"median": int(np.median(sizes)), "p90": int(np.quantile(sizes, 0.9)),
                                   "max": int(sizes.max())}
    return out


def faiss_agreement(stage: FirstStage, exact: np.ndarray, grid=GRID) -> dict[int, float]:
    """Top-10 agreement when the candidates come from the 8-bit index (quantisation included)."""
    out = {}
    for n in grid:
        values = []
        for i in range(exact.shape[0]):
            truth = np.argsort(-exact[i], kind="stable")[:TOP]
            top = stage.search(i, n)
            top = top[top >= 0]
            found = top[np.argsort(-exact[i][top], kind="stable")[:TOP]]
            values.append(float(np.mean(np.pad(found, (0, TOP - found.size), constant_values=-1) == truth)))
        out[n] = round(float(np.mean(values)), 4)
    return out


def time_search(stage: FirstStage, queries: int, n: int, repeats: int = 3) -> float:
    """Median milliseconds of one query's scan (FAISS on one thread), best of ``repeats`` per query."""
    import faiss

    faiss.omp_set_num_threads(1)
    times = []
    for i in range(queries):
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            stage.search(i, n)
            best = min(best, time.perf_counter() - started)
        times.append(best)
    return round(1000 * float(np.median(times)), 2)


def time_rerank(arrays: StoreArrays, method: Method, tau: float, queries: np.ndarray, n: int,
                repeats: int = 3) -> float:
    """Median milliseconds to rerank ``n`` random candidates the way a shard does
    (serving.rerank.rerank_scores on the candidates' rows of the resident float16 statistics)."""
    from modelverse.core.collection import Collection
    from modelverse.core.params import ScoringParams
    from modelverse.core.second_order import CompressedCovariances
    from modelverse.core.types import QueryPart
    from modelverse.serving.rerank import candidates_collection, rerank_scores

    second = CompressedCovariances(arrays.diag, arrays.factor, arrays.woodbury, arrays.logdet,
                                   np.zeros(len(arrays)), arrays.eps)
    collection = Collection(ids=arrays.ids, means=arrays.means, compressed=second)
    params = ScoringParams(tau=tau, eps=arrays.eps)
    rng = np.random.default_rng(0)
    times = []
    for q in queries:
        rows = np.sort(rng.choice(len(arrays), n, replace=False))
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            rerank_scores(candidates_collection(collection, rows, method), method, params, parts=[QueryPart(q)])
            best = min(best, time.perf_counter() - started)
        times.append(best)
    return round(1000 * float(np.median(times)), 2)
