"""The gRPC search equals the exact reference search, and bad input gets the documented code.

Real gRPC servers on loopback (two shards and a gateway in this process), real FAISS. With the
exact first stage and candidates covering each shard, the two-stage sharded search must give
exactly the ranking of ``core.reference.ExactSearch`` for every method.
"""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image
from serving_fixtures import build_store, start_in_process

from modelverse.core.ranking import top_k
from modelverse.core.reference import ExactSearch
from modelverse.core.types import Method, QueryPart
from modelverse.serving.gateway.query import Limits
from modelverse.v1 import search_pb2

ALL = 1000  # candidates per shard: more than the collection holds
METHODS = {Method.FIRST_MOMENT: search_pb2.FIRST_MOMENT, Method.MGF: search_pb2.MGF, Method.GAUSSIAN: search_pb2.GAUSSIAN}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    store, small = build_store(root / "store")
    cluster = start_in_process(root / "store", root / "index", shards=2,
                               limits=Limits(max_image_bytes=4096, max_top_k=100))
    yield cluster, store, small
    cluster.close()


def vector_part(values: np.ndarray, weight: float | None = None) -> search_pb2.QueryPart:
    part = search_pb2.QueryPart(vector=search_pb2.Vector(values=np.asarray(values, dtype=np.float32).tolist()))
    if weight is not None:
        part.weight = weight
    return part


def queries(small) -> list[list[tuple[np.ndarray, float]]]:
    rng = np.random.default_rng(7)
    single = [[(small.features[i][:20].mean(axis=0), 1.0)] for i in (0, 5, 17, 33)]
    random = [[(rng.standard_normal(64), 1.0)]]
    mixed = [[(small.features[3][0], 2.0), (small.features[11][:5].mean(axis=0), 0.5)]]
    return single + random + mixed


def assert_same_ranking(hits, expected) -> None:
    assert [h.model.id for h in hits] == [e.id for e in expected]
    np.testing.assert_allclose([h.score for h in hits], [e.score for e in expected], rtol=1e-6, atol=1e-9)
    assert [h.rank for h in hits] == list(range(1, len(expected) + 1))


@pytest.mark.parametrize("method", list(METHODS))
def test_vector_search_equals_the_exact_reference(served, method) -> None:
    cluster, store, small = served
    oracle = ExactSearch(store.collection(), store.config.scoring)
    for query in queries(small):
        parts = [vector_part(v, w) for v, w in query]
        response = cluster.gateway.Search(search_pb2.SearchRequest(
            parts=parts, top_k=12, method=METHODS[method], candidates_per_shard=ALL))
        # The oracle gets exactly what the client sent: float32 values.
        expected = oracle.search([QueryPart(np.float32(v).astype(np.float64), w) for v, w in query], method, 12)
        assert_same_ranking(response.hits, expected)
        assert not response.partial
        assert response.method == METHODS[method]
        assert response.candidates == len(small.ids)


def test_model_id_search_equals_the_exact_frechet_ranking(served) -> None:
    cluster, store, small = served
    oracle = ExactSearch(store.collection(), store.config.scoring)
    for model_id in small.ids[:6]:
        response = cluster.gateway.Search(search_pb2.SearchRequest(
            parts=[search_pb2.QueryPart(model_id=model_id)], top_k=10, candidates_per_shard=ALL))
        assert response.method == search_pb2.FRECHET  # the default for a model-id query
        assert_same_ranking(response.hits, oracle.similar(model_id, 10))
        assert model_id not in [h.model.id for h in response.hits]


def test_first_stage_ranks_and_metadata_come_back(served) -> None:
    cluster, store, small = served
    q = small.features[8][:10].mean(axis=0)
    response = cluster.gateway.Search(search_pb2.SearchRequest(parts=[vector_part(q)], top_k=5, method=search_pb2.GAUSSIAN, candidates_per_shard=ALL))
    cosines = ExactSearch(store.collection(), store.config.scoring).score_parts([QueryPart(np.float32(q).astype(np.float64))], Method.FIRST_MOMENT)
    first_order = [h.id for h in top_k(store.collection().ids, cosines, len(small.ids))]
    for hit in response.hits:
        assert first_order.index(hit.model.id) + 1 == hit.first_stage_rank
        assert hit.model.name and hit.model.family in {"gan", "diffusion", "vae"} and hit.model.stats_version == 1


