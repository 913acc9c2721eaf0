"""core.quadratic_lift against independent float64 formulas (tests/independent.py) and the
exact top k: the lifted inner product plus its residual is the exact score, the bounds hold, and
a certified top k is the exact one."""

from __future__ import annotations

import numpy as np
import pytest

from independent import EPS, TAU, normalize, score
from modelverse.core import quadratic_lift as ql
from modelverse.core.compression import woodbury_factors_many
from modelverse.core.scores import gaussian, mgf
from modelverse.core.second_order import CompressedCovariances

D, R, M = 24, 4, 60


def collection(seed: int, shared: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """means (M, D), residual diagonals (M, D), factors (M, D, R); with ``shared``, every factor's
    columns mostly lie in one subspace of that dimension (as real models' do), else random."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((M, D)) * 0.3 / np.sqrt(D) + normalize(rng.standard_normal(D)) * 0.7
    diag = rng.uniform(0.001, 0.01, (M, D))
    if shared is None:
        factor = rng.standard_normal((M, D, R)) * 0.1
    else:
        subspace = np.linalg.qr(rng.standard_normal((D, shared)))[0]
        factor = (np.einsum("ds,msr->mdr", subspace, rng.standard_normal((M, shared, R)) * 0.1)
                  + rng.standard_normal((M, D, R)) * 0.005)
    return means, diag, factor


def queries(seed: int, count: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([normalize(v) for v in rng.standard_normal((count, D))])


def float64_woodbury(diag: np.ndarray, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L with L L^T = (I + W^T D_eps^-1 W)^-1 and log det(D_eps + W W^T), straight from the definitions."""
    chol, logdet = [], []
    for dg, w in zip(diag, factor):
        capacitance = np.eye(R) + w.T @ (w / (dg + EPS)[:, None])
        chol.append(np.linalg.cholesky(np.linalg.inv(capacitance)))
        logdet.append(np.linalg.slogdet(np.diag(dg + EPS) + w @ w.T)[1])
    return np.stack(chol), np.array(logdet)


def independent_scores(method: str, q: np.ndarray, means, diag, factor) -> np.ndarray:
    sigma = [np.diag(dg) + w @ w.T for dg, w in zip(diag, factor)]
    return np.array([score(method, q, mu, s, None) for mu, s in zip(means, sigma)])


def test_svec_inner_product_is_the_trace_of_the_product():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 7, 7))
    x, y = x + x.T, y + y.T
    assert ql.svec(x) @ ql.svec(y) == pytest.approx(np.trace(x @ y), rel=1e-12)
    assert ql.svec(x).shape == (ql.svec_size(7),)


@pytest.mark.parametrize("method", ["mgf", "gaussian"])
def test_forms_are_the_exact_scores(method):
    means, diag, factor = collection(1)
    if method == "mgf":
        forms = ql.mgf_forms(means, diag, factor, TAU)
    else:
        forms = ql.gaussian_forms(means, diag, factor, *float64_woodbury(diag, factor), EPS)
    for q in queries(2, 4):
        np.testing.assert_allclose(forms.scores(q), independent_scores(method, q, means, diag, factor), rtol=1e-10)


def test_forms_agree_with_the_stored_compressed_scorers():
    """From the stored float16/float32 factors, as core.scores computes them (float32 arithmetic)."""
    means, diag, factor = collection(3)
    diag16, factor16 = diag.astype(np.float16), factor.astype(np.float16)
    woodbury, logdet = woodbury_factors_many(diag16, factor16, EPS)
    second = CompressedCovariances(diag16, factor16, woodbury, logdet, np.zeros(M), EPS)
    mgf_f = ql.mgf_forms(means, diag16, factor16, TAU)
    gauss_f = ql.gaussian_forms(means, diag16, factor16, woodbury, logdet, EPS)
    q = queries(4, 1)[0]
    np.testing.assert_allclose(mgf_f.scores(q), mgf(q, means, second, TAU), rtol=1e-5)
    np.testing.assert_allclose(gauss_f.scores(q), gaussian(q, means, second, EPS), rtol=1e-4)
    np.testing.assert_allclose(mgf_f.scores_many(queries(4, 3)), [mgf(x, means, second, TAU) for x in queries(4, 3)],
                               rtol=1e-5)


@pytest.mark.parametrize("method", ["mgf", "gaussian"])
def test_lifted_inner_product_plus_residual_is_the_exact_score(method):
    means, diag, factor = collection(5, shared=6)
    forms = (ql.mgf_forms(means, diag, factor, TAU) if method == "mgf"
             else ql.gaussian_forms(means, diag, factor, *float64_woodbury(diag, factor), EPS))
    lift = ql.QuadraticLift(ql.fit_basis(forms.factor, 6))
    models = ql.lift_models(lift, forms)
    b = lift.basis
    v = np.asarray(forms.factor)
    a = np.einsum("dk,mdr->mkr", b, v)
    residual = v - np.einsum("dk,mkr->mdr", b, a)
    for q in queries(6, 5):
        query = ql.lift_query(lift, q)
        ap = np.einsum("mkr,k->mr", a, b.T @ q)
        rq = np.einsum("mdr,d->mr", residual, q)
        rest = 2.0 * (ap * rq).sum(axis=1) + (rq * rq).sum(axis=1)
        np.testing.assert_allclose(ql.estimates(models, query) + rest, forms.scores(q), rtol=1e-10, atol=1e-9)


