"""Declarative specs on the real fleet and through the admin: a redis-server on a free port and one
`modelverse worker` process (Celery, prefork) index an exported model as the embedded run does,
fail bad files and directories with reasons naming them and keep serving (a missing prompt file:
tests/test_diffusers_generator.py); RegisterModel takes
the same specs (a model card fills the metadata) and refuses bad ones with INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from fleet_support import ENCODER_SPEC
from test_serving_register import SAMPLING, code_of, embedded_jobs, make_store, start_serving

from modelverse.bench.tiny_pipelines import save_broken_torchscript
from modelverse.fleet.config import FleetConfig
from modelverse.fleet.embedded import index_embedded
from modelverse.fleet.job_records import JobState
from modelverse.fleet.local_fleet import RedisServer, start_worker, wait_until
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.requests import ModelRequest, request_for_model_dir
from modelverse.fleet.submit import submit_jobs
from modelverse.serving.admin.service import wait_for_job
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import admin_pb2, search_pb2
from modelverse.zoo import export as zoo_export

pytestmark = pytest.mark.slow

TESTS_DIR = str(Path(__file__).parent)
PLAN = SamplePlan(max_samples=300, chunk_size=100)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zoo_export.export("fashion-dcgan-sneaker", "onnx", tmp_path_factory.mktemp("onnx") / "sneaker").parent


def test_a_celery_worker_indexes_declarative_specs_and_survives_bad_ones(onnx_dir: Path, tmp_path: Path) -> None:
    broken = save_broken_torchscript(tmp_path / "broken")
    good = request_for_model_dir(onnx_dir, {"id": "fleet/sneaker"})
    requests = [
        good,
        ModelRequest(ModelMetadata("bad/shape"), f"torchscript:{broken['wrong_shape']}?latent=8"),
        ModelRequest(ModelMetadata("bad/nan"), f"torchscript:{broken['nan']}?latent=8"),
        ModelRequest(ModelMetadata("bad/pipeline"), f"diffusers:{tmp_path / 'broken'}"),
    ]
    server = RedisServer(tmp_path / "redis").start()
    config = FleetConfig(broker_url=server.url, visibility_timeout_s=30, max_retries=2, retry_backoff_s=0.5)
    worker = start_worker(config, "gen", tmp_path / "logs", pythonpath=[TESTS_DIR])
    try:
        worker.wait_ready()
        store = RedisFleetState.from_url(server.url)
        records = submit_jobs(config, requests, ENCODER_SPEC, PLAN, rank=8)

        def finished() -> bool:
            return all(store.get_job(r.job_id).state.finished for r in records)  # type: ignore[union-attr]
        wait_until(finished, 120, "four jobs to finish", interval_s=0.2)
        done, shape, nan, not_pipeline = (store.get_job(r.job_id) for r in records)
        assert done is not None and done.state is JobState.DONE, done and done.error
        assert shape is not None and f"{broken['wrong_shape']}: the module returned Tensor of shape (2, 3, 8)" in shape.error
        assert nan is not None and f"{broken['nan']} returned non-finite values (NaN or inf)" in nan.error
        assert not_pipeline is not None
        assert f"{tmp_path / 'broken'}: not a diffusers pipeline directory (no model_index.json)" in not_pipeline.error
        assert all(r is not None and r.state is JobState.FAILED for r in (shape, nan, not_pipeline))
        assert worker.process.poll() is None  # the worker serves on
        index_embedded(tmp_path / "embedded", [good], ENCODER_SPEC, PLAN, rank=8, torch_threads=1)
        reference = DirectoryStore.open(tmp_path / "embedded").get_stats("fleet/sneaker")
        np.testing.assert_allclose(store.get_stats("fleet/sneaker").mean, reference.mean, rtol=0, atol=1e-6)
        assert store.get("fleet/sneaker").metadata.name == "Fashion-MNIST sneaker DCGAN"  # from the card
    finally:
        worker.kill()
        server.stop()


@pytest.fixture
def serving(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    make_store(tmp_path / "store")
    serving = start_serving(tmp_path, embedded_jobs(), allow_python=False)
    yield serving
    serving.close()


def test_register_model_takes_declarative_specs_and_reads_the_card(serving, onnx_dir: Path) -> None:  # type: ignore[no-untyped-def]
    spec = request_for_model_dir(onnx_dir).generator  # onnx:/abs/model.onnx?latent=64&...
    job = serving.admin.RegisterModel(admin_pb2.RegisterModelRequest(
        metadata=search_pb2.Model(id="admin/sneaker", tags=["mine"]), generator=spec, sampling=SAMPLING), timeout=30)
    done = wait_for_job(serving.admin, job.id, timeout=60)
    assert done.state == admin_pb2.SUCCEEDED, done.error
    model = serving.cluster.gateway.GetModel(search_pb2.GetModelRequest(id="admin/sneaker"), timeout=10)
    assert model.name == "Fashion-MNIST sneaker DCGAN" and list(model.tags) == ["mine"]  # card, then the caller
    for bad in (f"onnx:{onnx_dir}/missing.onnx", "stylegan:/x.pkl", "onnx:/m.onnx?latent=1&latent=2", "diffusers:"):
        call = lambda bad=bad: serving.admin.RegisterModel(admin_pb2.RegisterModelRequest(
            metadata=search_pb2.Model(id="admin/bad"), generator=bad, sampling=SAMPLING), timeout=10)
        assert code_of(call) == grpc.StatusCode.INVALID_ARGUMENT, bad