def test_filters_equal_the_reference_restricted_to_matching_models(served) -> None:
    cluster, store, small = served
    q = small.features[2][:10].mean(axis=0)
    flt = search_pb2.Filter(families=["gan", "vae"], min_resolution=100)
    response = cluster.gateway.Search(search_pb2.SearchRequest(
        parts=[vector_part(q)], top_k=8, method=search_pb2.MGF, filter=flt, candidates_per_shard=ALL))
    collection = store.collection()
    scores = ExactSearch(collection, store.config.scoring).score_parts([QueryPart(np.float32(q).astype(np.float64))], Method.MGF)
    keep = np.array([store.get(m).metadata.family in {"gan", "vae"} and store.get(m).metadata.resolution >= 100
                     for m in collection.ids])
    expected = top_k(collection.ids[keep], scores[keep], 8)
    assert_same_ranking(response.hits, expected)


def test_list_models_pages_through_every_model_once(served) -> None:
    cluster, _, small = served
    seen, token = [], ""
    while True:
        page = cluster.gateway.ListModels(search_pb2.ListModelsRequest(page_size=7, page_token=token))
        seen += [m.id for m in page.models]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(small.ids)
    assert cluster.gateway.GetModel(search_pb2.GetModelRequest(id=small.ids[4])).name == "Model 4"


