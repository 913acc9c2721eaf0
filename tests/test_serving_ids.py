"""Ids and page tokens at the gateway (issue 14, section 4): checked on every RPC by the store's
rule, never echoed unbounded, bogus page tokens refused. Real gRPC servers on loopback."""

from __future__ import annotations

import grpc
import pytest
from serving_fixtures import build_store, start_in_process

from modelverse.client import connect
from modelverse.serving.gateway.ids import page_token
from modelverse.v1 import search_pb2, shard_pb2_grpc

LONG_IDS = {"20 kB": "x" * 20_000, "201 characters": "y" * 201, "1 MB": "z" * 1_000_000}
BAD_IDS = {"spaces around": " a ", "control character": "a\x00b", "dot-dot": ".."}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("ids")
    _, small = build_store(root / "store", count=12)
    cluster = start_in_process(root / "store", root / "index", shards=2, max_message_bytes=4 * 1024 * 1024)
    yield cluster, small
    cluster.close()


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def calls_with_id(stub, model_id: str):
    S, P = search_pb2.SearchRequest, search_pb2.QueryPart
    return {
        "GetModel": lambda: stub.GetModel(search_pb2.GetModelRequest(id=model_id), timeout=10),
        "Search by model id": lambda: stub.Search(S(parts=[P(model_id=model_id)]), timeout=10),
        "SampleImages": lambda: stub.SampleImages(search_pb2.SampleImagesRequest(model_id=model_id, count=1), timeout=10),
        "GetThumbnails": lambda: stub.GetThumbnails(search_pb2.GetThumbnailsRequest(model_id=model_id), timeout=10),
    }


@pytest.mark.parametrize("name", [*LONG_IDS, *BAD_IDS])
def test_bad_ids_are_invalid_argument_with_a_short_message_on_every_rpc(served, name) -> None:
    cluster, small = served
    model_id = {**LONG_IDS, **BAD_IDS}[name]
    for rpc, call in calls_with_id(cluster.gateway, model_id).items():
        error = refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (rpc, error.code(), error.details()[:200])
        assert len(error.details()) < 500, rpc
        # ...and the gateway keeps answering.
        assert cluster.gateway.GetModel(search_pb2.GetModelRequest(id=small.ids[0]), timeout=10).id == small.ids[0]


def test_unknown_but_valid_ids_are_not_found(served) -> None:
    cluster, _ = served
    for rpc, call in calls_with_id(cluster.gateway, "w" * 200).items():
        error = refused(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND, (rpc, error.code())
        assert len(error.details()) < 500


def test_a_shard_never_echoes_a_huge_id_whole(served) -> None:
    """Callers other than the gateway reach a shard unchecked: its NOT_FOUND stays short, so the
    answer is NOT_FOUND, not a transport failure (RESOURCE_EXHAUSTED) mistaken for a dead replica."""
    cluster, _ = served
    with connect(cluster.pool.addresses[0][0], options=[("grpc.max_send_message_length", 4 << 20)]) as channel:
        shard = shard_pb2_grpc.ShardServiceStub(channel)
        error = refused(lambda: shard.GetModel(search_pb2.GetModelRequest(id="q" * 20_000), timeout=10))
    assert error.code() == grpc.StatusCode.NOT_FOUND and len(error.details()) < 500


@pytest.mark.parametrize("token", ["garbage", "p1.", "p1.!!!!", "p1." + "A" * 5000, "x" * 20_000,
                                   "p1." + page_token("a\x00b")[3:], "some-model-id"])
def test_bogus_page_tokens_are_invalid_argument(served, token) -> None:
    cluster, _ = served
    error = refused(lambda: cluster.gateway.ListModels(search_pb2.ListModelsRequest(page_size=5, page_token=token), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in error.details()
    assert len(error.details()) < 500


def test_issued_page_tokens_page_through_every_model_once(served) -> None:
    cluster, small = served
    seen, token, pages = [], "", 0
    while True:
        page = cluster.gateway.ListModels(search_pb2.ListModelsRequest(page_size=5, page_token=token), timeout=10)
        seen += [m.id for m in page.models]
        pages += 1
        token = page.next_page_token
        if not token:
            break
        assert token.startswith("p1.") and token not in small.ids  # opaque, not a raw id
    assert seen == sorted(small.ids) and pages == 3
