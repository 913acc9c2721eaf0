"""The parts the benchmark scripts share (modelverse.bench): the agreement metric against a
hand-counted case, query sampling, and the two-stage curve on a real in-process cluster."""

from __future__ import annotations

import numpy as np
import pytest
from serving_fixtures import build_store, start_in_process

from modelverse.bench.agreement import answer_concentration, positions_agreeing, two_stage_curve
from modelverse.bench.queries import make_queries
from modelverse.core.reference import ExactSearch
from modelverse.core.types import Method, QueryPart
from modelverse.v1 import search_pb2


def test_positions_agreeing_counts_positions_not_overlap() -> None:
    exact = [list("abcdefghij"), list("klmnopqrst")]
    swapped = [list("abdcefghij"), list("klmnopqrst")]  # ranks 3 and 4 swapped: two positions lost
    short = [list("abcde"), list("klmnopqrst")]  # five positions missing
    assert positions_agreeing(exact, exact) == 1.0
    assert positions_agreeing(swapped, exact) == pytest.approx(18 / 20)
    assert positions_agreeing(short, exact) == pytest.approx(15 / 20)
    assert positions_agreeing([list("abc")], [list("abd")], k=3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        positions_agreeing(exact[:1], exact)


def test_answer_concentration_counts_hubs() -> None:
    exact = [list("abc"), list("adc"), list("aef"), list("bcd")]
    assert answer_concentration(exact) == {"queries": 4, "distinct_top1": 2, "most_queries_one_top1": 3,
                                           "distinct_in_top_lists": 6}
    with pytest.raises(ValueError):
        answer_concentration([])


def test_queries_are_unit_draws_of_distinct_live_models(tmp_path) -> None:
    store, _ = build_store(tmp_path / "store", count=12)
    collection = store.collection()
    queries, ids = make_queries(collection, 5, seed=3)
    again, same_ids = make_queries(collection, 5, seed=3)
    assert queries.dtype == np.float32 and queries.shape == (5, collection.dim)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-6)
    assert len(set(ids)) == 5 and set(ids) <= set(collection.ids)
    np.testing.assert_array_equal(queries, again)
    assert list(ids) == list(same_ids)


def test_two_stage_curve_is_one_when_every_model_is_a_candidate(tmp_path) -> None:
    store, _ = build_store(tmp_path / "store", count=20)
    collection = store.collection()
    queries, _ = make_queries(collection, 4, seed=1)
    exact = [[h.id for h in ExactSearch(collection, store.config.scoring).search(
        [QueryPart(q.astype(np.float64))], Method.GAUSSIAN, 10)] for q in queries]
    cluster = start_in_process(store.root, tmp_path / "index", shards=2)
    try:
        curve = two_stage_curve(cluster.gateway, queries, exact, search_pb2.GAUSSIAN, [1000])
        reversed_truth = two_stage_curve(cluster.gateway, queries, [e[::-1] for e in exact], search_pb2.GAUSSIAN, [1000])
    finally:
        cluster.close()
    assert curve == {1000: 1.0}  # every model reranked: the exact answer, position by position
    assert reversed_truth[1000] == 0.0  # ten distinct models reversed share no position


def test_text_queries_are_unit_vectors_near_a_group_of_means():
    from modelverse.bench.queries import make_text_queries

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, 32))
    means = np.repeat(centres, 20, axis=0) + 0.1 * rng.standard_normal((100, 32))
    queries = make_text_queries(means, 10, seed=1, neighbours=8, noise=0.5)
    assert queries.shape == (10, 32) and queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-5)
    unit_centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    assert np.all((queries @ unit_centres.T).max(axis=1) > 0.7)  # near one group, not a random direction


def test_structured_factors_keep_the_spectrum_and_share_a_basis():
    from modelverse.bench.quadratic_lift import structured_factors
    from modelverse.core.quadratic_lift import fit_basis, kept_energy

    rng = np.random.default_rng(2)
    spectrum = np.sqrt(np.linspace(1.0, 0.1, 8))
    factor = (np.linalg.qr(rng.standard_normal((400, 64, 8)))[0] * spectrum * 0.1).astype(np.float16)
    structured = structured_factors(factor, seed=3, power=1.0, cutoff=8.0)
    np.testing.assert_allclose(np.linalg.norm(structured.astype(np.float64), axis=1),
                               np.linalg.norm(factor.astype(np.float64), axis=1), rtol=2e-3)
    gram = np.einsum("mdr,mds->mrs", structured.astype(np.float64), structured.astype(np.float64))
    off = gram - np.einsum("mrr->mr", gram)[:, :, None] * np.eye(8)
    assert np.abs(off).max() < 1e-4  # columns still orthogonal
    held_out = np.arange(200, 400)
    assert np.median(kept_energy(structured[:200], fit_basis(structured, 16, held_out))) > 0.8
    assert np.median(kept_energy(factor[:200], fit_basis(factor, 16, held_out))) < 0.4
