"""Generator jobs of the admin service: the indexing fleet computes, the admin serves.

Two backends, one contract: ``submit`` starts a fleet job for one model, ``job`` reports it,
and a job is SUCCEEDED only once the model's statistics are in the directory store the shards
read *and* every shard replica that answers has synced.

- :class:`EmbeddedJobs` (no broker): the fleet's work functions (``fleet.embedded.run_job``)
  run on one background thread of the admin, writing the directory store; then Sync.
- :class:`BrokerJobs` (``--broker redis://...``): jobs go to Celery workers through
  ``fleet.submit``; workers publish to the fleet's Redis (``fleet.redis_state``). A follower
  thread tails its model store's change feed, copies each ``model_ready`` model into the
  directory store (the admin stays its one writer) and calls Sync, resuming after restarts from the last applied event id (kept in
  ``STORE/fleet-events.json``).

RemoveModel cancels the model's unfinished job (``cancel``, under the admin's write lock): the
embedded fleet's final write checks it under the same lock, and the follower drops a cancelled
job's ``model_ready`` event (and the fleet's copy), so an acknowledged removal stands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from modelverse.core.stats import ModelStats
from modelverse.fleet.config import FleetConfig
from modelverse.fleet.embedded import run_job
from modelverse.fleet.job_records import JobRecord, JobSpec, JobState
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.requests import ModelRequest
from modelverse.fleet.resolve import Runtime
from modelverse.fleet.fleet_state import LocalState, partial_name
from modelverse.serving.admin.feature_jobs import CANCELLED
from modelverse.serving.admin.sync import SyncReport
from modelverse.store.directory import DirectoryStore
from modelverse.store.errors import ModelNotFoundError, StoreError
from modelverse.store.files import atomic_write_json, read_json
from modelverse.store.redis_store import MODEL_READY
from modelverse.v1 import admin_pb2

log = logging.getLogger("modelverse.admin")
CURSOR_FILE = "fleet-events.json"
MAX_TRACKED = 10_000
FLEET_TO_JOB = {JobState.QUEUED: admin_pb2.PENDING, JobState.RUNNING: admin_pb2.RUNNING,
                # the statistics exist, the shards do not serve them yet
                JobState.DONE: admin_pb2.RUNNING, JobState.FAILED: admin_pb2.FAILED}

Sync = Callable[[], SyncReport]


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds") if unix else ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Settled:
    """What the admin decided about a job after the fleet finished it."""

    state: int  # admin_pb2.SUCCEEDED or FAILED
    finished_at: str
    error: str = ""
    served_version: int = 0
    notice: str = ""  # SyncReport.notice_for: stored, not yet served on a shard that is down


class JobAborted(Exception):
    pass


class GeneratorJobs:
    """The bookkeeping both backends share: which jobs the admin started and how they ended."""

    def __init__(self, store: DirectoryStore, encoder: str, sync: Sync, write_lock: threading.Lock) -> None:
        self.store = store
        self.encoder = encoder  # the encoder *spec* the fleet loads
        self.sync = sync
        self.write_lock = write_lock
        self._lock = threading.Lock()
        self._models: dict[str, str] = {}  # model id -> its unfinished job (a second submission joins it)
        self._settled: dict[str, Settled] = {}
        self._cancelled: set[str] = set()  # job ids (a job id is never reused)

    # -- backend interface ----------------------------------------------------------------------

    def _start(self, request: ModelRequest, plan: SamplePlan) -> JobRecord:
        raise NotImplementedError

    def fleet_record(self, job_id: str) -> JobRecord | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def remove(self, model_id: str) -> None:
        """The model left the serving store (RemoveModel); the embedded fleet keeps nothing else."""

    # -- shared ---------------------------------------------------------------------------------

    def submit(self, request: ModelRequest, plan: SamplePlan) -> JobRecord:
        with self._lock:
            running = self._models.get(request.model_id)
            if running is not None and running not in self._settled:
                record = self.fleet_record(running)
                if record is not None and record.state is not JobState.FAILED:
                    return record
            record = self._start(request, plan)
            self._models[request.model_id] = record.job_id
            return record

    def cancel(self, model_id: str) -> list[str]:
        """RemoveModel: the model's unfinished job (if any) ends FAILED as cancelled and will
        write nothing to the serving store. Called under the admin's write lock."""
        with self._lock:
            job_id = self._models.get(model_id)
            if job_id is None or job_id in self._settled:
                return []
            record = self.fleet_record(job_id)
            if record is not None and record.state is JobState.FAILED:
                return []
            self._cancelled.add(job_id)
            self._settled[job_id] = Settled(admin_pb2.FAILED, _now(), CANCELLED)
            return [job_id]

    def is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def settle(self, job_id: str, state: int, error: str = "", served_version: int = 0, notice: str = "") -> None:
        with self._lock:
            if len(self._settled) >= MAX_TRACKED:  # forget the oldest tenth
                for old in list(self._settled)[: MAX_TRACKED // 10]:
                    del self._settled[old]
            if job_id not in self._cancelled:  # a cancellation is final
                self._settled[job_id] = Settled(state, _now(), error, served_version, notice)

    def counts(self) -> dict[str, int]:
        """Jobs by state as this admin knows them without asking the fleet: settled ones by how
        they ended, the others ``unfinished``."""
        names = {admin_pb2.SUCCEEDED: "succeeded", admin_pb2.FAILED: "failed"}
        with self._lock:
            counts: dict[str, int] = {}
            for settled in self._settled.values():
                name = names.get(settled.state, "unfinished")
                counts[name] = counts.get(name, 0) + 1
            unfinished = sum(1 for job_id in self._models.values() if job_id not in self._settled)
        if unfinished:
            counts["unfinished"] = counts.get("unfinished", 0) + unfinished
        return counts

    def _served_version(self, model_id: str) -> int:
        try:
            return self.store.get(model_id).stats_version
        except (ModelNotFoundError, StoreError):
            return 0

    def job(self, job_id: str) -> admin_pb2.Job | None:
        record = self.fleet_record(job_id)
        if record is None:
            return None
        spec = record.spec
        message = admin_pb2.Job(
            id=job_id, model_id=spec.model_id, state=FLEET_TO_JOB[record.state], error=record.error,
            created_at=_iso(record.submitted_at), chunks_done=len(record.chunks_done),
            chunks_planned=record.chunks_planned, chunks_max=spec.plan.total_chunks,
            samples_done=record.samples_done, samples_used=record.samples_used,
            stats_version=spec.stats_version, generator=spec.generator,
        )
        with self._lock:
            settled = self._settled.get(job_id)
        if record.state is JobState.FAILED and settled is None:
            message.finished_at = _iso(record.finished_at)
            return message
        if settled is None and record.state is JobState.DONE and self._unknown_done(job_id, spec.model_id):
            settled = Settled(admin_pb2.SUCCEEDED, _iso(record.finished_at), "", self._served_version(spec.model_id))
        if settled is not None:
            message.state = settled.state
            message.finished_at = settled.finished_at
            message.error = settled.error
            message.notice = settled.notice
            if settled.served_version:
                message.stats_version = settled.served_version
        return message

    def _unknown_done(self, job_id: str, model_id: str) -> bool:
        """A finished job this admin did not apply itself (started by `modelverse index`, or
        before a restart) counts as served once the serving store holds its model."""
        return False


class EmbeddedJobs(GeneratorJobs):
    """The fleet's work functions on one background thread of the admin, writing its store."""

    def __init__(self, store: DirectoryStore, encoder: str, sync: Sync, write_lock: threading.Lock,
                 runtime: Runtime) -> None:
        super().__init__(store, encoder, sync, write_lock)
        self.runtime = runtime
        self.state = _GatedState(str(store.root), write_lock, self.is_cancelled)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-fleet")
        self._stopping = threading.Event()

    def _start(self, request: ModelRequest, plan: SamplePlan) -> JobRecord:
        config = self.store.config
        # keep_covariance off: the serving store needs the compressed second order only
        spec = JobSpec.new(request.metadata, request.generator, self.encoder,
                           self.state.stats_version(request.model_id) + 1, plan, config.rank, config.eps,
                           keep_covariance=False)
        record = JobRecord(spec)
        self.state.create_job(record)
        self._executor.submit(self._run, spec)
        return record

    def _progress(self, record: JobRecord) -> None:
        if self._stopping.is_set():
            raise JobAborted("the admin service stopped")
        if self.is_cancelled(record.job_id):
            raise JobAborted(CANCELLED)

    def _run(self, spec: JobSpec) -> None:
        try:
            # the store's writer lock (a file lock) orders this write with the admin's others
            record = run_job(self.state, spec, self.runtime, self._progress)
        except Exception as exc:  # noqa: BLE001  (an aborted or broken job fails; the admin serves on)
            self.state.update_job(spec.job_id, state=JobState.FAILED, error=f"{type(exc).__name__}: {exc}",
                                  finished_at=time.time())
            record = self.state.get_job(spec.job_id)
        if self.is_cancelled(spec.job_id):
            # Its chunks must not seed a later job of the same model and version (chunks are
            # named by model, version and index), which may sample another generator.
            self.state.delete_partials([partial_name(spec.model_id, spec.stats_version, i)
                                        for i in range(spec.plan.total_chunks)])
            log.info("generator job cancelled", extra={"model_id": spec.model_id, "job_id": spec.job_id})
            return
        if record is None or record.state is not JobState.DONE:
            log.warning("generator job failed", extra={"model_id": spec.model_id,
                                                       "error": record.error if record else "no record"})
            return
        report = self.sync()
        self.settle(spec.job_id, admin_pb2.SUCCEEDED, served_version=self._served_version(spec.model_id),
                    notice=report.notice_for(spec.model_id))
        log.info("model indexed", extra={"model_id": spec.model_id, "samples": record.samples_used,
                                         "shards_synced": report.synced})

    def fleet_record(self, job_id: str) -> JobRecord | None:
        return self.state.get_job(job_id)

    def close(self) -> None:
        self._stopping.set()
        self._executor.shutdown(wait=True, cancel_futures=True)


class _GatedState(LocalState):
    """The embedded fleet's state whose final write waits for the admin's write lock and is
    refused once RemoveModel has cancelled the job."""

    def __init__(self, root: str, write_lock: threading.Lock, cancelled: Callable[[str], bool]) -> None:
        super().__init__(root)
        self._write_lock = write_lock
        self._cancelled = cancelled

    def publish(self, spec: JobSpec, stats: ModelStats, tau: float | None = None,
                thumbnails: list[bytes] | None = None) -> int:
        with self._write_lock:
            if self._cancelled(spec.job_id):
                raise JobAborted(CANCELLED)
            return super().publish(spec, stats, tau, thumbnails)


class BrokerJobs(GeneratorJobs):
    """Jobs on Celery workers; finished models are copied from the fleet's Redis by a follower."""

    def __init__(self, store: DirectoryStore, encoder: str, sync: Sync, write_lock: threading.Lock,
                 fleet: FleetConfig, poll_ms: int = 500) -> None:
        super().__init__(store, encoder, sync, write_lock)
        self.fleet = fleet
        self.redis = RedisFleetState.from_url(fleet.redis_store_url, fleet.store_prefix)
        self.poll_ms = poll_ms
        self.cursor_path = Path(store.root) / CURSOR_FILE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="fleet-events", daemon=True)
        self._thread.start()

    @property
    def source(self) -> str:
        return repr(self.redis)

    def _start(self, request: ModelRequest, plan: SamplePlan) -> JobRecord:
        from modelverse.fleet.submit import submit_jobs  # imports Celery's tasks only when used

        config = self.store.config
        (record,) = submit_jobs(self.fleet, [request], self.encoder, plan, rank=config.rank, eps=config.eps,
                                keep_covariance=False)
        return record

    def fleet_record(self, job_id: str) -> JobRecord | None:
        return self.redis.get_job(job_id)

    def _unknown_done(self, job_id: str, model_id: str) -> bool:
        return job_id not in self._models.values() and model_id in self.store

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    # -- the follower ---------------------------------------------------------------------------

    def _read_cursor(self) -> str | None:
        if not self.cursor_path.exists():
            return None
        data: Any = read_json(self.cursor_path)
        if not isinstance(data, dict) or data.get("source") != self.source:
            return None  # another Redis (or prefix): start over from its models
        return str(data.get("last_event_id") or "0-0")

    def _write_cursor(self, event_id: str) -> None:
        atomic_write_json(self.cursor_path, {"source": self.source, "last_event_id": event_id})

    @staticmethod
    def _stream_id(event_id: str) -> tuple[int, int]:
        ms, _, seq = event_id.partition("-")
        return int(ms), int(seq or 0)

    def _bootstrap(self) -> str:
        """Note the newest event, copy the fleet's models the serving store lacks, then tail
        from the noted id: nothing published meanwhile is missed (docs/FLEET.md)."""
        start = self.redis.last_event_id()
        missing = [model_id for model_id in self.redis.ids() if model_id not in self.store]
        copied = sum(self._copy(model_id) for model_id in missing)
        if copied:
            self.sync()
        log.info("fleet store loaded", extra={"source": self.source, "copied": copied})
        self._write_cursor(start)
        return start

    def _copy(self, model_id: str, job_id: str = "") -> bool:
        """The fleet's current statistics of the model into the serving store (not those of a
        job RemoveModel cancelled: the fleet's copy goes too, or a restart would bring it back)."""
        try:
            stored = self.redis.get(model_id)
            stats = self.redis.get_stats(model_id)
            thumbnails = self.redis.get_thumbnails(model_id)
        except ModelNotFoundError:  # removed since it was announced
            return False
        with self.write_lock:
            if job_id and self.is_cancelled(job_id):
                self.remove(model_id)
                return False
            self.store.put(stored.metadata, stats, replace=model_id in self.store, thumbnails=thumbnails)
        return True

    def _apply(self, events: list[tuple[str, dict[str, str]]]) -> None:
        done: list[tuple[str, str]] = []  # (job id, model id)
        failed: list[tuple[str, str]] = []
        changed = False
        for _, event in events:
            if event.get("event") != MODEL_READY:
                continue  # removals go through the admin's RemoveModel, which removes from both
            model_id, job_id = event.get("model_id", ""), event.get("job_id", "")
            try:
                copied = self._copy(model_id, job_id)
                changed |= copied
                if job_id and copied:
                    done.append((job_id, model_id))
            except (StoreError, ValueError) as exc:  # e.g. another encoder than the store's
                log.warning("cannot serve a fleet model", extra={"model_id": model_id, "error": str(exc)})
                if job_id:
                    failed.append((job_id, f"copying {model_id} into the serving store: {exc}"))
        report = self.sync() if changed else None
        for job_id, model_id in done:
            notice = report.notice_for(model_id) if report else ""
            self.settle(job_id, admin_pb2.SUCCEEDED, served_version=self._served_version(model_id), notice=notice)
            log.info("model indexed", extra={"model_id": model_id, "job_id": job_id,
                                             "shards_synced": report.synced if report else 0})
        for job_id, reason in failed:
            self.settle(job_id, admin_pb2.FAILED, error=reason)

    def _follow(self) -> None:
        cursor: str | None = None
        while not self._stop.is_set():
            try:
                if cursor is None:
                    cursor = self._read_cursor() or self._bootstrap()
                events = self.redis.events(after=cursor, count=256, block_ms=self.poll_ms)
                if not events:
                    if self._stream_id(self.redis.last_event_id()) < self._stream_id(cursor):
                        log.warning("the fleet's event stream restarted; reloading its models")
                        cursor = self._bootstrap()
                    continue
                self._apply(events)
                cursor = events[-1][0]
                self._write_cursor(cursor)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("fleet store unreachable; retrying", extra={"error": str(exc)})
                self._stop.wait(1.0)
            except Exception:  # a bug must not stop the follower for good
                log.exception("following the fleet's events")
                self._stop.wait(1.0)

    def remove(self, model_id: str) -> None:
        """Remove from the fleet's store too, so that no restart copies the model back."""
        try:
            self.redis.remove(model_id)
        except ModelNotFoundError:
            pass
