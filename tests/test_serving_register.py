"""RegisterModel with a generator source: the indexing fleet computes, the shards serve.

Everything real: shard and gateway gRPC servers on loopback over a directory store, the admin
service as a gRPC server, small torch generators and encoder (tests/fleet_support.py); the
broker test adds a private redis-server and one `modelverse worker` process (Celery).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from fleet_support import ENCODER_SPEC
from modelverse.core.stats import ModelStats
from modelverse.fleet.config import FleetConfig
from modelverse.fleet.embedded import index_embedded
from modelverse.fleet.job_records import JobState
from modelverse.fleet.local_fleet import RedisServer, WorkerProcess, start_worker, wait_until
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.requests import ModelRequest
from modelverse.fleet.resolve import Runtime
from modelverse.fleet.submit import submit_jobs
from modelverse.serving.admin.generator_jobs import (
    CURSOR_FILE,
    BrokerJobs,
    EmbeddedJobs,
    GeneratorJobs,
)
from modelverse.serving.admin.service import AdminServicer, wait_for_job
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.grpc_server import build_server
from modelverse.serving.inprocess import InProcessCluster, start_in_process
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2

TESTS_DIR = str(Path(__file__).parent)
RANK = 8
# Fixed, small: three chunks of 100 samples; the statistics depend only on (id, version, chunk).
PLAN = SamplePlan(max_samples=300, chunk_size=100)
SAMPLING = admin_pb2.SamplingOptions(samples=300, chunk_size=100, adaptive=False)


def conv(seed: int) -> str:
    return f"py:fleet_support:conv_generator?seed={seed}"


def slow_conv(seed: int, delay_s: float = 0.5) -> str:
    """conv(seed)'s samples, each chunk delayed: RemoveModel lands while the job runs."""
    return f"{conv(seed)}&delay_s={delay_s}"


@dataclass
class Serving:
    store_root: Path
    cluster: InProcessCluster
    admin_server: grpc.Server
    admin: admin_pb2_grpc.AdminServiceStub
    servicer: AdminServicer

    def close(self) -> None:
        self.admin_server.stop(grace=None)
        self.servicer.shutdown()
        self.servicer.pool.close()
        self.cluster.close()


def make_store(root: Path) -> None:
    """A store of the conv encoder's space (d = 24) with two models, made by the embedded fleet."""
    seeded = [ModelRequest(ModelMetadata(f"seed/m{i}", tags=("seed",)), conv(100 + i)) for i in range(2)]
    records = index_embedded(root, seeded, ENCODER_SPEC, PLAN, rank=RANK, keep_covariance=False, torch_threads=1)
    assert all(r.state is JobState.DONE for r in records)


def start_serving(root: Path, make_jobs, allow_python: bool = True) -> Serving:  # type: ignore[no-untyped-def]
    cluster = start_in_process(root / "store", root / "index", shards=2)
    store = DirectoryStore.open(root / "store")
    servicer = AdminServicer(store, ShardPool(cluster.pool.addresses))
    if make_jobs is not None:
        jobs: GeneratorJobs = make_jobs(servicer)
        servicer.attach_fleet(jobs, Runtime(torch_threads=1), allow_python_generators=allow_python)
    server, port, _ = build_server(
        [lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(servicer, s)],
        [admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name],
    )
    admin = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    return Serving(root / "store", cluster, server, admin, servicer)


def embedded_jobs(encoder: str = ENCODER_SPEC):  # type: ignore[no-untyped-def]
    def make(servicer: AdminServicer) -> EmbeddedJobs:
        return EmbeddedJobs(servicer.store, encoder, servicer.sync_shards, servicer.write_lock, Runtime(torch_threads=1))
    return make


def register(admin: admin_pb2_grpc.AdminServiceStub, model_id: str, generator: str, **extra) -> admin_pb2.Job:  # type: ignore[no-untyped-def]
    return admin.RegisterModel(admin_pb2.RegisterModelRequest(
        metadata=search_pb2.Model(id=model_id, tags=["fresh"]), generator=generator,
        sampling=extra.pop("sampling", SAMPLING), **extra), timeout=30)


