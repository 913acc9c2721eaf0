"""The GPU scale generator and scorer (modelverse.bench.scale_gpu), run here on the CPU: its scores equal
independent float64 formulas (dense covariances, scipy's Gaussian density), its lifted vectors
equal the serving code's, and its statistics follow the profile they were drawn from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from modelverse.bench.scale_gpu import (
    Layout,
    exact_scores,
    generate_batch,
    lift_gaussian,
    lift_mgf,
    lifted_first_stage,
)
from modelverse.bench.scale_stats import Profile
from modelverse.core.compression import woodbury_factors_many
from modelverse.core.lift import LiftSpec, lift_models

D, R = 64, 4
TAU, EPS = 100.0, 1e-3


@pytest.fixture(scope="module")
def profile() -> Profile:
    spectrum = [1.0, 0.6, 0.35, 0.2]
    return Profile(dim=D, rank=R, norm_quantiles=list(np.linspace(0.45, 0.8, 21)), common_cosine=0.5,
                   within_cosine=0.7, spectrum=spectrum, lambda1_log_mean=float(np.log(0.02)),
                   lambda1_log_std=0.3, residual_fraction=0.4)


@pytest.fixture(scope="module")
def batch(profile: Profile):
    layout = Layout.draw(profile, models=600, clusters=5, seed=3, device=torch.device("cpu"))
    return generate_batch(profile, layout, start=0, count=600, seed=3)


def test_scores_equal_dense_float64_formulas(batch) -> None:
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((3, D))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores = {k: v.numpy() for k, v in exact_scores(batch, torch.from_numpy(queries), TAU, EPS).items()}
    mu = batch.means.double().numpy()
    diag = batch.diag.double().numpy()
    w = batch.factor.double().numpy()
    for m in range(0, 600, 97):
        sigma = np.diag(diag[m]) + w[m] @ w[m].T
        for qi, q in enumerate(queries):
            assert scores["first_moment"][qi, m] == pytest.approx(q @ mu[m] / np.linalg.norm(mu[m]), rel=1e-12)
            assert scores["mgf"][qi, m] == pytest.approx(TAU * q @ mu[m] + 0.5 * TAU**2 * q @ sigma @ q, rel=1e-10)
            density = multivariate_normal(mean=mu[m], cov=sigma + EPS * np.eye(D)).logpdf(q)
            assert scores["gaussian"][qi, m] == pytest.approx(density, rel=1e-9, abs=1e-6)


def test_lifted_vectors_equal_the_serving_lift(batch) -> None:
    means = batch.means.numpy()
    diag = batch.diag.numpy()
    factor = batch.factor.numpy()
    _, logdet = woodbury_factors_many(diag, factor, EPS)
    for columns in (0, 1, 2):
        spec = LiftSpec("mgf", columns=columns, alpha=0.1, tau=TAU)
        expected = lift_models(spec, means, diag, factor, logdet=None, eps=EPS)[:, : D + 1]
        got = lift_mgf(batch, TAU, columns, 0.1).numpy()
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-3)
    expected = lift_models(LiftSpec("gaussian"), means, diag, factor, logdet=logdet, eps=EPS)[:, : D + 1]
    np.testing.assert_allclose(lift_gaussian(batch, EPS).numpy(), expected, rtol=2e-5, atol=1e-3)


def test_lifted_first_stage_takes_the_best_copy(batch) -> None:
    lifted = lift_mgf(batch, TAU, 2, 0.1)
    q = torch.nn.functional.normalize(torch.randn(2, D, dtype=torch.float64), dim=1)
    got = lifted_first_stage(lifted, 4, q)
    brute = (torch.cat([q, torch.ones(2, 1, dtype=torch.float64)], dim=1) @ lifted.T).view(2, -1, 4).amax(dim=2)
    torch.testing.assert_close(got, brute.float(), rtol=1e-5, atol=1e-3)


def test_statistics_follow_the_profile(profile: Profile, batch) -> None:
    w = batch.factor.double()
    gram = w.transpose(1, 2) @ w  # columns orthogonal: W^T W is diagonal
    lam = torch.diagonal(gram, dim1=1, dim2=2)
    off = gram - torch.diag_embed(lam)
    assert float(off.abs().max() / lam.max()) < 2e-3  # float16 rounding only
    ratio = (lam / lam[:, :1]).mean(dim=0).numpy()
    np.testing.assert_allclose(ratio, profile.spectrum, rtol=2e-3)
    assert float(torch.log(lam[:, 0]).std()) == pytest.approx(profile.lambda1_log_std, rel=0.15)
    norms = batch.means.double().norm(dim=1).numpy()
    assert profile.norm_quantiles[0] - 1e-6 <= norms.min() and norms.max() <= profile.norm_quantiles[-1] + 1e-6
    residual = batch.diag.double().sum(dim=1) / (batch.diag.double().sum(dim=1) + lam.sum(dim=1))
    assert float(residual.mean()) == pytest.approx(profile.residual_fraction, rel=0.05)


def test_batches_are_reproducible(profile: Profile) -> None:
    layout = Layout.draw(profile, models=100, clusters=5, seed=1, device=torch.device("cpu"))
    a = generate_batch(profile, layout, 50, 50, seed=1)
    b = generate_batch(profile, layout, 50, 50, seed=1)
    assert torch.equal(a.factor, b.factor) and torch.equal(a.means, b.means)
    assert not torch.equal(a.means, generate_batch(profile, layout, 0, 50, seed=1).means)


def test_resident_scores_equal_the_float64_reference(profile: Profile) -> None:
    from modelverse.bench.scale_gpu import Resident, resident_scores

    layout = Layout.draw(profile, models=700, clusters=5, seed=4, device=torch.device("cpu"))
    res = Resident.generate(profile, layout, models=700, batch=256, seed=4, eps=EPS)
    q = torch.nn.functional.normalize(torch.randn(5, D, dtype=torch.float64), dim=1)
    reference = exact_scores(res.batch(0, res.size), q, TAU, EPS)
    for method in ("mgf", "gaussian"):
        got = resident_scores(res, q, method, TAU, EPS, chunk=300).double()  # several chunks
        torch.testing.assert_close(got, reference[method], rtol=2e-5, atol=2e-3)
        assert torch.equal(torch.topk(got, 10).indices, torch.topk(reference[method], 10).indices)
