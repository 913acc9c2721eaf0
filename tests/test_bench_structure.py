"""The cross-model structure measures (modelverse.bench.structure) against independent float64
formulas: the shared basis from an SVD of the stacked factors and explicit projectors, leave-one-out
from a refit without the model, and constructed collections whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from modelverse.bench.structure import (
    concept_pairs,
    direction_energy,
    groups_of_assignment,
    groups_of_tags,
    kept_fraction_curve,
    leave_one_out_curve,
    measure_structure,
    span_capture,
)


def random_factors(rng: np.random.Generator, n: int, d: int, r: int, basis: np.ndarray | None = None) -> np.ndarray:
    """n factors with orthogonal columns and decaying column norms, inside ``basis`` (d x k) if given."""
    span = rng.standard_normal((n, d if basis is None else basis.shape[1], r))
    q, _ = np.linalg.qr(span)
    if basis is not None:
        q = np.einsum("dk,nkr->ndr", basis, q)
    scale = rng.uniform(0.5, 2.0, (n, 1)) * np.linspace(1.0, 0.2, r)[None, :]
    return q * scale[:, None, :]


def stacked_basis(factors: np.ndarray, k: int) -> np.ndarray:
    """Top-k left singular vectors of [W_1/||W_1||, ..., W_n/||W_n||] (independent of the Gram route)."""
    stacked = np.concatenate([w / np.linalg.norm(w) for w in factors], axis=1)
    u, _, _ = np.linalg.svd(stacked, full_matrices=False)
    return u[:, :k]


def projector_fraction(w: np.ndarray, basis: np.ndarray) -> float:
    p = basis @ basis.T
    return float(np.linalg.norm(p @ w) ** 2 / np.linalg.norm(w) ** 2)


def test_kept_fraction_equals_the_projector_of_the_stacked_svd() -> None:
    rng = np.random.default_rng(0)
    factors = random_factors(rng, 30, 24, 3)
    curve = kept_fraction_curve(factors, sizes=(4, 8, 16))
    for k in (4, 8, 16):
        basis = stacked_basis(factors, k)
        expected = [projector_fraction(w, basis) for w in factors]
        np.testing.assert_allclose(curve[k], expected, rtol=1e-10, atol=1e-12)


def test_leave_one_out_equals_a_refit_without_the_model() -> None:
    rng = np.random.default_rng(1)
    factors = random_factors(rng, 20, 16, 2)
    rows = np.array([0, 7, 19])
    loo = leave_one_out_curve(factors, rows, sizes=(3, 6))
    for i, row in enumerate(rows):
        others = np.delete(factors, row, axis=0)
        for k in (3, 6):
            assert loo[k][i] == pytest.approx(projector_fraction(factors[row], stacked_basis(others, k)), rel=1e-9)


def test_a_shared_subspace_is_kept_whole_and_random_spans_keep_k_over_d() -> None:
    rng = np.random.default_rng(2)
    d, r = 64, 4
    basis, _ = np.linalg.qr(rng.standard_normal((d, 8)))
    shared = random_factors(rng, 50, d, r, basis)
    kept = kept_fraction_curve(shared, sizes=(8, 16))
    np.testing.assert_allclose(kept[8], 1.0, atol=1e-9)
    assert leave_one_out_curve(shared, np.arange(5), sizes=(8,))[8] == pytest.approx(1.0, abs=1e-9)
    # Independent random spans: the best k directions keep about k/d of each model, a little more
    # in sample (the fitted basis leans towards the draws it was fitted on: +14 % at 16 of 64
    # directions and 2,000 models, less with more models per dimension).
    spread = random_factors(rng, 4000, 32, r)
    for k, fraction in kept_fraction_curve(spread, sizes=(4, 8)).items():
        assert k / 32 < np.median(fraction) < 1.1 * k / 32


def test_alignment_of_a_direction_with_w() -> None:
    rng = np.random.default_rng(3)
    w = random_factors(rng, 1, 10, 3)
    columns = w[0] / np.linalg.norm(w[0], axis=0)
    norms2 = (w[0] ** 2).sum(axis=0)
    assert direction_energy(w, columns[:, 0])[0] == pytest.approx(norms2[0] / norms2.sum())
    assert span_capture(w, columns[:, 1])[0] == pytest.approx(1.0)
    outside = rng.standard_normal(10)
    outside -= columns @ (columns.T @ outside)
    outside /= np.linalg.norm(outside)
    assert direction_energy(w, outside)[0] == pytest.approx(0.0, abs=1e-12)
    assert span_capture(w, outside)[0] == pytest.approx(0.0, abs=1e-12)
    mixed = (columns[:, 0] + columns[:, 2]) / np.sqrt(2)
    assert span_capture(w, mixed)[0] == pytest.approx(1.0)
    assert direction_energy(w, mixed)[0] == pytest.approx((norms2[0] + norms2[2]) / 2 / norms2.sum())
    # Per-model directions: row m uses u_m.
    two = np.concatenate([w, w])
    both = direction_energy(two, np.stack([columns[:, 0], outside]))
    np.testing.assert_allclose(both, [norms2[0] / norms2.sum(), 0.0], atol=1e-12)


def test_concept_directions_leave_the_model_out() -> None:
    means = np.array([[2.0, 0, 0], [0, 1.0, 0], [0, 0, 3.0], [1.0, 1.0, 0]])
    rows, directions = concept_pairs(means, [np.array([0, 1, 2]), np.array([3])])
    assert rows.tolist() == [0, 1, 2]  # a group of one has no concept without its member
    np.testing.assert_allclose(directions[0], [0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
    np.testing.assert_allclose(directions[2], [1 / np.sqrt(2), 1 / np.sqrt(2), 0])


def test_groups_from_tags_and_from_an_assignment() -> None:
    groups = groups_of_tags([("a", "b"), ("b",), (), ("a",)])
    assert sorted(g.tolist() for g in groups) == [[0, 1], [0, 3]]
    assert [g.tolist() for g in groups_of_assignment(np.array([2, 0, 2, 1, 0]))] == [[1, 4], [3], [0, 2]]


def test_measure_structure_reports_every_size_and_the_random_expectations() -> None:
    rng = np.random.default_rng(4)
    factors = random_factors(rng, 40, 32, 4)
    means = rng.standard_normal((40, 32)) + 3.0
    structure = measure_structure(factors, means, groups_of_assignment(np.arange(40) % 4), sizes=(8, 16, 64), loo_models=10)
    assert structure.sizes == [8, 16]  # k above d is left out
    assert structure.loo_models == 10
    assert all(0 < loo <= kept <= 1 for loo, kept in zip(structure.kept_loo_median, structure.kept_median))
    assert structure.random_energy == pytest.approx(1 / 32) and structure.random_capture == pytest.approx(4 / 32)
    assert structure.concept is not None
    direct = direction_energy(factors, means / np.linalg.norm(means, axis=1, keepdims=True)).mean()
    assert structure.mean.energy == pytest.approx(direct)
