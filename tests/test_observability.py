"""Request ids and traces across the gateway and the shards (real gRPC servers on loopback).

- The caller's ``x-request-id`` (or one the gateway makes) reaches the shards and every log line
  written for the request, on the gateway and on the shards, and comes back in the answer's
  initial metadata.
- With an exporter configured, a search is one OpenTelemetry trace: the gateway's server span,
  a client span per shard attempt, and each shard's server span under its attempt.
"""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from modelverse.serving.request_context import REQUEST_ID_HEADER, RequestIdLogFilter
from modelverse.serving.tracing import Tracing
from modelverse.v1 import search_pb2
from serving_fixtures import build_store, start_in_process


class Records(logging.Handler):
    """Every record that reaches the root logger, after the request-id filter (as logs.configure)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdLogFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture()
def records():
    handler = Records()
    root, requests = logging.getLogger(), logging.getLogger("modelverse")
    old_level = requests.level
    root.addHandler(handler)
    requests.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    requests.setLevel(old_level)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("observability")
    _, small = build_store(root / "store", count=12)
    return root, small


@pytest.fixture(scope="module")
def served(store):
    root, small = store
    cluster = start_in_process(root / "store", root / "index", shards=2)
    yield cluster, small
    cluster.close()


def vector_request(small, top_k: int = 5) -> search_pb2.SearchRequest:
    values = np.asarray(small.features[0][:10].mean(axis=0), np.float32).tolist()
    return search_pb2.SearchRequest(parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=values))], top_k=top_k)


def lines_of(records, request_id: str) -> list[logging.LogRecord]:
    return [r for r in records if getattr(r, "request_id", None) == request_id]


def test_the_callers_request_id_reaches_the_shards_logs_and_comes_back(served, records) -> None:
    cluster, small = served
    answer, call = cluster.gateway.Search.with_call(vector_request(small), metadata=[(REQUEST_ID_HEADER, "req-42.a")],
                                                    timeout=30)
    assert answer.hits
    assert (REQUEST_ID_HEADER, "req-42.a") in tuple(call.initial_metadata())
    mine = lines_of(records, "req-42.a")
    services = sorted(getattr(r, "service", "") for r in mine if r.name == "modelverse.requests")
    assert services.count("gateway") == 1 and services.count("shard") >= 2  # Recall on each shard
    # A log line the gateway writes inside the request (a refusal) carries the id too.
    bad = search_pb2.SearchRequest(parts=[search_pb2.QueryPart(text="x")], top_k=0)
    with pytest.raises(grpc.RpcError):
        cluster.gateway.Search(bad, metadata=[(REQUEST_ID_HEADER, "req-43")], timeout=30)
    assert any(r.name == "modelverse.gateway" and r.getMessage() == "Search" for r in lines_of(records, "req-43"))


def test_a_request_id_is_made_when_none_or_an_unusable_one_is_sent(served, records) -> None:
    cluster, small = served
    made = []
    for metadata in ([], [(REQUEST_ID_HEADER, "x" * 5000)], [(REQUEST_ID_HEADER, "a b/c")]):
        _, call = cluster.gateway.Search.with_call(vector_request(small), metadata=metadata, timeout=30)
        request_id = dict(call.initial_metadata())[REQUEST_ID_HEADER]
        assert 0 < len(request_id) <= 128 and request_id not in ("x" * 5000, "a b/c")
        assert len(lines_of(records, request_id)) >= 3  # the gateway's and both shards' lines
        made.append(request_id)
    assert len(set(made)) == 3


def test_a_search_is_one_trace_across_gateway_and_shards(store) -> None:
    root, small = store
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    cluster = start_in_process(root / "store", root / "index-traced", shards=2, tracing=Tracing(provider))
    try:
        cluster.gateway.Search(vector_request(small), timeout=30)  # the first also asks Describe
        exporter.clear()
        cluster.gateway.Search(vector_request(small), timeout=30)
    finally:
        cluster.close()
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    gateway = [s for s in spans if s.kind == SpanKind.SERVER and s.name.endswith("SearchService/Search")]
    assert len(gateway) == 1
    trace_id = gateway[0].context.trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}
    attempts = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert sorted(s.name for s in attempts) == ["shard 0 Recall", "shard 1 Recall"]
    assert all(s.parent.span_id == gateway[0].context.span_id for s in attempts)
    shard_spans = [s for s in spans if s.kind == SpanKind.SERVER and s.name.endswith("ShardService/Recall")]
    assert len(shard_spans) == 2
    # Each shard's span is the child of the attempt that called it (the context crossed the wire).
    assert sorted(by_id[s.parent.span_id].attributes["modelverse.shard"] for s in shard_spans) == [0, 1]


def test_tracing_is_on_only_when_the_environment_names_an_exporter(monkeypatch) -> None:
    from modelverse.serving.tracing import from_environment

    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not from_environment("gateway").enabled  # the default: no collector needed
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    console = from_environment("gateway")
    assert console.enabled and len(console.server_interceptors()) == 1
    console.shutdown()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not from_environment("gateway").enabled
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")  # an endpoint alone turns OTLP on
    otlp = from_environment("shard")
    assert otlp.enabled and otlp.provider.resource.attributes["service.name"] == "modelverse-shard"
    otlp.shutdown()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(SystemExit, match="otlp, console and none"):
        from_environment("gateway")
