"""The per-query shortcuts of the shard and the gateway give what the longer paths gave.

- the gateway's first-stage rank (one sort of all candidates) equals its definition:
  1 + candidates with a higher float32 first-stage score + tied ones with a smaller id;
- a query part sent as packed float64 bytes is the same vector as one sent as repeated doubles;
- FIRST_MOMENT's rerank on the candidates' means equals ExactSearch's score on a Collection of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelverse.core.collection import Collection
from modelverse.core.params import PAPER_SCORING
from modelverse.core.reference import ExactSearch
from modelverse.core.types import Method, QueryPart
from modelverse.serving import metrics
from modelverse.serving.gateway.service import merge
from modelverse.serving.rerank import first_moment_scores
from modelverse.serving.shard.service import query_vector
from modelverse.v1 import search_pb2, shard_pb2


def answer(shard: int, ids: list[str], first: np.ndarray, scores: np.ndarray) -> shard_pb2.RecallResponse:
    return shard_pb2.RecallResponse(shard=shard, ids=ids, first_stage_scores=first.tolist(), scores=scores.tolist(),
                                    top=[search_pb2.Model(id=i) for i in ids])


def test_first_stage_ranks_follow_their_definition_with_ties() -> None:
    rng = np.random.default_rng(3)
    ids = [f"m{i:03d}" for i in rng.permutation(60)]
    first = rng.choice(np.array([0.5, 0.25, 0.125, 0.9], dtype=np.float32), 60)  # many ties
    scores = rng.standard_normal(60)
    answers = [answer(0, ids[:35], first[:35], scores[:35]), answer(1, ids[35:], first[35:], scores[35:])]
    response = merge(answers, 20)
    assert response.candidates == 60
    id_array = np.array(ids)
    for hit in response.hits:
        i = ids.index(hit.model.id)
        expected = 1 + np.count_nonzero(first > first[i]) + np.count_nonzero((first == first[i]) & (id_array < ids[i]))
        assert hit.first_stage_rank == expected
        assert hit.first_stage_score == pytest.approx(float(first[i]))


def test_a_vector_as_bytes_equals_the_vector_as_doubles() -> None:
    v = np.random.default_rng(0).standard_normal(512)
    as_bytes = shard_pb2.WeightedVector(values_f64=v.astype("<f8").tobytes(), weight=2.0)
    as_doubles = shard_pb2.WeightedVector(values=v.tolist(), weight=2.0)
    np.testing.assert_array_equal(query_vector(as_bytes), v)
    np.testing.assert_array_equal(query_vector(as_doubles), v)
    parsed = shard_pb2.RecallRequest.FromString(shard_pb2.RecallRequest(parts=[as_bytes]).SerializeToString())
    np.testing.assert_array_equal(query_vector(parsed.parts[0]), v)
    with pytest.raises(ValueError):
        query_vector(shard_pb2.WeightedVector(values_f64=b"\0" * 12))


def test_first_moment_rerank_equals_exact_search_on_the_candidates() -> None:
    rng = np.random.default_rng(1)
    means = rng.standard_normal((30, 16)).astype(np.float32)
    means[4] = 0  # a zero mean scores 0
    parts = [QueryPart(rng.standard_normal(16), 1.0), QueryPart(rng.standard_normal(16), 0.5)]
    candidates = Collection(np.array([f"m{i}" for i in range(30)]), means, None)  # type: ignore[arg-type]
    expected = ExactSearch(candidates, PAPER_SCORING).score_parts(parts, Method.FIRST_MOMENT)
    np.testing.assert_array_equal(first_moment_scores(parts, means), expected)


def test_a_stage_is_observed_once_per_block() -> None:
    child = metrics.STAGE_SECONDS.labels("test", "fastpath")
    before = child._sum.get()  # noqa: SLF001  (prometheus_client keeps the running sum here)
    for _ in range(3):
        with metrics.stage("test", "fastpath"):
            pass
    assert child._sum.get() >= before  # noqa: SLF001
    assert sum(b.get() for b in child._buckets) >= 3  # noqa: SLF001
