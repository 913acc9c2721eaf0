"""The cluster as processes: shards killed under load, live adds and removes, `cluster up/down`.

Every part is a real process on loopback (2 shards x 2 replicas, gateway, admin).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from modelverse.core.stats import stats_from_features
from modelverse.serving.admin.service import wait_for_job
from modelverse.serving.partition import shard_of
from modelverse.serving.loopback_cluster import Cluster, ClusterSpec, health_check
from modelverse.synthetic import SyntheticZoo
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2, search_pb2_grpc
from serving_fixtures import build_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    _, small = build_store(root / "store", count=30)
    with Cluster(ClusterSpec(store=root / "store", run_dir=root / "run", shards=2, replicas=2)) as running:
        yield running, small


def stubs(running):
    search = search_pb2_grpc.SearchServiceStub(running.channel(running.gateway, running.read_key))
    admin = admin_pb2_grpc.AdminServiceStub(running.channel(running.admin, running.admin_key))
    return search, admin


def vector_request(values: np.ndarray, top_k: int = 10) -> search_pb2.SearchRequest:
    return search_pb2.SearchRequest(
        parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=np.asarray(values, np.float32).tolist()))],
        top_k=top_k, candidates_per_shard=1000)


class Load:
    """Searches in a loop on a thread, recording every outcome."""

    def __init__(self, search, request) -> None:
        self.search, self.request = search, request
        self.outcomes: list[tuple[float, object]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.outcomes.append((started, self.search.Search(self.request, timeout=10)))
            except grpc.RpcError as exc:
                self.outcomes.append((started, exc))

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_killed_shards_are_answered_by_replicas_then_flagged_partial_then_recovered(cluster) -> None:
    running, small = cluster
    search, _ = stubs(running)
    request = vector_request(small.features[4][:10].mean(axis=0))
    full = [h.model.id for h in search.Search(request, timeout=10).hits]
    with Load(search, request) as load:
        time.sleep(0.3)
        running.kill_shard(0, 0)  # one replica of shard 0 down: the other answers
        time.sleep(0.5)
        replica_only = search.Search(request, timeout=10)
        running.kill_shard(0, 1)  # shard 0 entirely down: partial answers
        time.sleep(0.5)
        partial = search.Search(request, timeout=10)
        running.restart_shard(0, 0)
        deadline = time.monotonic() + 15
        while search.Search(request, timeout=10).partial and time.monotonic() < deadline:
            time.sleep(0.1)
        recovered = search.Search(request, timeout=10)
        running.restart_shard(0, 1)
    errors = [o for _, o in load.outcomes if isinstance(o, grpc.RpcError)]
    assert errors == [], [(e.code(), e.details()) for e in errors[:3]]
    assert len(load.outcomes) > 10
    assert not replica_only.partial and [h.model.id for h in replica_only.hits] == full
    assert partial.partial and list(partial.missing_shards) == [0]
    # Shard 1's models still come back, ranked as in the full answer.
    partial_ids = [h.model.id for h in partial.hits]
    assert all(shard_of(m, 2) == 1 for m in partial_ids)
    from_shard_1 = [m for m in full if shard_of(m, 2) == 1]
    assert partial_ids[: len(from_shard_1)] == from_shard_1
    assert not recovered.partial and [h.model.id for h in recovered.hits] == full


def test_no_shard_answering_is_unavailable(cluster) -> None:
    running, small = cluster
    search, _ = stubs(running)
    for s in range(2):
        for r in range(2):
            running.kill_shard(s, r)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            search.Search(vector_request(small.features[0][0]), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        for s in range(2):
            for r in range(2):
                running.restart_shard(s, r)
    # The gateway's channels reconnect with a backoff of at most 1 s (RECONNECT_OPTIONS).
    request = vector_request(small.features[0][0])
    deadline = time.monotonic() + 15
    while search.Search(request, timeout=10).partial and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not search.Search(request, timeout=10).partial


def test_live_adds_and_removes_under_concurrent_searches(cluster) -> None:
    running, small = cluster
    search, admin = stubs(running)
    zoo = SyntheticZoo(dim=64, latent_dim=24, seed=99)
    new_models = zoo.models(4)
    # Queries aimed at the models that will come and go, so they would be returned if present.
    doomed = small.ids[10:14]
    requests = [vector_request(small.features[10 + i][:20].mean(axis=0), top_k=5) for i in range(4)]
    loads = [Load(search, r) for r in requests]
    removed_at: dict[str, float] = {}
    for load in loads:
        load.__enter__()
    try:
        for i, model in enumerate(new_models):
            features = model.sample_features(200, seed=i).astype("<f4")
            job = admin.RegisterModel(admin_pb2.RegisterModelRequest(
                metadata=search_pb2.Model(id=f"live-{i}", tags=["cat"], family="gan"),
                features=admin_pb2.FeatureMatrix(rows=200, dim=64, float32_le=features.tobytes())))
            assert wait_for_job(admin, job.id).state == admin_pb2.SUCCEEDED
            # A finished job's model is searchable at once: it is its own nearest model.
            mean = stats_from_features(features.astype(np.float64)).mean
            hits = search.Search(vector_request(mean, top_k=1), timeout=10).hits
            assert hits[0].model.id == f"live-{i}"
        for model_id in doomed:
            answer = admin.RemoveModel(admin_pb2.RemoveModelRequest(id=model_id), timeout=30)
            assert answer.shards_synced == 4
            removed_at[model_id] = time.monotonic()
            time.sleep(0.2)
    finally:
        for load in loads:
            load.__exit__()
    outcomes = [o for load in loads for o in load.outcomes]
    errors = [o for _, o in outcomes if isinstance(o, grpc.RpcError)]
    assert errors == [], [(e.code(), e.details()) for e in errors[:3]]
    late = [
        (model_id, started - removed_at[model_id])
        for load in loads for started, response in load.outcomes
        for model_id in (h.model.id for h in response.hits)
        if model_id in removed_at and started > removed_at[model_id]
    ]
    assert late == []
    returned_before = {h.model.id for load in loads for _, r in load.outcomes for h in r.hits}
    assert set(doomed) <= returned_before  # the queries did find them while they existed
    with pytest.raises(grpc.RpcError) as caught:
        admin.RemoveModel(admin_pb2.RemoveModelRequest(id=doomed[0]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        admin.RegisterModel(admin_pb2.RegisterModelRequest(
            metadata=search_pb2.Model(id="bad"), features=admin_pb2.FeatureMatrix(rows=2, dim=3, float32_le=b"\0" * 24)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cluster_up_detach_and_down_from_the_command_line(tmp_path) -> None:
    build_store(tmp_path / "store", count=6)
    run_dir = tmp_path / "run"
    cli = [sys.executable, "-m", "modelverse.cli.main", "cluster"]
    up = subprocess.run([*cli, "up", "--store", str(tmp_path / "store"), "--run-dir", str(run_dir), "--shards", "1",
                         "--port", "0", "--admin-port", "0", "--web-port", "0", "--detach"], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    gateway = up.stdout.split()[1]
    assert health_check(gateway)
    down = subprocess.run([*cli, "down", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=60)
    # one shard, the gateway, the admin and the web page
    assert down.returncode == 0 and "stopped 4 process(es)" in down.stdout, down.stdout + down.stderr
    assert not health_check(gateway, timeout=1.0)
    again = subprocess.run([*cli, "down", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "no running cluster" in again.stderr


def test_cluster_up_in_the_foreground_stops_on_ctrl_c(tmp_path) -> None:
    import signal

    build_store(tmp_path / "store", count=6)
    up = subprocess.Popen(
        [sys.executable, "-m", "modelverse.cli.main", "cluster", "up", "--store", str(tmp_path / "store"),
         "--run-dir", str(tmp_path / "run"), "--shards", "1", "--port", "0", "--admin-port", "0", "--web-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in up.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    gateway = lines[0].split()[1]
    assert health_check(gateway)
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=30) == 0
    assert "cluster stopped" in up.stdout.read()
    assert not health_check(gateway, timeout=1.0)
    assert not (tmp_path / "run" / "cluster.json").exists()