def test_a_full_basis_lifts_exactly():
    means, diag, factor = collection(7)
    forms = ql.mgf_forms(means, diag, factor, TAU)
    lift = ql.QuadraticLift(ql.fit_basis(forms.factor, D))
    models = ql.lift_models(lift, forms)
    for q in queries(8, 3):
        query = ql.lift_query(lift, q)
        np.testing.assert_allclose(ql.estimates(models, query), forms.scores(q), rtol=1e-10)
        lower, upper = ql.bounds(models, query)  # only the rounding guard of ||R|| is left
        np.testing.assert_allclose(lower, forms.scores(q), rtol=1e-6)
        np.testing.assert_allclose(upper, forms.scores(q), rtol=1e-6)


def test_the_basis_recovers_a_shared_subspace():
    _, _, factor = collection(9, shared=6)
    assert np.median(ql.kept_energy(factor, ql.fit_basis(factor, 6))) > 0.97
    assert np.median(ql.kept_energy(factor, ql.fit_basis(factor, 2))) < 0.8


@pytest.mark.parametrize("method", ["mgf", "gaussian"])
@pytest.mark.parametrize("shared", [None, 6])
@pytest.mark.parametrize("columns", [None, 10, D + ql.svec_size(5)])
def test_bounds_hold(method, shared, columns):
    means, diag, factor = collection(10 + (shared or 0), shared=shared)
    forms = (ql.mgf_forms(means, diag, factor, TAU) if method == "mgf"
             else ql.gaussian_forms(means, diag, factor, *float64_woodbury(diag, factor), EPS))
    lift = ql.QuadraticLift(ql.fit_basis(forms.factor, 5))
    if columns is not None:
        lift = ql.fit_compression(lift, forms, columns, diagonal_weight=0.2)
    models = ql.lift_models(lift, forms)
    for q in queries(11, 20):
        exact = forms.scores(q)
        lower, upper = ql.bounds(models, ql.lift_query(lift, q))
        scale = 1e-9 * np.abs(exact).max()
        assert np.all(lower <= exact + scale) and np.all(exact <= upper + scale)


def test_a_lossless_compression_changes_no_estimate():
    means, diag, factor = collection(12, shared=4)
    forms = ql.mgf_forms(means, diag, factor, TAU)
    lift = ql.QuadraticLift(ql.fit_basis(forms.factor, 4))
    full = ql.lift_models(lift, forms)
    compressed_lift = ql.fit_compression(lift, forms, D + ql.svec_size(4), diagonal_weight=0.3)  # every direction
    compressed = ql.lift_models(compressed_lift, forms)
    assert compressed.slack[:, 0].max() < 1e-8 * np.abs(full.vectors).max()
    for q in queries(13, 4):
        np.testing.assert_allclose(ql.estimates(compressed, ql.lift_query(compressed_lift, q)),
                                   ql.estimates(full, ql.lift_query(lift, q)), rtol=1e-9)


@pytest.mark.parametrize("budget", [M, 30])
def test_certified_top_k_is_the_exact_top_k(budget):
    means, diag, factor = collection(14, shared=6)
    forms = ql.mgf_forms(means, diag, factor, TAU)
    lift = ql.fit_compression(ql.QuadraticLift(ql.fit_basis(forms.factor, 6)), forms, 30)
    models = ql.lift_models(lift, forms)
    certified = 0
    for q in queries(15, 20):
        exact = forms.scores(q)
        _, upper = ql.bounds(models, ql.lift_query(lift, q))
        result = ql.certified_top_k(upper, lambda rows: exact[rows], k=5, budget=budget, block=4)
        assert result.examined <= budget
        if result.certified:
            certified += 1
            np.testing.assert_array_equal(result.rows, np.argsort(-exact, kind="stable")[:5])
            np.testing.assert_allclose(result.scores, np.sort(exact)[::-1][:5])
    assert certified == 20 if budget == M else certified > 0


def test_certificate_refused_when_an_unexamined_bound_is_higher():
    upper = np.array([10.0, 9.0, 8.0, 7.0])
    exact = np.array([1.0, 1.0, 1.0, 6.5])  # the best model has the lowest bound
    result = ql.certified_top_k(upper, lambda rows: exact[rows], k=1, budget=2, block=1)
    assert not result.certified and result.examined == 2
    full = ql.certified_top_k(upper, lambda rows: exact[rows], k=1, budget=4, block=1)
    assert full.certified and full.rows.tolist() == [3]