def _png(side: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def bad_requests(small):
    v = small.features[0][0]
    nan = v.copy()
    nan[3] = np.nan
    S, P, V = search_pb2.SearchRequest, search_pb2.QueryPart, vector_part
    code = grpc.StatusCode
    return {
        "wrong dimension": (S(parts=[V(v[:10])]), code.INVALID_ARGUMENT, "dimension 10"),
        "nan": (S(parts=[V(nan)]), code.INVALID_ARGUMENT, "NaN"),
        "zero vector": (S(parts=[V(np.zeros(64))]), code.INVALID_ARGUMENT, "zeros"),
        "empty query": (S(), code.INVALID_ARGUMENT, "empty"),
        "empty part": (S(parts=[P()]), code.INVALID_ARGUMENT, "empty"),
        "empty text": (S(parts=[P(text="  ")]), code.INVALID_ARGUMENT, "empty text"),
        "corrupt image": (S(parts=[P(image=b"\x89PNG\r\n\x1a\n not really")]), code.INVALID_ARGUMENT, "not a readable image"),
        "oversize image": (S(parts=[P(image=_png(8) + b"\0" * 5000)]), code.RESOURCE_EXHAUSTED, "more than the"),
        "oversize message": (S(parts=[P(image=b"\0" * (2 * 1024 * 1024))]), code.RESOURCE_EXHAUSTED, ""),
        "image without encoder": (S(parts=[P(image=_png())]), code.FAILED_PRECONDITION, "no encoder"),
        "unknown model id": (S(parts=[P(model_id="no-such-model")]), code.NOT_FOUND, "no-such-model"),
        "unknown method": (S(parts=[V(v)], method=99), code.INVALID_ARGUMENT, "unknown method"),
        "model id with mgf": (S(parts=[P(model_id=small.ids[0])], method=search_pb2.MGF), code.INVALID_ARGUMENT, "FRECHET"),
        "frechet on a vector": (S(parts=[V(v)], method=search_pb2.FRECHET), code.INVALID_ARGUMENT, "FRECHET"),
        "top_k zero": (S(parts=[V(v)], top_k=0), code.INVALID_ARGUMENT, "top_k"),
        "top_k negative": (S(parts=[V(v)], top_k=-3), code.INVALID_ARGUMENT, "top_k"),
        "top_k huge": (S(parts=[V(v)], top_k=10**9), code.INVALID_ARGUMENT, "top_k"),
        "negative weight": (S(parts=[V(v, -1.0)]), code.INVALID_ARGUMENT, "weight"),
        "huge candidates": (S(parts=[V(v)], candidates_per_shard=10**8), code.INVALID_ARGUMENT, "candidates_per_shard"),
    }


def test_bad_input_gets_the_documented_code_and_the_service_keeps_serving(served) -> None:
    cluster, _, small = served
    good = search_pb2.SearchRequest(parts=[vector_part(small.features[1][0])], top_k=3)
    for name, (request, code, fragment) in bad_requests(small).items():
        with pytest.raises(grpc.RpcError) as caught:
            cluster.gateway.Search(request, timeout=10)
        assert caught.value.code() == code, f"{name}: {caught.value.code()} {caught.value.details()}"
        assert fragment in (caught.value.details() or ""), f"{name}: {caught.value.details()}"
        assert "BytesIO" not in (caught.value.details() or ""), name
        assert len(cluster.gateway.Search(good, timeout=10).hits) == 3, f"not serving after {name}"


def test_an_expired_deadline_is_deadline_exceeded(served) -> None:
    """A 1 us deadline. gRPC checks deadlines on a millisecond timer, so an in-process answer that
    takes under a millisecond can still beat it: the call is retried until one expires, and the
    only error allowed is DEADLINE_EXCEEDED."""
    cluster, _, small = served
    request = search_pb2.SearchRequest(parts=[vector_part(small.features[1][0])])
    failure = None
    for _ in range(200):
        try:
            cluster.gateway.Search(request, timeout=1e-6)
        except grpc.RpcError as exc:
            failure = exc
            break
    assert failure is not None, "200 searches with a 1 us deadline all succeeded"
    assert failure.code() == grpc.StatusCode.DEADLINE_EXCEEDED, failure.details()
    assert len(cluster.gateway.Search(search_pb2.SearchRequest(parts=[vector_part(small.features[1][0])]), timeout=10).hits) == 10


def test_other_rpcs_refuse_bad_input(served) -> None:
    cluster, _, _ = served
    code = grpc.StatusCode
    for call, request, expected in [
        (cluster.gateway.GetModel, search_pb2.GetModelRequest(id="nope"), code.NOT_FOUND),
        (cluster.gateway.GetModel, search_pb2.GetModelRequest(), code.INVALID_ARGUMENT),
        (cluster.gateway.ListModels, search_pb2.ListModelsRequest(page_size=5000), code.INVALID_ARGUMENT),
        (cluster.gateway.SampleImages, search_pb2.SampleImagesRequest(model_id="nope", count=1), code.NOT_FOUND),
        (cluster.gateway.SampleImages, search_pb2.SampleImagesRequest(model_id="x", count=0), code.INVALID_ARGUMENT),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=10)
        assert caught.value.code() == expected, caught.value.details()


def test_every_server_answers_health_checks_and_reflection(served) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    cluster, _, _ = served
    # The gateway's channel reaches its server; the shards' through the pool.
    channels = [cluster.channel] + [c for replicas in cluster.pool.channels for c in replicas]
    for ch in channels:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        answers = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for a in answers for s in a.list_services_response.service}
        assert "grpc.health.v1.Health" in names
        assert names & {"modelverse.v1.SearchService", "modelverse.v1.ShardService"}


def test_stages_are_measured_and_logs_are_json(served) -> None:
    import json
    import logging

    from prometheus_client import REGISTRY

    from modelverse.serving.logs import JsonFormatter

    cluster, _, small = served
    cluster.gateway.Search(search_pb2.SearchRequest(parts=[vector_part(small.features[6][0])], method=search_pb2.GAUSSIAN))
    for service, stage in [("gateway", "encode"), ("gateway", "recall"), ("gateway", "merge"),
                           ("shard", "recall"), ("shard", "rerank")]:
        count = REGISTRY.get_sample_value("modelverse_stage_seconds_count", {"service": service, "stage": stage})
        assert count and count > 0, (service, stage)
    assert REGISTRY.get_sample_value("modelverse_requests_total", {"service": "gateway", "rpc": "Search", "code": "OK"}) > 0
    record = logging.LogRecord("modelverse.gateway", logging.INFO, __file__, 1, "Search", None, None)
    record.code, record.ms = "OK", 1.5
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "Search" and entry["code"] == "OK" and entry["ms"] == 1.5 and entry["level"] == "info"
