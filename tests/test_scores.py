"""Every score against an independent float64 computation (scipy, direct sums)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.special
from scipy.spatial.distance import cosine
from scipy.stats import multivariate_normal

from modelverse.core import scores
from modelverse.core.collection import Collection
from modelverse.core.compression import compress_covariance, woodbury_factors, woodbury_factors_many
from modelverse.core.second_order import CompressedCovariances, FullCovariances
from modelverse.core.stats import stats_from_features

TAU = 100.0
EPS = 1e-3


def reference_cov(features: np.ndarray) -> np.ndarray:
    return np.cov(features, rowvar=False, ddof=1)


def query_vectors(small, count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = [small.features[i][0] for i in range(count // 2)]  # on a model's manifold
    out += [rng.standard_normal(small.collection.dim) for _ in range(count - len(out))]
    return [v / np.linalg.norm(v) for v in out]


def test_first_moment_is_cosine_to_the_mean(small) -> None:
    for q in query_vectors(small):
        got = scores.first_moment(q, small.collection.means)
        expected = [1.0 - cosine(q, f.mean(axis=0)) for f in small.features]
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_mgf_full_matches_float64_formula(small) -> None:
    full = small.collection.full
    for q in query_vectors(small):
        got = scores.mgf(q, small.collection.means, full, TAU)
        expected = [
            TAU * q @ f.mean(axis=0) + 0.5 * TAU**2 * q @ reference_cov(f) @ q
            for f in small.features
        ]
        np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_mgf_is_log_moment_generating_function_of_a_gaussian() -> None:
    # log E[exp(tau q.z)] for z ~ N(mu, Sigma), by brute-force Monte Carlo over Gaussian draws.
    rng = np.random.default_rng(3)
    d, tau = 6, 2.0
    mu = rng.standard_normal(d) * 0.3
    a = rng.standard_normal((d, d)) * 0.2
    sigma = a @ a.T
    q = rng.standard_normal(d)
    q /= np.linalg.norm(q)
    draws = rng.multivariate_normal(mu, sigma, size=400_000)
    monte_carlo = scipy.special.logsumexp(tau * draws @ q) - np.log(len(draws))
    closed = scores.mgf(q, mu[None], FullCovariances(sigma[None]), tau)[0]
    assert closed == pytest.approx(monte_carlo, abs=5e-3)


def test_gaussian_full_matches_scipy_logpdf(small) -> None:
    full = small.collection.full
    d = small.collection.dim
    for q in query_vectors(small):
        got = scores.gaussian(q, small.collection.means, full, EPS)
        expected = [
            multivariate_normal.logpdf(q, f.mean(axis=0), reference_cov(f) + EPS * np.eye(d))
            for f in small.features
        ]
        np.testing.assert_allclose(got, expected, rtol=1e-8)


def test_compressed_scores_match_scipy_on_the_dense_reconstruction(small) -> None:
    compressed = small.collection.compressed
    d = small.collection.dim
    dense = [s.compressed.dense() for s in small.stats]
    means = small.collection.means
    for q in query_vectors(small):
        gaussian = scores.gaussian(q, means, compressed, EPS)
        expected = [
            multivariate_normal.logpdf(q, mu, cov + EPS * np.eye(d)) for mu, cov in zip(means, dense)
        ]
        np.testing.assert_allclose(gaussian, expected, rtol=1e-4)
        mgf = scores.mgf(q, means, compressed, TAU)
        expected = [TAU * q @ mu + 0.5 * TAU**2 * q @ cov @ q for mu, cov in zip(means, dense)]
        np.testing.assert_allclose(mgf, expected, rtol=1e-4)


def test_compressed_gaussian_with_another_eps_refactors(small) -> None:
    compressed = small.collection.compressed
    d = small.collection.dim
    q = query_vectors(small)[0]
    got = scores.gaussian(q, small.collection.means, compressed, eps=1e-2)
    expected = [
        multivariate_normal.logpdf(q, mu, s.compressed.dense() + 1e-2 * np.eye(d))
        for mu, s in zip(small.collection.means, small.stats)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_monte_carlo_matches_direct_sum(small) -> None:
    for q in query_vectors(small):
        got = scores.monte_carlo(q, small.collection.samples, TAU)
        expected = [np.log(np.mean(np.exp(TAU * (f @ q)))) for f in small.features]
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_frechet_full_with_a_low_rank_query_matches_scipy_sqrtm(small) -> None:
    """A query of a few images has a singular covariance: the k x k shortcut must agree."""
    rng = np.random.default_rng(3)
    few = rng.standard_normal((4, small.collection.dim)) * 0.05 + small.collection.means[0]
    query_mean, query_cov = few.mean(axis=0), np.cov(few, rowvar=False)
    covs = [reference_cov(f) for f in small.features]
    got = scores.frechet_full(query_mean, query_cov, small.collection.means, FullCovariances.stack(covs))
    expected = [frechet_scipy(query_mean, query_cov, mu, c) for mu, c in zip(small.collection.means, covs)]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_monte_carlo_many_matches_scipy_logsumexp(small) -> None:
    queries = np.stack(query_vectors(small))
    got = scores.monte_carlo_many(queries, small.collection.samples, TAU)
    expected = [
        [scipy.special.logsumexp(TAU * (f @ q)) - np.log(len(f)) for f in small.features] for q in queries
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def frechet_scipy(mu1, s1, mu2, s2) -> float:
    root = scipy.linalg.sqrtm(s1 @ s2)
    return -(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * np.real(root)))


def test_frechet_full_matches_scipy_sqrtm(small) -> None:
    means = small.collection.means
    covs = [reference_cov(f) for f in small.features]
    for query in (0, 3):
        got = scores.frechet_full(means[query], covs[query], means, small.collection.full)
        expected = [frechet_scipy(means[query], covs[query], mu, c) for mu, c in zip(means, covs)]
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert abs(got[3]) < 1e-6  # a model is at distance 0 from itself


def test_frechet_compressed_is_exact_for_isotropic_residuals(small) -> None:
    """The compressed Frechet reads each covariance as mean(D) I + W W^T: check that form."""
    means = small.collection.means
    compressed = small.collection.compressed
    d = small.collection.dim

    def isotropic(item) -> np.ndarray:
        w = item.factor.astype(np.float64)
        return item.diag.astype(np.float64).mean() * np.eye(d) + w @ w.T

    forms = [isotropic(s.compressed) for s in small.stats]
    got_cross = compressed.sqrt_trace_product(compressed.take(np.array([2])))
    expected_cross = [np.trace(np.real(scipy.linalg.sqrtm(forms[2] @ f))) for f in forms]
    np.testing.assert_allclose(got_cross, expected_cross, rtol=1e-6)
    got = scores.frechet_compressed(means[2], compressed.take(np.array([2])), means, compressed)
    full = scores.frechet_full(means[2], small.collection.full.covariances[2], means, small.collection.full)
    assert np.argmax(got) == np.argmax(full) == 2


def test_full_rank_compression_reproduces_the_covariance(small) -> None:
    cov = reference_cov(small.features[0])
    item = compress_covariance(cov, rank=cov.shape[0], eps=EPS)
    np.testing.assert_allclose(item.dense(), cov, atol=2e-3 * np.abs(cov).max())
    assert item.trace == pytest.approx(np.trace(cov))


def test_fewer_samples_than_dimensions_gives_finite_scores() -> None:
    rng = np.random.default_rng(5)
    d = 32
    stats = [stats_from_features(rng.standard_normal((n, d)), rank=8, keep_samples=True) for n in (1, 2, 5)]
    collection = Collection.from_stats(["a", "b", "c"], stats)
    q = scores.normalize_query(rng.standard_normal(d))
    for second in (collection.full, collection.compressed):
        assert np.all(np.isfinite(scores.gaussian(q, collection.means, second, EPS)))
        assert np.all(np.isfinite(scores.mgf(q, collection.means, second, TAU)))
    assert np.all(np.isfinite(scores.frechet_full(collection.means[0], collection.full.covariances[0], collection.means, collection.full)))
    assert np.all(np.isfinite(scores.frechet_compressed(collection.means[0], collection.compressed.take(np.array([0])), collection.means, collection.compressed)))
    assert np.all(np.isfinite(scores.monte_carlo(q, collection.samples, TAU)))


def test_normalize_query_rejects_bad_vectors() -> None:
    with pytest.raises(ValueError, match="dimension 3"):
        scores.normalize_query(np.ones(3), dim=4)
    with pytest.raises(ValueError, match="NaN"):
        scores.normalize_query(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="zeros"):
        scores.normalize_query(np.zeros(4))
    with pytest.raises(ValueError, match="1-D"):
        scores.normalize_query(np.ones((2, 2)))


def test_multimodal_combination_prefers_the_model_that_fits_both_parts() -> None:
    """Model A fits the text only, B the image only, C both moderately: C wins together."""
    d = 16
    basis = np.eye(d)
    text, image = basis[0], basis[1]
    mixed = (text + image) / np.sqrt(2)
    means = np.stack([text, image, mixed, basis[2]]) * 0.9
    q_text, q_image = scores.normalize_query(text), scores.normalize_query(image)
    text_scores = scores.first_moment(q_text, means)
    image_scores = scores.first_moment(q_image, means)
    combined = scores.combine([text_scores, image_scores], [1.0, 1.0])
    assert np.argmax(text_scores) == 0 and np.argmax(image_scores) == 1
    assert np.argmax(combined) == 2
    # A heavy weight on one part hands the first place back to that part's model.
    assert np.argmax(scores.combine([text_scores, image_scores], [5.0, 1.0])) == 0
    with pytest.raises(ValueError, match="positive"):
        scores.combine([text_scores], [0.0])


def test_batched_woodbury_factors_invert_the_regularised_covariance() -> None:
    """L L^T = (I + W^T (D + eps)^-1 W)^-1 and logdet = log det(D + eps I + W W^T), per model of a batch
    (checked against a dense float64 inverse and slogdet)."""
    rng = np.random.default_rng(3)
    m, d, r, eps = 5, 24, 4, 1e-3
    diag = rng.uniform(0.01, 0.1, (m, d)).astype(np.float16)
    factor = (rng.standard_normal((m, d, r)) * 0.2).astype(np.float16)
    woodbury, logdet = woodbury_factors_many(diag, factor, eps)
    for i in range(m):
        d_eps = diag[i].astype(np.float64) + eps
        w = factor[i].astype(np.float64)
        dense = np.diag(d_eps) + w @ w.T
        assert logdet[i] == pytest.approx(np.linalg.slogdet(dense)[1], rel=1e-10)
        capacitance = np.eye(r) + w.T @ (w / d_eps[:, None])
        np.testing.assert_allclose(woodbury[i] @ woodbury[i].T, np.linalg.inv(capacitance), rtol=1e-5, atol=1e-6)
        one, one_logdet = woodbury_factors(diag[i], factor[i], eps)
        np.testing.assert_array_equal(one, woodbury[i])
        assert one_logdet == logdet[i]
