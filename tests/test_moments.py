from __future__ import annotations

import itertools

import numpy as np
import pytest

from modelverse.core.moments import PartialMoments, l2_normalize_rows, merge_all


def test_partial_moments_merge_in_any_order_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((257, 12)) * rng.uniform(0.1, 3.0, 12) + 5.0
    chunks = np.array_split(x, [10, 11, 100, 180])
    expected_mean = x.mean(axis=0)
    expected_cov = np.cov(x, rowvar=False, ddof=1)
    for order in itertools.permutations(range(len(chunks))):
        merged = merge_all(PartialMoments.from_samples(chunks[i]) for i in order)
        assert merged.count == 257
        np.testing.assert_allclose(merged.mean, expected_mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(merged.covariance(), expected_cov, rtol=0, atol=1e-12)


def test_merge_with_empty_partials_is_identity() -> None:
    x = np.random.default_rng(2).standard_normal((5, 3))
    part = PartialMoments.from_samples(x)
    empty = PartialMoments.empty(3)
    for merged in (part.merge(empty), empty.merge(part)):
        np.testing.assert_array_equal(merged.mean, part.mean)
        np.testing.assert_array_equal(merged.m2, part.m2)
    assert PartialMoments.from_samples(np.zeros((0, 3))).count == 0


def test_merge_rejects_other_dimension() -> None:
    with pytest.raises(ValueError, match="dimension"):
        PartialMoments.empty(3).merge(PartialMoments.empty(4))


def test_covariance_of_one_sample_is_zero_not_nan() -> None:
    one = PartialMoments.from_samples(np.ones((1, 4)))
    assert np.array_equal(one.covariance(), np.zeros((4, 4)))


def test_l2_normalize_rows_rejects_nan_and_zero_rows() -> None:
    with pytest.raises(ValueError, match="NaN"):
        l2_normalize_rows(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="all-zero"):
        l2_normalize_rows(np.array([[1.0, 0.0], [0.0, 0.0]]))
    z = l2_normalize_rows(np.array([[3.0, 4.0]]))
    np.testing.assert_allclose(z, [[0.6, 0.8]])