def top_hit(serving: Serving, model_id: str) -> str:
    """The first hit of a search by the model's own first moment (cosine 1 with itself)."""
    try:
        mean = DirectoryStore.open(serving.store_root).get_stats(model_id).mean
    except KeyError:
        return ""
    answer = serving.cluster.gateway.Search(search_pb2.SearchRequest(
        parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=mean.astype(np.float32).tolist()))],
        method=search_pb2.FIRST_MOMENT, top_k=3), timeout=10)
    assert not answer.partial
    return answer.hits[0].model.id


def reference_stats(root: Path, model_id: str, generator: str) -> ModelStats:
    """The embedded fleet's statistics of the same model, version and chunks, in a fresh store."""
    records = index_embedded(root, [ModelRequest(ModelMetadata(model_id), generator)], ENCODER_SPEC, PLAN,
                             rank=RANK, keep_covariance=False, torch_threads=1)
    assert records[0].state is JobState.DONE
    return DirectoryStore.open(root).get_stats(model_id)


def assert_same_stats(a: ModelStats, b: ModelStats) -> None:
    assert a.count == b.count and a.encoder == b.encoder
    for x, y in [(a.mean, b.mean), (a.compressed.diag, b.compressed.diag), (a.compressed.factor, b.compressed.factor),
                 (a.compressed.woodbury, b.compressed.woodbury)]:
        np.testing.assert_array_equal(x, y)


