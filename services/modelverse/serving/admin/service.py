"""AdminService: the one writer of the store in the cluster; tells the shards to sync."""

from __future__ import annotations

import logging
import threading
import time

import grpc
import numpy as np
import redis

from modelverse.core.stats import stats_from_features
from modelverse.errors import InvalidInputError, ModelverseError
from modelverse.fleet.resolve import Runtime, encoder_identity
from modelverse.serving.admin.generator_jobs import GeneratorJobs
from modelverse.serving.admin.feature_jobs import JobQueueFull, JobRecord, JobRunner
from modelverse.serving.admin.sources import model_request, sample_plan
from modelverse.serving.admin.sync import SyncReport
from modelverse.serving.convert import metadata_from_message
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.messages import abort, bounded, shown_id
from modelverse.serving.request_context import outgoing_metadata
from modelverse.store.directory import DirectoryStore
from modelverse.store.errors import ModelNotFoundError, StoreError
from modelverse.v1 import admin_pb2, admin_pb2_grpc, shard_pb2

log = logging.getLogger("modelverse.admin")
SYNC_TIMEOUT = 30.0
JOB_STATES = {"pending": admin_pb2.PENDING, "running": admin_pb2.RUNNING,
              "succeeded": admin_pb2.SUCCEEDED, "failed": admin_pb2.FAILED}


