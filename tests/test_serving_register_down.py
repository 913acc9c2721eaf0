"""RegisterModel while the model's shard is down (issue 14, section 4): the job succeeds (the model
is stored) and says that it is not yet served on that shard; the shard serves it once back.
Real processes: 2 shards, gateway, admin."""

from __future__ import annotations

import numpy as np
import pytest
from serving_fixtures import build_store

from modelverse.serving.admin.service import wait_for_job
from modelverse.serving.loopback_cluster import Cluster, ClusterSpec
from modelverse.serving.partition import shard_of
from modelverse.store.directory import DirectoryStore
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2, search_pb2_grpc

pytestmark = pytest.mark.slow


def id_on_shard(shard: int, prefix: str) -> str:
    return next(f"{prefix}/{i}" for i in range(1000) if shard_of(f"{prefix}/{i}", 2) == shard)


def register(admin, model_id: str, encoder: str) -> admin_pb2.Job:
    features = np.random.default_rng(len(model_id)).standard_normal((50, 64)).astype("<f4")
    job = admin.RegisterModel(admin_pb2.RegisterModelRequest(
        metadata=search_pb2.Model(id=model_id), encoder=encoder,
        features=admin_pb2.FeatureMatrix(rows=50, dim=64, float32_le=features.tobytes())), timeout=30)
    return wait_for_job(admin, job.id, timeout=60)


def test_a_model_registered_while_its_shard_is_down_is_reported_not_yet_served(tmp_path) -> None:
    store, _ = build_store(tmp_path / "store", count=6)
    with Cluster(ClusterSpec(store=tmp_path / "store", run_dir=tmp_path / "run", shards=2)) as running:
        admin = admin_pb2_grpc.AdminServiceStub(running.channel(running.admin, running.admin_key))
        search = search_pb2_grpc.SearchServiceStub(running.channel(running.gateway, running.read_key))
        down, up = 1, 0
        running.kill_shard(down)
        stranded, served = id_on_shard(down, "late"), id_on_shard(up, "late")
        job = register(admin, stranded, store.config.encoder)
        assert job.state == admin_pb2.SUCCEEDED, job
        assert f"not yet served on shard {down}" in job.notice
        assert admin.GetJob(admin_pb2.GetJobRequest(id=job.id), timeout=10).notice == job.notice
        assert stranded in DirectoryStore.open(tmp_path / "store")
        other = register(admin, served, store.config.encoder)
        assert other.state == admin_pb2.SUCCEEDED and other.notice == ""
        assert search.GetModel(search_pb2.GetModelRequest(id=served), timeout=10).id == served
        running.restart_shard(down)
        assert search.GetModel(search_pb2.GetModelRequest(id=stranded), timeout=10).id == stranded
