"""The cross-model structure of a collection's covariance factors, as pure functions of arrays.

Each model stores Sigma ~ D + W W^T with W (d x r) of orthogonal columns; ||W||_F^2 is the model's
low-rank energy. Two questions about a collection decide whether a second-order score can become an
inner product in a shared basis (issue 13), and whether a synthetic collection resembles a real one:

- **Shared basis.** Fit one basis B_k of k orthonormal directions on all models: the top-k
  eigenvectors of G = sum_m W_m W_m^T / ||W_m||_F^2 (each model counts once, whatever its scale).
  The fraction of model m's energy it keeps is ||B_k^T W_m||_F^2 / ||W_m||_F^2; its median over
  the models is the collection's figure. Fitted without model m (G minus m's own term), the same
  fraction says how well a basis generalises to a model it has not seen (leave-one-out). Random
  r-dimensional subspaces keep k/d at large N (more in a small collection: the basis over-fits).
- **Alignment.** The fraction of a model's energy along one unit direction u, ||W_m^T u||^2 /
  ||W_m||_F^2 (1/d for a direction independent of W), and the fraction of u inside the span of W,
  ||P_W u||^2 (r/d for a random span), for u the model's own mean direction, the collection's
  common direction (the mean of the normalised means) and its concept direction (the mean of the
  normalised means of the other models sharing a tag: a cluster's direction without the model itself).

NumPy and SciPy's eigh; rows are processed in batches so a million float16 factors never sit in float64 at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

SHARED_BASIS_SIZES = (16, 32, 64, 128)
BATCH = 4096


def energies(factors: np.ndarray) -> np.ndarray:
    """||W_m||_F^2 per model, float64: (n,) from (n, d, r)."""
    out = np.empty(len(factors))
    for start in range(0, len(factors), BATCH):
        w = np.asarray(factors[start:start + BATCH], dtype=np.float64)
        out[start:start + BATCH] = np.einsum("ndr,ndr->n", w, w)
    return out


def direction_gram(factors: np.ndarray) -> np.ndarray:
    """G = sum_m W_m W_m^T / ||W_m||_F^2, (d, d) float64; models with no energy add nothing."""
    d = factors.shape[1]
    gram = np.zeros((d, d))
    for start in range(0, len(factors), BATCH):
        w = np.asarray(factors[start:start + BATCH], dtype=np.float64)
        energy = np.einsum("ndr,ndr->n", w, w)
        scale = np.divide(1.0, np.sqrt(energy), out=np.zeros_like(energy), where=energy > 0)
        w = (w * scale[:, None, None]).transpose(1, 0, 2).reshape(d, -1)
        gram += w @ w.T
    return gram


def top_directions(gram: np.ndarray, k: int) -> np.ndarray:
    """The top-k eigenvectors of a symmetric matrix, (d, k), largest eigenvalue first."""
    d = gram.shape[0]
    if not 0 < k <= d:
        raise ValueError(f"k must be between 1 and {d}, got {k}")
    _, vectors = scipy.linalg.eigh(gram, subset_by_index=[d - k, d - 1])  # ascending
    return vectors[:, ::-1]


def kept_fractions(factors: np.ndarray, ordered: np.ndarray, sizes: Sequence[int]) -> dict[int, np.ndarray]:
    """kept_fraction for the first k columns of ``ordered`` (d, K), for every k in sizes, in one pass."""
    out = {k: np.empty(len(factors)) for k in sizes}
    for start in range(0, len(factors), BATCH):
        w = np.asarray(factors[start:start + BATCH], dtype=np.float64)
        n, d, r = w.shape
        energy = np.einsum("ndr,ndr->n", w, w)
        along = ((w.transpose(0, 2, 1).reshape(n * r, d) @ ordered) ** 2).reshape(n, r, -1).sum(axis=1)
        cumulative = np.cumsum(along, axis=1)
        for k in sizes:
            out[k][start:start + BATCH] = np.divide(cumulative[:, k - 1], energy, out=np.zeros(n), where=energy > 0)
    return out


def kept_fraction(factors: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """||B^T W_m||_F^2 / ||W_m||_F^2 per model for an orthonormal basis B (d, k); 0 where W_m = 0."""
    return kept_fractions(factors, basis, [basis.shape[1]])[basis.shape[1]]


def kept_fraction_curve(factors: np.ndarray, sizes: Sequence[int] = SHARED_BASIS_SIZES,
                        gram: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """For each k, every model's fraction kept by the shared basis of k directions fitted on all models."""
    gram = direction_gram(factors) if gram is None else gram
    return kept_fractions(factors, top_directions(gram, max(sizes)), sizes)