def job_message(job: JobRecord) -> admin_pb2.Job:
    return admin_pb2.Job(id=job.id, model_id=job.model_id, state=JOB_STATES[job.state], error=job.error,
                         created_at=job.created_at, finished_at=job.finished_at, notice=job.notice)


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Features jobs run here (``jobs``); generator jobs go to the indexing fleet
    (``generator_jobs``: embedded in this process, or Celery workers behind a broker; see
    ``attach_fleet``)."""

    def __init__(self, store: DirectoryStore, pool: ShardPool) -> None:
        self.store = store
        self.pool = pool
        self.jobs = JobRunner()
        self.generator_jobs: GeneratorJobs | None = None
        self.runtime: Runtime | None = None
        self.allow_python_generators = False
        self._encoder_identity: str | None = None
        self._encoder_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @property
    def write_lock(self) -> threading.Lock:
        return self._write_lock

    def attach_fleet(self, jobs: GeneratorJobs, runtime: Runtime, *, allow_python_generators: bool = False) -> None:
        """Accept generator sources: ``jobs`` runs them; ``runtime`` loads the encoder whose
        identity must be the store's."""
        self.generator_jobs = jobs
        self.runtime = runtime
        self.allow_python_generators = allow_python_generators

    def shutdown(self) -> None:
        if self.generator_jobs is not None:
            self.generator_jobs.close()
        self.jobs.shutdown()

    def job_counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> jobs: features jobs run here, generator jobs on the fleet."""
        counts = {("features", state): n for state, n in self.jobs.counts().items()}
        if self.generator_jobs is not None:
            counts.update({("generator", state): n for state, n in self.generator_jobs.counts().items()})
        return counts

    def encoder_identity(self) -> str:
        """``name:fingerprint`` of the fleet's encoder, loaded once (the check needs its weights)."""
        assert self.generator_jobs is not None and self.runtime is not None
        with self._encoder_lock:
            if self._encoder_identity is None:
                self._encoder_identity = encoder_identity(self.runtime.encoder(self.generator_jobs.encoder))
            return self._encoder_identity

    def sync_shards(self, timeout: float = SYNC_TIMEOUT) -> SyncReport:
        """Ask every replica of every shard to sync now; reports how many confirmed and which
        shards had no replica that did. A hung replica is waited for ``timeout`` seconds."""
        futures = [(shard, stub.Sync.future(shard_pb2.SyncRequest(), timeout=timeout, metadata=outgoing_metadata()))
                   for shard, replicas in enumerate(self.pool.stubs) for stub in replicas]
        confirmed: set[int] = set()
        synced = 0
        for shard, future in futures:
            try:
                future.result()
                synced += 1
                confirmed.add(shard)
            except grpc.RpcError as exc:  # a replica that is down syncs before it serves again
                log.warning("replica did not sync", extra={"shard": shard, "code": exc.code().name})
        unserved = tuple(s for s in range(len(self.pool.stubs)) if s not in confirmed)
        return SyncReport(synced, len(self.pool.stubs), unserved)

    def RegisterModel(self, request: admin_pb2.RegisterModelRequest, context: grpc.ServicerContext) -> admin_pb2.Job:
        try:
            metadata = metadata_from_message(request.metadata)
        except InvalidInputError as exc:
            raise InvalidInputError(f"metadata: {exc}") from exc
        source = request.WhichOneof("source")
        if source in ("zoo_model", "generator"):
            return self._register_generator(request, context)
        if source != "features":
            abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                          "give the model's sample features, a zoo_model or a generator spec")
        matrix = request.features
        config = self.store.config
        if matrix.rows < 2 or matrix.dim != config.dim or len(matrix.float32_le) != 4 * matrix.rows * matrix.dim:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                          f"features must be rows >= 2 x dim {config.dim} float32 ({4 * config.dim} bytes a row), "
                          f"got {matrix.rows} x {matrix.dim} in {len(matrix.float32_le)} bytes")
        if request.encoder != config.encoder:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                          f"features of encoder {request.encoder!r}; the store holds encoder {config.encoder!r}")
        features = np.frombuffer(matrix.float32_le, dtype="<f4").reshape(matrix.rows, matrix.dim)
        if not np.all(np.isfinite(features)):
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "features contain NaN or infinity")
        if not request.replace and metadata.id in self.store:
            abort(context, grpc.StatusCode.ALREADY_EXISTS, f"model {metadata.id!r} exists; set replace to replace it")

        def work(job_id: str) -> str:
            stats = stats_from_features(features, rank=config.rank, eps=config.eps,
                                        keep_covariance=False, encoder=request.encoder)
            with self._write_lock:
                if self.jobs.is_cancelled(job_id):
                    return ""  # RemoveModel came first: the removal stands
                self.store.put(metadata, stats, replace=request.replace)
            notice = self.sync_shards().notice_for(metadata.id)
            log.info("model registered", extra={"model_id": metadata.id, "notice": notice})
            return notice

        try:
            return job_message(self.jobs.submit(metadata.id, work))
        except JobQueueFull as exc:
            abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    def _register_generator(self, request: admin_pb2.RegisterModelRequest, context: grpc.ServicerContext) -> admin_pb2.Job:
        from modelverse.serving.admin.generator_jobs import EmbeddedJobs

        jobs = self.generator_jobs
        if jobs is None:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                          "this admin indexes no generators: start it with --encoder SPEC (and --broker URL "
                          "to use Celery workers)")
        # what the caller can fix is raised as a modelverse.errors kind: the server answers its code
        model = model_request(request, allow_python=self.allow_python_generators,
                              importable_here=isinstance(jobs, EmbeddedJobs))
        plan = sample_plan(request.sampling)
        if not request.replace and model.model_id in self.store:
            abort(context, grpc.StatusCode.ALREADY_EXISTS, f"model {model.model_id!r} exists; set replace to replace it")
        try:
            identity = self.encoder_identity()
        except Exception as exc:  # noqa: BLE001  (whatever the encoder's loader raises: not the caller's fault)
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"the admin's encoder {jobs.encoder!r} does not load: {exc}")
        config = self.store.config
        if identity != config.encoder:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                          f"the admin's encoder is {identity!r}; the store holds features of encoder "
                          f"{config.encoder!r}: start the admin with the store's encoder")
        try:
            record = jobs.submit(model, plan)
        except ModelverseError as exc:  # the fleet refused it (spec policy, store): not a bug of ours
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"cannot start the job: {exc.message}")
        log.info("generator job submitted", extra={"model_id": model.model_id, "job_id": record.job_id,
                                                   "generator": model.generator})
        answer = jobs.job(record.job_id)
        assert answer is not None
        return answer

    def GetJob(self, request: admin_pb2.GetJobRequest, context: grpc.ServicerContext) -> admin_pb2.Job:
        job = self.jobs.get(request.id)
        if job is not None:
            return job_message(job)
        if self.generator_jobs is not None and request.id:
            try:
                found = self.generator_jobs.job(request.id)
            except (StoreError, redis.RedisError) as exc:
                abort(context, grpc.StatusCode.UNAVAILABLE, f"cannot read the fleet's job record: {exc}")
            if found is not None:
                return found
        abort(context, grpc.StatusCode.NOT_FOUND, f"no job {shown_id(request.id)}")

    def RemoveModel(self, request: admin_pb2.RemoveModelRequest, context: grpc.ServicerContext) -> admin_pb2.RemoveModelResponse:
        """Remove the model and cancel its unfinished indexing jobs, in one step under the write
        lock: a job that finishes later finds itself cancelled and writes nothing."""
        try:
            with self._write_lock:
                cancelled = self.jobs.cancel_model(request.id)
                if self.generator_jobs is not None:
                    cancelled += self.generator_jobs.cancel(request.id)
                try:
                    self.store.remove(request.id)
                except ModelNotFoundError:
                    if not cancelled:
                        raise
        except ModelNotFoundError as exc:
            abort(context, grpc.StatusCode.NOT_FOUND, bounded(str(exc)))
        # other user errors (a malformed id, a locked store) reach the server's ErrorInterceptor
        if self.generator_jobs is not None:
            try:  # the fleet's copy too, or a restarted admin would copy the model back
                self.generator_jobs.remove(request.id)
            except redis.RedisError as exc:
                log.warning("model not removed from the fleet's store", extra={"model_id": request.id, "error": str(exc)})
        # Within the caller's deadline: a hung replica must not turn a removal into a timeout
        # (the removal is done; a replica that missed the sync catches up from the store).
        remaining = context.time_remaining()
        budget = SYNC_TIMEOUT if remaining is None else max(0.05, min(SYNC_TIMEOUT, 0.8 * remaining))
        synced = self.sync_shards(timeout=budget).synced
        log.info("model removed", extra={"model_id": request.id, "shards_synced": synced, "jobs_cancelled": cancelled})
        return admin_pb2.RemoveModelResponse(shards_synced=synced, jobs_cancelled=cancelled)


def wait_for_job(stub: admin_pb2_grpc.AdminServiceStub, job_id: str, timeout: float = 60.0) -> admin_pb2.Job:
    """Poll a job until it finishes (for clients and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        job = stub.GetJob(admin_pb2.GetJobRequest(id=job_id))
        if job.state in (admin_pb2.SUCCEEDED, admin_pb2.FAILED) or time.monotonic() > deadline:
            return job
        time.sleep(0.05)
