"""The exact reference search against the independent one-model-at-a-time implementation."""

from __future__ import annotations

import independent
import numpy as np
import pytest

from modelverse.core.collection import Collection
from modelverse.core.params import ScoringParams
from modelverse.core.ranking import top_k
from modelverse.core.reference import ExactSearch, MissingStatisticsError
from modelverse.core.stats import stats_from_features
from modelverse.core.types import Method, QueryPart, SecondOrderForm

PARAMS = ScoringParams(tau=independent.TAU, eps=independent.EPS)


@pytest.mark.parametrize("method", ["first_moment", "mgf", "gaussian", "monte_carlo"])
def test_full_search_equals_independent_ranking(small, method: str) -> None:
    engine = ExactSearch(small.collection, PARAMS)
    moments = [(f.mean(axis=0), np.cov(f, rowvar=False), f) for f in small.features]
    rng = np.random.default_rng(1)
    for query in [small.features[1][5], rng.standard_normal(small.collection.dim)]:
        q = independent.normalize(query)
        expected = independent.ranking(small.ids, [independent.score(method, q, *m) for m in moments])
        hits = engine.search([QueryPart(query)], Method(method), k=len(small.ids), form=SecondOrderForm.FULL)
        assert [h.id for h in hits] == [i for i, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-6)


def test_similar_equals_independent_frechet_and_leaves_the_query_out(small) -> None:
    engine = ExactSearch(small.collection, PARAMS)
    moments = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in small.features]
    query = 4
    others = [i for i in range(len(small.ids)) if i != query]
    expected = independent.ranking(
        [small.ids[i] for i in others],
        [independent.frechet_score(*moments[query], *moments[i]) for i in others],
    )
    hits = engine.similar(small.ids[query], k=100, form=SecondOrderForm.FULL)
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-6)


def test_ties_are_broken_by_model_id() -> None:
    ids = np.array(["b", "a", "d", "c", "e"])
    scores = np.array([1.0, 1.0, 2.0, 1.0, 0.5])
    assert [h.id for h in top_k(ids, scores, 3)] == ["d", "a", "b"]
    assert [h.id for h in top_k(ids, scores, 10)] == ["d", "a", "b", "c", "e"]
    assert [h.rank for h in top_k(ids, scores, 10)] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="positive"):
        top_k(ids, scores, 0)


def test_identical_models_rank_by_id_in_a_search() -> None:
    features = np.random.default_rng(0).standard_normal((40, 8))
    stats = stats_from_features(features, rank=2)
    collection = Collection.from_stats(["zeta", "alpha", "mid"], [stats, stats, stats])
    for method in (Method.FIRST_MOMENT, Method.MGF, Method.GAUSSIAN):
        hits = ExactSearch(collection, PARAMS).search([QueryPart(features[0])], method, k=3)
        assert [h.id for h in hits] == ["alpha", "mid", "zeta"]


def test_masked_rows_are_never_returned(small) -> None:
    live = np.ones(len(small.ids), dtype=bool)
    live[[0, 3]] = False
    c = small.collection
    masked = Collection(c.ids, c.means, c.compressed, c.full, c.samples, live=live)
    hits = ExactSearch(masked, PARAMS).search([QueryPart(small.features[0][0])], Method.GAUSSIAN, k=100)
    assert {h.id for h in hits} == {small.ids[i] for i in range(len(small.ids)) if live[i]}
    with pytest.raises(KeyError):
        ExactSearch(masked, PARAMS).similar(small.ids[0])


def test_missing_statistics_are_reported() -> None:
    stats = stats_from_features(np.random.default_rng(0).standard_normal((20, 8)), rank=2, keep_covariance=False)
    engine = ExactSearch(Collection.from_stats(["a"], [stats]), PARAMS)
    with pytest.raises(MissingStatisticsError, match="full covariances"):
        engine.search([QueryPart(np.ones(8))], Method.GAUSSIAN, form=SecondOrderForm.FULL)
    with pytest.raises(MissingStatisticsError, match="raw sample"):
        engine.search([QueryPart(np.ones(8))], Method.MONTE_CARLO)


def test_scores_equal_to_float32_precision_tie() -> None:
    ids = np.array(["b", "a"])
    assert [h.id for h in top_k(ids, np.array([1.0 + 1e-12, 1.0]), 2)] == ["a", "b"]
    assert [h.id for h in top_k(ids, np.array([1.0 + 1e-5, 1.0]), 2)] == ["b", "a"]


@pytest.mark.parametrize("method", [Method.FIRST_MOMENT, Method.MGF, Method.GAUSSIAN])
def test_search_many_in_blocks_equals_one_search_per_query(small, method: Method) -> None:
    """The benchmarks' exhaustive oracle at a million models: blocks of rows, all queries per
    block, masked rows skipped; the same hits and scores as ``search`` per query."""
    live = np.ones(len(small.ids), dtype=bool)
    live[[1, 6]] = False
    c = small.collection
    masked = Collection(c.ids, c.means, c.compressed, live=live)
    engine = ExactSearch(masked, ScoringParams(tau=23.2, eps=independent.EPS))
    rng = np.random.default_rng(4)
    queries = [[QueryPart(rng.standard_normal(c.dim))], [QueryPart(small.features[2][3]), QueryPart(small.features[5][1], 0.5)]]
    many = engine.search_many(queries, method, k=5, block=3)
    for parts, hits in zip(queries, many):
        one = engine.search(parts, method, k=5)
        assert [h.id for h in hits] == [h.id for h in one]
        # BLAS blocks rows differently in a smaller matrix: equal to float32 precision, as ranked
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in one], rtol=1e-7)
