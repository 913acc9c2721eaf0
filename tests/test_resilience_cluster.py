"""Hung replicas, hung shards and overload, on a cluster of processes (2 shards x 2 replicas,
gateway, admin on loopback). A hung process is a real one stopped with SIGSTOP: it keeps its
connections open and answers nothing, which is what a stuck or swapping node looks like.
"""

from __future__ import annotations

import socket
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from modelverse.serving.loopback_cluster import Cluster, ClusterSpec
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2, search_pb2_grpc
from serving_fixtures import build_store

pytestmark = pytest.mark.slow

GATEWAY_WORKERS = 2
GATEWAY_QUEUE = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("resilience")
    _, small = build_store(root / "store", count=30)
    spec = ClusterSpec(store=root / "store", run_dir=root / "run", shards=2, replicas=2,
                       gateway={"workers": GATEWAY_WORKERS, "queue": GATEWAY_QUEUE, "metrics_port": free_port()},
                       admin={"metrics_port": free_port()})
    with Cluster(spec) as running:
        yield running, small


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """A process's /metrics as {(name, labels): value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture()
def search(cluster):
    running, _ = cluster
    with running.channel(running.gateway, running.read_key) as channel:
        yield search_pb2_grpc.SearchServiceStub(channel)


@pytest.fixture()
def paused(cluster):
    """Pause replicas with ``paused(shard, replica)``; every one is resumed after the test."""
    running, _ = cluster
    stopped: list[tuple[int, int]] = []

    def pause(shard: int, replica: int) -> None:
        running.pause_shard(shard, replica)
        stopped.append((shard, replica))

    yield pause
    for shard, replica in stopped:
        running.resume_shard(shard, replica)


def vector_request(values: np.ndarray) -> search_pb2.SearchRequest:
    return search_pb2.SearchRequest(
        parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=np.asarray(values, np.float32).tolist()))],
        top_k=10, candidates_per_shard=1000)


def gateway_health(running) -> int:
    with running.channel(running.gateway) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_hung_replica_costs_no_search(cluster, search, paused) -> None:
    """One of shard 0's two replicas hung: every search is answered in full within its deadline
    (the other replica answers: a hedge, or a failover when the hung one's share runs out)."""
    _, small = cluster
    request = vector_request(small.features[3][:10].mean(axis=0))
    full = [h.model.id for h in search.Search(request, timeout=10).hits]
    running, _ = cluster
    before = scrape(running.spec.gateway["metrics_port"])
    paused(0, 0)
    answers = [search.Search(request, timeout=2.0) for _ in range(20)]  # raises on any failure
    assert all(not a.partial for a in answers)
    assert all([h.model.id for h in a.hits] == full for a in answers)
    after = scrape(running.spec.gateway["metrics_port"])
    # The hung replica was hedged or failed over from, not waited for.
    rescued = sum(total(after, "modelverse_shard_attempts_total", why=w) - total(before, "modelverse_shard_attempts_total", why=w)
                  for w in ("hedge", "failover"))
    assert rescued >= 1
    # The admin sees it too: down (no Describe answer), the others up and in sync.
    admin = scrape(running.spec.admin["metrics_port"])
    assert admin[("modelverse_shard_up", frozenset({("shard", "0"), ("replica", "0")}))] == 0
    assert admin[("modelverse_shard_up", frozenset({("shard", "0"), ("replica", "1")}))] == 1
    assert admin[("modelverse_store_models", frozenset())] == 30
    assert total(admin, "modelverse_shard_sync_lag_models") == 0


def test_a_hung_shard_gives_partial_answers_within_the_deadline(cluster, search, paused) -> None:
    _, small = cluster
    request = vector_request(small.features[5][:10].mean(axis=0))
    paused(0, 0)
    paused(0, 1)
    for _ in range(3):
        answer = search.Search(request, timeout=1.5)
        assert answer.partial and list(answer.missing_shards) == [0]
        assert answer.hits  # shard 1's models


def test_overload_is_shed_at_once_never_at_the_deadline(cluster, search, paused) -> None:
    """A burst of 60 searches at a gateway with 2 workers and 2 queue places, each search slow
    (shard 0 hangs: an answer takes most of the deadline): some are answered, the others are
    refused RESOURCE_EXHAUSTED on arrival, none runs out its deadline."""
    running, small = cluster
    request = vector_request(small.features[1][:10].mean(axis=0))
    paused(0, 0)
    paused(0, 1)
    deadline = 2.0
    assert search.Search(request, timeout=deadline).partial  # the gateway learns how long a search takes
    calls = [search.Search.future(request, timeout=deadline) for _ in range(60)]
    outcomes = []
    for call in calls:
        try:
            outcomes.append(("OK", call.result()))
        except grpc.RpcError as exc:
            outcomes.append((exc.code().name, exc.details()))
    codes = [code for code, _ in outcomes]
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, sorted(set(codes))
    answered, shed = codes.count("OK"), codes.count("RESOURCE_EXHAUSTED")
    assert 1 <= answered <= GATEWAY_WORKERS + GATEWAY_QUEUE and shed >= 60 - GATEWAY_WORKERS - GATEWAY_QUEUE
    refusals = {details for code, details in outcomes if code == "RESOURCE_EXHAUSTED"}
    # refused on arrival: by admission control, or by gRPC's own bound on calls in the process
    assert all("overloaded" in d or "Concurrent RPC limit exceeded" in d for d in refusals), refusals
    assert all(answer.partial for code, answer in outcomes if code == "OK")
    # Refused by admission control because they could not be answered in time (not queued to die).
    assert total(scrape(running.spec.gateway["metrics_port"]), "modelverse_shed_total", reason="deadline") >= 1


def test_gateway_not_serving_while_no_shard_answers(cluster, search, paused) -> None:
    running, small = cluster
    assert gateway_health(running) == health_pb2.HealthCheckResponse.SERVING
    for shard in range(2):
        for replica in range(2):
            paused(shard, replica)
    assert wait_for(lambda: gateway_health(running) == health_pb2.HealthCheckResponse.NOT_SERVING)
    with pytest.raises(grpc.RpcError) as caught:
        search.Search(vector_request(small.features[0][0]), timeout=1.5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    for shard in range(2):
        for replica in range(2):
            running.resume_shard(shard, replica)
    assert wait_for(lambda: gateway_health(running) == health_pb2.HealthCheckResponse.SERVING)
    assert not search.Search(vector_request(small.features[0][0]), timeout=5).partial


def test_removal_with_a_hung_replica_answers_within_its_deadline(cluster, paused) -> None:
    """The admin waits for a hung replica's sync only within the caller's deadline; the replica
    catches up from the store once it runs again (the admin's sync lag returns to 0)."""
    running, small = cluster
    paused(0, 1)
    with running.channel(running.admin, running.admin_key) as channel:
        answer = admin_pb2_grpc.AdminServiceStub(channel).RemoveModel(
            admin_pb2.RemoveModelRequest(id=small.ids[7]), timeout=3.0)
    assert answer.shards_synced == 3  # of 4 replicas: all but the hung one
    running.resume_shard(0, 1)

    def in_sync() -> bool:
        metrics = scrape(running.spec.admin["metrics_port"])
        return (metrics[("modelverse_store_models", frozenset())] == 29
                and total(metrics, "modelverse_shard_up") == 4 and total(metrics, "modelverse_shard_sync_lag_models") == 0)

    assert wait_for(in_sync), {k: v for k, v in scrape(running.spec.admin["metrics_port"]).items()
                               if k[0].startswith(("modelverse_shard", "modelverse_store"))}
