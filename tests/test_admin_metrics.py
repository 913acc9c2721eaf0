"""The admin's Prometheus metrics (jobs by state, models, store generation, shard sync lag) and
its bounded queue of features jobs, against real shard servers and a real admin server."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modelverse.serving.admin.admin_metrics import AdminCollector
from modelverse.serving.admin.feature_jobs import MAX_PENDING_JOBS
from modelverse.serving.admin.service import AdminServicer, wait_for_job
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.grpc_server import build_server
from modelverse.store.directory import DirectoryStore
from modelverse.synthetic import SyntheticZoo
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2
from serving_fixtures import build_store, start_in_process


@pytest.fixture()
def admin(tmp_path):
    build_store(tmp_path / "store", count=10)
    cluster = start_in_process(tmp_path / "store", tmp_path / "index", shards=2)
    servicer = AdminServicer(DirectoryStore.open(tmp_path / "store"), ShardPool(cluster.pool.addresses))
    server, port, _ = build_server([lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(servicer, s)],
                                   [admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name])
    registry = CollectorRegistry()
    registry.register(AdminCollector(servicer.store, servicer.pool.stubs, servicer.job_counts))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield admin_pb2_grpc.AdminServiceStub(channel), servicer, cluster, registry
    channel.close()
    server.stop(grace=None)
    servicer.shutdown()
    servicer.pool.close()
    cluster.close()


def features_request(model_id: str, seed: int) -> admin_pb2.RegisterModelRequest:
    model = SyntheticZoo(dim=64, latent_dim=24, seed=seed).models(1)[0]
    features = model.sample_features(50, seed=seed).astype("<f4")
    return admin_pb2.RegisterModelRequest(metadata=search_pb2.Model(id=model_id),
                                          features=admin_pb2.FeatureMatrix(rows=50, dim=64, float32_le=features.tobytes()))


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_metrics_follow_jobs_models_and_shards(admin) -> None:
    stub, servicer, cluster, registry = admin
    assert value(registry, "modelverse_store_models") == 10
    assert value(registry, "modelverse_store_generation") is not None
    served = [value(registry, "modelverse_shard_models", shard=str(s), replica="0") for s in range(2)]
    assert sum(served) == 10
    assert all(value(registry, "modelverse_shard_sync_lag_models", shard=str(s), replica="0") == 0 for s in range(2))

    job = stub.RegisterModel(features_request("fresh/one", seed=7), timeout=30)
    assert wait_for_job(stub, job.id).state == admin_pb2.SUCCEEDED
    assert value(registry, "modelverse_store_models") == 11
    assert value(registry, "modelverse_admin_jobs", kind="features", state="succeeded") == 1
    assert all(value(registry, "modelverse_shard_sync_lag_models", shard=str(s), replica="0") == 0 for s in range(2))

    # A replica that stops answering: down, and no lag figure for it.
    cluster.servers[1].stop(grace=None)
    assert value(registry, "modelverse_shard_up", shard="1", replica="0") == 0
    assert value(registry, "modelverse_shard_up", shard="0", replica="0") == 1
    assert value(registry, "modelverse_shard_sync_lag_models", shard="1", replica="0") is None


def test_the_features_job_queue_is_bounded(admin) -> None:
    stub, servicer, _, registry = admin
    accepted = []
    with servicer.write_lock:  # the running job waits to write: the others stay queued
        accepted.append(stub.RegisterModel(features_request("queued/0", seed=0), timeout=30))
        while servicer.jobs.get(accepted[0].id).state == "pending":
            time.sleep(0.01)  # until the first job has started and holds the one job thread
        for i in range(1, MAX_PENDING_JOBS + 1):
            accepted.append(stub.RegisterModel(features_request(f"queued/{i}", seed=i), timeout=30))
        with pytest.raises(grpc.RpcError) as caught:
            stub.RegisterModel(features_request("one/too/many", seed=99), timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"at most {MAX_PENDING_JOBS}" in caught.value.details()
        assert value(registry, "modelverse_admin_jobs", kind="features", state="pending") == MAX_PENDING_JOBS
    # Nothing accepted was lost: every queued job runs once the lock is free.
    assert all(wait_for_job(stub, job.id).state == admin_pb2.SUCCEEDED for job in accepted)
    assert value(registry, "modelverse_store_models") == 10 + len(accepted)
    assert np.isclose(value(registry, "modelverse_admin_jobs", kind="features", state="succeeded"), len(accepted))