def leave_one_out_curve(factors: np.ndarray, rows: np.ndarray, sizes: Sequence[int] = SHARED_BASIS_SIZES,
                        gram: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """For each k and each model in ``rows``, the fraction kept by the basis fitted without that model."""
    gram = direction_gram(factors) if gram is None else gram
    out = {k: np.empty(len(rows)) for k in sizes}
    for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
        own = factors[row:row + 1]
        kept = kept_fractions(own, top_directions(gram - direction_gram(own), max(sizes)), sizes)
        for k in sizes:
            out[k][i] = kept[k][0]
    return out


def direction_energy(factors: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """||W_m^T u_m||^2 / ||W_m||_F^2 for one unit direction per model, (n, d) (or one (d,) for all)."""
    directions = np.asarray(directions, dtype=np.float64)
    out = np.empty(len(factors))
    for start in range(0, len(factors), BATCH):
        w = np.asarray(factors[start:start + BATCH], dtype=np.float64)
        u = directions if directions.ndim == 1 else directions[start:start + BATCH]
        along = np.einsum("ndr,nd->nr", w, np.broadcast_to(u, w.shape[:2]))
        energy = np.einsum("ndr,ndr->n", w, w)
        kept = (along**2).sum(axis=1)
        out[start:start + BATCH] = np.divide(kept, energy, out=np.zeros_like(kept), where=energy > 0)
    return out


def span_capture(factors: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """||P_W u_m||^2: the part of a unit direction inside the span of W_m (orthogonal columns)."""
    directions = np.asarray(directions, dtype=np.float64)
    out = np.empty(len(factors))
    for start in range(0, len(factors), BATCH):
        w = np.asarray(factors[start:start + BATCH], dtype=np.float64)
        norms2 = np.einsum("ndr,ndr->nr", w, w)
        u = directions if directions.ndim == 1 else directions[start:start + BATCH]
        along = np.einsum("ndr,nd->nr", w, np.broadcast_to(u, w.shape[:2]))
        out[start:start + BATCH] = np.divide(along**2, norms2, out=np.zeros_like(norms2), where=norms2 > 0).sum(axis=1)
    return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def common_direction(means: np.ndarray) -> np.ndarray:
    """The normalised mean of the normalised means: the direction every model's features share."""
    return unit_rows(unit_rows(means).mean(axis=0))


def concept_pairs(means: np.ndarray, groups: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, directions): for each member of each group of at least two, the normalised mean of the
    other members' normalised means (its concept direction without itself). A model in several
    groups appears once per group."""
    unit = unit_rows(means)
    rows, directions = [], []
    for members in groups:
        members = np.asarray(members, dtype=np.int64)
        if len(members) < 2:
            continue
        others = unit[members].sum(axis=0)[None, :] - unit[members]
        rows.append(members)
        directions.append(unit_rows(others))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, means.shape[1]))
    return np.concatenate(rows), np.concatenate(directions)


def groups_of_tags(tags: Sequence[Iterable[str]]) -> list[np.ndarray]:
    """Member rows of each tag, from the tags of each model (a model may carry several)."""
    members: dict[str, list[int]] = {}
    for row, model_tags in enumerate(tags):
        for tag in set(model_tags):
            members.setdefault(tag, []).append(row)
    return [np.asarray(m, dtype=np.int64) for m in members.values()]


def groups_of_assignment(assignment: np.ndarray) -> list[np.ndarray]:
    """Member rows of each cluster, from one cluster number per model."""
    assignment = np.asarray(assignment, dtype=np.int64)
    order = np.argsort(assignment, kind="stable")
    bounds = np.flatnonzero(np.diff(assignment[order])) + 1
    return np.split(order, bounds)


@dataclass(frozen=True)
class Alignment:
    """Mean over models of the energy fraction along a direction, and of the direction's part in span(W)."""

    energy: float  # mean ||W^T u||^2 / ||W||_F^2; 1/d when independent
    capture: float  # mean ||P_W u||^2; r/d for a random span


@dataclass(frozen=True)
class Structure:
    """The measured cross-model structure of a collection (see the module docstring)."""

    models: int
    dim: int
    rank: int
    sizes: list[int]  # k of the shared bases
    kept_median: list[float]  # median fraction kept, basis fitted on all models, per k
    kept_quartiles: list[list[float]]  # [25 %, 75 %] per k
    kept_loo_median: list[float]  # the same, basis fitted without the model (on loo_models of them)
    loo_models: int
    mean: Alignment  # the model's own mean direction
    common: Alignment  # the collection's common direction
    concept: Alignment | None  # the model's tag (cluster) direction, without the model
    random_energy: float = field(default=0.0)  # 1/d
    random_capture: float = field(default=0.0)  # r/d

    @classmethod
    def from_dict(cls, data: dict) -> Structure:
        data = dict(data)
        for name in ("mean", "common", "concept"):
            if data.get(name) is not None:
                data[name] = Alignment(**data[name])
        return cls(**data)


def measure_structure(factors: np.ndarray, means: np.ndarray, groups: Sequence[np.ndarray] = (),
                      sizes: Sequence[int] = SHARED_BASIS_SIZES, loo_models: int = 200, seed: int = 0) -> Structure:
    """The structure of n models' factors (n, d, r) and means (n, d); ``groups``: member rows of each
    tag (cluster). Leave-one-out on at most ``loo_models`` rows (drawn with ``seed``; all when fewer):
    one d x d eigendecomposition each."""
    n, d, r = factors.shape
    sizes = [k for k in sizes if k <= d]
    gram = direction_gram(factors)
    kept = kept_fraction_curve(factors, sizes, gram)
    rows = np.arange(n) if n <= loo_models else np.sort(np.random.default_rng(seed).choice(n, loo_models, replace=False))
    loo = leave_one_out_curve(factors, rows, sizes, gram)
    own = unit_rows(means)
    common = common_direction(means)
    concept_rows, concept_dirs = concept_pairs(means, groups)
    concept = None
    if len(concept_rows):
        energy = capture = 0.0
        for start in range(0, len(concept_rows), BATCH):
            sub = np.asarray(factors[np.sort(concept_rows[start:start + BATCH])])
            order = np.argsort(concept_rows[start:start + BATCH], kind="stable")
            dirs = concept_dirs[start:start + BATCH][order]
            energy += float(direction_energy(sub, dirs).sum())
            capture += float(span_capture(sub, dirs).sum())
        concept = Alignment(energy / len(concept_rows), capture / len(concept_rows))
    return Structure(
        models=int(n), dim=int(d), rank=int(r), sizes=list(sizes),
        kept_median=[float(np.median(kept[k])) for k in sizes],
        kept_quartiles=[[float(q) for q in np.quantile(kept[k], [0.25, 0.75])] for k in sizes],
        kept_loo_median=[float(np.median(loo[k])) for k in sizes],
        loo_models=int(len(rows)),
        mean=Alignment(float(direction_energy(factors, own).mean()), float(span_capture(factors, own).mean())),
        common=Alignment(float(direction_energy(factors, common).mean()), float(span_capture(factors, common).mean())),
        concept=concept,
        random_energy=1.0 / d,
        random_capture=r / d,
    )