def code_of(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


# -- embedded: the fleet's work functions inside the admin --------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    root = tmp_path_factory.mktemp("embedded")
    make_store(root / "store")
    serving = start_serving(root, embedded_jobs())
    yield serving
    serving.close()


def test_embedded_job_makes_the_model_searchable_with_the_fleets_statistics(embedded: Serving, tmp_path: Path) -> None:
    job = register(embedded.admin, "new/conv", conv(11))
    assert job.state in (admin_pb2.PENDING, admin_pb2.RUNNING) and job.chunks_max == 3 and job.generator == conv(11)
    done = wait_for_job(embedded.admin, job.id, timeout=60)
    assert done.state == admin_pb2.SUCCEEDED, done.error
    assert (done.chunks_done, done.chunks_planned, done.samples_done, done.samples_used, done.stats_version) == (3, 3, 300, 300, 1)
    assert done.finished_at and done.created_at
    # SUCCEEDED means served: a search started now finds it (its own statistics score best).
    assert top_hit(embedded, "new/conv") == "new/conv"
    model = embedded.cluster.gateway.GetModel(search_pb2.GetModelRequest(id="new/conv"), timeout=10)
    assert list(model.tags) == ["fresh"] and model.stats_version == 1
    served = DirectoryStore.open(embedded.store_root).get_stats("new/conv")
    assert_same_stats(served, reference_stats(tmp_path / "reference", "new/conv", conv(11)))


def test_a_generator_that_raises_fails_its_job_and_the_admin_serves_on(embedded: Serving) -> None:
    job = register(embedded.admin, "broken/raises", "py:fleet_support:raising_generator")
    failed = wait_for_job(embedded.admin, job.id, timeout=60)
    assert failed.state == admin_pb2.FAILED
    assert "chunk 0 of broken/raises: RuntimeError: the sampler ran out of latent codes" in failed.error
    assert failed.finished_at
    # The admin goes on: the next job succeeds, the broken model was never served.
    ok = wait_for_job(embedded.admin, register(embedded.admin, "after/failure", conv(12)).id, timeout=60)
    assert ok.state == admin_pb2.SUCCEEDED, ok.error
    assert "broken/raises" not in DirectoryStore.open(embedded.store_root)
    assert top_hit(embedded, "after/failure") == "after/failure"


def remove(serving: Serving, model_id: str) -> admin_pb2.RemoveModelResponse:
    return serving.admin.RemoveModel(admin_pb2.RemoveModelRequest(id=model_id), timeout=30)


def assert_not_served(serving: Serving, model_id: str) -> None:
    assert model_id not in DirectoryStore.open(serving.store_root)
    assert code_of(lambda: serving.cluster.gateway.GetModel(search_pb2.GetModelRequest(id=model_id), timeout=10)) \
        == grpc.StatusCode.NOT_FOUND


def test_remove_model_cancels_a_running_generator_job(embedded: Serving, tmp_path: Path) -> None:
    jobs = embedded.servicer.generator_jobs
    assert jobs is not None
    # A first registration still running: RemoveModel succeeds (the job is the model's only
    # trace), the job ends FAILED as cancelled, and the model never appears.
    job = register(embedded.admin, "cancel/new", slow_conv(31))
    removed = remove(embedded, "cancel/new")
    assert list(removed.jobs_cancelled) == [job.id]
    done = wait_for_job(embedded.admin, job.id, timeout=30)
    assert done.state == admin_pb2.FAILED and done.error.startswith("cancelled: the model was removed")
    wait_until(lambda: (r := jobs.fleet_record(job.id)) is not None and r.state.finished, 60, "the job's thread")
    assert_not_served(embedded, "cancel/new")
    assert embedded.admin.GetJob(admin_pb2.GetJobRequest(id=job.id), timeout=10).state == admin_pb2.FAILED
    # The same id registered again, from another generator: its own statistics, none of the
    # cancelled job's chunks (same model, same version, same chunk names).
    again = wait_for_job(embedded.admin, register(embedded.admin, "cancel/new", conv(32)).id, timeout=60)
    assert again.state == admin_pb2.SUCCEEDED, again.error
    assert top_hit(embedded, "cancel/new") == "cancel/new"
    assert_same_stats(DirectoryStore.open(embedded.store_root).get_stats("cancel/new"),
                      reference_stats(tmp_path / "reference", "cancel/new", conv(32)))
    # A re-index of a served model, removed while it runs: removed for good.
    reindex = register(embedded.admin, "cancel/new", slow_conv(33), replace=True)
    assert list(remove(embedded, "cancel/new").jobs_cancelled) == [reindex.id]
    wait_until(lambda: (r := jobs.fleet_record(reindex.id)) is not None and r.state.finished, 60, "the re-index")
    assert_not_served(embedded, "cancel/new")
    # Nothing left to cancel or remove: NOT_FOUND.
    assert code_of(lambda: remove(embedded, "cancel/new")) == grpc.StatusCode.NOT_FOUND


def test_remove_model_cancels_a_queued_features_job(embedded: Serving) -> None:
    """Features jobs run one at a time: one queued behind a slow one is cancelled before it runs."""
    dim = DirectoryStore.open(embedded.store_root).config.dim
    rng = np.random.default_rng(5)
    features = rng.standard_normal((20, dim)).astype("<f4")
    features /= np.linalg.norm(features, axis=1, keepdims=True)

    def submit(model_id: str) -> admin_pb2.Job:
        return embedded.admin.RegisterModel(admin_pb2.RegisterModelRequest(
            metadata=search_pb2.Model(id=model_id), encoder=DirectoryStore.open(embedded.store_root).config.encoder,
            features=admin_pb2.FeatureMatrix(rows=20, dim=dim, float32_le=features.tobytes())), timeout=30)

    release = threading.Event()
    embedded.servicer.jobs.submit("blocker", lambda job_id: release.wait(30))  # holds the job thread
    try:
        job = submit("cancel/features")
        assert embedded.admin.GetJob(admin_pb2.GetJobRequest(id=job.id), timeout=10).state == admin_pb2.PENDING
        assert list(remove(embedded, "cancel/features").jobs_cancelled) == [job.id]
    finally:
        release.set()
    done = wait_for_job(embedded.admin, job.id, timeout=30)
    assert done.state == admin_pb2.FAILED and done.error.startswith("cancelled")
    later = wait_for_job(embedded.admin, submit("cancel/features-after").id, timeout=30)
    assert later.state == admin_pb2.SUCCEEDED  # the job thread ran on past the cancelled job
    assert_not_served(embedded, "cancel/features")


def test_features_registration_still_works_beside_generator_jobs(embedded: Serving) -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((50, 24)).astype("<f4")
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    store = DirectoryStore.open(embedded.store_root)
    job = embedded.admin.RegisterModel(admin_pb2.RegisterModelRequest(
        metadata=search_pb2.Model(id="features/m"), encoder=store.config.encoder,
        features=admin_pb2.FeatureMatrix(rows=50, dim=24, float32_le=features.tobytes())), timeout=30)
    assert wait_for_job(embedded.admin, job.id).state == admin_pb2.SUCCEEDED
    assert top_hit(embedded, "features/m") == "features/m"


def test_bad_requests_get_the_right_codes(embedded: Serving) -> None:
    admin = embedded.admin
    assert code_of(lambda: admin.RegisterModel(admin_pb2.RegisterModelRequest(
        metadata=search_pb2.Model(id="z"), zoo_model="no-such-zoo-model"), timeout=10)) == grpc.StatusCode.NOT_FOUND
    for spec in ("bogus:thing", "py:no_factory", "py:no_such_module_here:make", "py:fleet_support:not an identifier"):
        assert code_of(lambda spec=spec: register(admin, "bad/spec", spec)) == grpc.StatusCode.INVALID_ARGUMENT, spec
    for options in (admin_pb2.SamplingOptions(samples=-1), admin_pb2.SamplingOptions(samples=1, adaptive=False),
                    admin_pb2.SamplingOptions(samples=2_000_000), admin_pb2.SamplingOptions(tolerance=-0.5),
                    admin_pb2.SamplingOptions(tolerance=float("nan")), admin_pb2.SamplingOptions(tolerance=float("inf"))):
        assert code_of(lambda options=options: register(admin, "bad/options", conv(1), sampling=options)) == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad/options" not in DirectoryStore.open(embedded.store_root)
    assert code_of(lambda: register(admin, "", conv(1))) == grpc.StatusCode.INVALID_ARGUMENT  # no id
    assert code_of(lambda: register(admin, "seed/m0", conv(1))) == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(lambda: admin.GetJob(admin_pb2.GetJobRequest(id="no-such-job"), timeout=10)) == grpc.StatusCode.NOT_FOUND
    # Huge ids come back as a short NOT_FOUND / INVALID_ARGUMENT, never echoed whole.
    for call in (lambda: admin.GetJob(admin_pb2.GetJobRequest(id="j" * 50_000), timeout=10),
                 lambda: admin.RemoveModel(admin_pb2.RemoveModelRequest(id="m" * 50_000), timeout=10)):
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
        assert len(caught.value.details()) < 500
    assert "seed/m0" in DirectoryStore.open(embedded.store_root)


def test_encoder_mismatch_python_specs_and_no_fleet_are_refused(tmp_path: Path) -> None:
    make_store(tmp_path / "store")
    other_encoder = start_serving(tmp_path, embedded_jobs("py:fleet_support:conv_encoder?seed=7"))
    try:
        assert code_of(lambda: register(other_encoder.admin, "x/1", conv(1))) == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        other_encoder.close()
    locked = start_serving(tmp_path, embedded_jobs(), allow_python=False)
    try:
        assert code_of(lambda: register(locked.admin, "x/2", conv(1))) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        locked.close()
    bare = start_serving(tmp_path, None)
    try:
        assert code_of(lambda: register(bare.admin, "x/3", conv(1))) == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        bare.close()


def test_cluster_passes_the_fleet_options_to_the_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelverse.serving.admin.__main__ import parse_args
    from modelverse.serving.loopback_cluster import Cluster, ClusterSpec

    spec = ClusterSpec(store=tmp_path, run_dir=tmp_path / "run", encoder="bundled", admin={"broker": "redis://127.0.0.1:6390/0"})
    args = parse_args([*Cluster(spec).admin_arguments(), "--shard", "127.0.0.1:1"])
    assert (args.encoder, args.broker, args.allow_python_generators) == ("bundled", "redis://127.0.0.1:6390/0", False)
    bare = parse_args([*Cluster(ClusterSpec(store=tmp_path, run_dir=tmp_path)).admin_arguments(), "--shard", "a:1"])
    assert bare.encoder is None and bare.broker is None
    # With a broker the cluster makes the fleet's job secret once and hands it to the admin.
    monkeypatch.delenv("MODELVERSE_JOB_SECRET_FILE", raising=False)
    monkeypatch.delenv("MODELVERSE_JOB_SECRET", raising=False)
    cluster = Cluster(spec)
    cluster._prepare_job_secret()
    secret_file = tmp_path / "run" / "job.secret"
    assert parse_args([*cluster.admin_arguments(), "--shard", "a:1"]).job_secret_file == str(secret_file)
    assert secret_file.stat().st_mode & 0o777 == 0o600 and len(secret_file.read_text().strip()) == 64
    first = secret_file.read_text()
    Cluster(spec)._prepare_job_secret()
    assert secret_file.read_text() == first  # kept across restarts: workers keep their file


# -- broker: Celery workers on Redis, the admin follows model_ready events ----------------------


@dataclass
class Fleet:
    server: RedisServer
    config: FleetConfig
    worker: WorkerProcess


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    server = RedisServer(root / "redis").start()
    config = FleetConfig(broker_url=server.url, visibility_timeout_s=30, max_retries=2, retry_backoff_s=0.5,
                         job_secret=b"serving-register-test-secret", allow_python_specs=True)
    worker = start_worker(config, "w1", root / "logs", pythonpath=[TESTS_DIR])
    try:
        yield Fleet(server, config, worker.wait_ready())
    finally:
        worker.kill()
        server.stop()


def broker_jobs(config: FleetConfig):  # type: ignore[no-untyped-def]
    def make(servicer: AdminServicer) -> BrokerJobs:
        return BrokerJobs(servicer.store, ENCODER_SPEC, servicer.sync_shards, servicer.write_lock, config, poll_ms=200)
    return make


@pytest.mark.slow
def test_broker_jobs_are_served_through_the_event_stream(fleet: Fleet, tmp_path: Path) -> None:
    make_store(tmp_path / "store")
    serving = start_serving(tmp_path, broker_jobs(fleet.config))
    redis_store = RedisFleetState.from_url(fleet.config.broker_url)
    try:
        job = register(serving.admin, "fleet/conv", conv(21))
        done = wait_for_job(serving.admin, job.id, timeout=90)
        assert done.state == admin_pb2.SUCCEEDED, done.error
        assert (done.chunks_done, done.samples_used, done.generator) == (3, 300, conv(21))
        fleet_record = redis_store.get_job(job.id)
        assert fleet_record is not None and fleet_record.state is JobState.DONE
        assert top_hit(serving, "fleet/conv") == "fleet/conv"
        assert_same_stats(DirectoryStore.open(serving.store_root).get_stats("fleet/conv"),
                          reference_stats(tmp_path / "reference", "fleet/conv", conv(21)))
        # the thumbnails the worker kept are copied into the serving store with the statistics
        assert DirectoryStore.open(serving.store_root).get_thumbnails("fleet/conv") == redis_store.get_thumbnails("fleet/conv")
        assert len(redis_store.get_thumbnails("fleet/conv")) == 8

        # A broken generator fails on the worker; the admin reports the worker's reason.
        broken = wait_for_job(serving.admin, register(serving.admin, "fleet/broken",
                                                      "py:fleet_support:raising_generator").id, timeout=90)
        assert broken.state == admin_pb2.FAILED and "the sampler ran out of latent codes" in broken.error

        # A job submitted to the fleet directly (`modelverse index --broker`) is served too,
        # within seconds of its finishing.
        (direct,) = submit_jobs(fleet.config, [ModelRequest(ModelMetadata("fleet/direct"), conv(22))], ENCODER_SPEC,
                                PLAN, rank=RANK, keep_covariance=False)
        wait_until(lambda: (r := redis_store.get_job(direct.job_id)) is not None and r.state.finished, 90, "the direct job")
        finished = redis_store.get_job(direct.job_id)
        assert finished is not None and finished.state is JobState.DONE, finished.error if finished else None
        wait_until(lambda: "fleet/direct" in DirectoryStore.open(serving.store_root), 10, "the copy")
        wait_until(lambda: top_hit(serving, "fleet/direct") == "fleet/direct", 10, "the model to be served",
                   interval_s=0.02)
        # The event's stream id is its publication time in milliseconds.
        published = next(int(event_id.split("-")[0]) / 1000 for event_id, event in redis_store.events(count=10_000)
                         if event.get("job_id") == direct.job_id)
        served_after = time.time() - published
        print(f"fleet/direct served {served_after:.3f} s after the fleet published it")
        assert served_after < 10

        # RemoveModel while the workers still run the model's job: the job is cancelled; when the
        # fleet finishes it anyway, the follower drops its event and the fleet's copy.
        slow = register(serving.admin, "fleet/cancelled", slow_conv(24))
        assert list(remove(serving, "fleet/cancelled").jobs_cancelled) == [slow.id]
        wait_until(lambda: (r := redis_store.get_job(slow.id)) is not None and r.state.finished, 90, "the cancelled job")
        assert redis_store.get_job(slow.id).state is JobState.DONE  # type: ignore[union-attr]  (it was published)
        wait_until(lambda: "fleet/cancelled" not in redis_store, 10, "the follower to drop the fleet's copy")
        assert_not_served(serving, "fleet/cancelled")
        cancelled = serving.admin.GetJob(admin_pb2.GetJobRequest(id=slow.id), timeout=10)
        assert cancelled.state == admin_pb2.FAILED and cancelled.error.startswith("cancelled")

        # Removing through the admin removes the fleet's copy too (no restart brings it back).
        serving.admin.RemoveModel(admin_pb2.RemoveModelRequest(id="fleet/direct"), timeout=30)
        assert "fleet/direct" not in redis_store

        # Restart: the new follower resumes after the last applied event; a model published
        # while the admin was down is copied, models already applied are not copied again.
        serving.servicer.generator_jobs.close()  # type: ignore[union-attr]
        assert (serving.store_root / CURSOR_FILE).exists()
        (offline,) = submit_jobs(fleet.config, [ModelRequest(ModelMetadata("fleet/offline"), conv(23))], ENCODER_SPEC,
                                 PLAN, rank=RANK, keep_covariance=False)
        wait_until(lambda: (r := redis_store.get_job(offline.job_id)) is not None and r.state.finished, 90, "offline job")
        assert "fleet/offline" not in DirectoryStore.open(serving.store_root)
        follower = broker_jobs(fleet.config)(serving.servicer)
        serving.servicer.generator_jobs = follower
        wait_until(lambda: top_hit(serving, "fleet/offline") == "fleet/offline", 20, "the offline model to be served")
        assert DirectoryStore.open(serving.store_root).get("fleet/conv").stats_version == 1
        # A job this admin did not start reports SUCCEEDED once its model is served.
        assert serving.admin.GetJob(admin_pb2.GetJobRequest(id=offline.job_id), timeout=10).state == admin_pb2.SUCCEEDED
    finally:
        serving.close()


def test_huge_strings_in_register_requests_come_back_bounded(embedded: Serving) -> None:
    admin = embedded.admin
    huge = "q" * 30_000
    requests = {
        "zoo model": admin_pb2.RegisterModelRequest(metadata=search_pb2.Model(id="huge/zoo"), zoo_model=huge),
        "generator spec": admin_pb2.RegisterModelRequest(metadata=search_pb2.Model(id="huge/spec"), generator="py:" + huge),
        "model id": admin_pb2.RegisterModelRequest(metadata=search_pb2.Model(id=huge), generator=conv(1)),
    }
    for name, request in requests.items():
        with pytest.raises(grpc.RpcError) as caught:
            admin.RegisterModel(request, timeout=10)
        assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), name
        assert len(caught.value.details()) < 500, name
    assert code_of(lambda: admin.GetJob(admin_pb2.GetJobRequest(id="no-such-job"), timeout=10)) == grpc.StatusCode.NOT_FOUND
