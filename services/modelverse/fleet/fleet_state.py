"""Where the fleet keeps partial moments, job records and finished statistics.

Two implementations: :class:`~modelverse.fleet.redis_state.RedisFleetState` for a cluster, and
:class:`LocalState` (a dict of partials and jobs in front of a ``DirectoryStore``) for the
embedded mode. The work functions only see this Protocol.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Protocol

from modelverse.core.moments import PartialMoments
from modelverse.core.stats import DEFAULT_TAU, ModelStats, store_rank
from modelverse.fleet.job_records import JobRecord, JobSpec, JobState
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.errors import ModelNotFoundError, StoreNotFoundError


def partial_name(model_id: str, stats_version: int, chunk_index: int) -> str:
    """The idempotency key of one chunk: the same chunk always lands on the same key."""
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:32]
    return f"{digest}:v{stats_version}:c{chunk_index}"


class FleetState(Protocol):
    def put_partial(self, name: str, moments: PartialMoments) -> bool:
        """Store unless already there; False when another delivery of the chunk wrote it first."""
        ...

    def get_partial(self, name: str) -> PartialMoments | None: ...

    def has_partial(self, name: str) -> bool: ...

    def delete_partials(self, names: list[str]) -> None:
        """Delete these chunks' partials and the thumbnails they kept."""
        ...

    def put_chunk_thumbnails(self, name: str, thumbnails: list[bytes]) -> None:
        """Keep the thumbnails chunk ``name`` made until the finaliser publishes them."""
        ...

    def get_chunk_thumbnails(self, name: str) -> list[bytes] | None: ...

    def create_job(self, record: JobRecord) -> None: ...

    def get_job(self, job_id: str) -> JobRecord | None: ...

    def start_job(self, job_id: str) -> None:
        """Move a queued job to running, stamping when its first chunk started."""
        ...

    def mark_chunk_done(self, job_id: str, chunk_index: int) -> None:
        """Record a finished chunk (idempotent) and move a queued job to running."""
        ...

    def update_job(self, job_id: str, **fields: Any) -> bool:
        """Set fields unless the job already finished; False when it had."""
        ...

    def advance_round(self, job_id: str, from_round: int, **fields: Any) -> bool:
        """Move an unfinished job from round ``from_round`` to the next (compare-and-set), so
        that of two deliveries of one round's callback only one sends the next round."""
        ...

    def stats_version(self, model_id: str) -> int:
        """The model's current stats version, 0 when it has none."""
        ...

    def publish(self, spec: JobSpec, stats: ModelStats, tau: float | None = None,
                thumbnails: list[bytes] | None = None) -> int:
        """Write the model's statistics, metadata and thumbnails as ``spec.stats_version``;
        returns it. ``tau``, the encoder's temperature, becomes the store's when this write
        creates it."""
        ...


class LocalState:
    """Embedded mode: partials and jobs in memory, statistics in a directory store."""

    def __init__(
        self, store_root: str, keep_partials: bool = False, partials: dict[str, PartialMoments] | None = None
    ) -> None:
        """``keep_partials`` keeps chunks after finalising; ``partials`` shares computed chunks
        with another LocalState (benchmarks index the same chunks under several plans)."""
        self.store_root = store_root
        self.keep_partials = keep_partials
        self._partials: dict[str, PartialMoments] = {} if partials is None else partials
        self._jobs: dict[str, JobRecord] = {}
        self._thumbnails: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()

    def _store(self, spec: JobSpec | None = None, dim: int | None = None, encoder: str = "",
               tau: float | None = None) -> DirectoryStore:
        if spec is None or dim is None:
            return DirectoryStore.open(self.store_root)
        config = StoreConfig(dim, store_rank(dim, spec.rank), spec.eps, encoder, DEFAULT_TAU if tau is None else tau)
        return DirectoryStore.open_or_create(self.store_root, config)

    def put_partial(self, name: str, moments: PartialMoments) -> bool:
        with self._lock:
            if name in self._partials:
                return False
            self._partials[name] = moments
            return True

    def get_partial(self, name: str) -> PartialMoments | None:
        return self._partials.get(name)

    def has_partial(self, name: str) -> bool:
        return name in self._partials

    def delete_partials(self, names: list[str]) -> None:
        if self.keep_partials:
            return
        with self._lock:
            for name in names:
                self._partials.pop(name, None)
                self._thumbnails.pop(name, None)

    def put_chunk_thumbnails(self, name: str, thumbnails: list[bytes]) -> None:
        with self._lock:
            self._thumbnails[name] = list(thumbnails)

    def get_chunk_thumbnails(self, name: str) -> list[bytes] | None:
        return self._thumbnails.get(name)

    def create_job(self, record: JobRecord) -> None:
        self._jobs[record.job_id] = record

    def get_job(self, job_id: str) -> JobRecord | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[JobRecord]:
        return list(self._jobs.values())

    def start_job(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.state is JobState.QUEUED:
                self._jobs[job_id] = job.with_(state=JobState.RUNNING, started_at=time.time())

    def mark_chunk_done(self, job_id: str, chunk_index: int) -> None:
        with self._lock:
            job = self._jobs[job_id]
            changes: dict[str, Any] = {"chunks_done": job.chunks_done | {chunk_index}, "updated_at": time.time()}
            if job.state is JobState.QUEUED:
                changes.update(state=JobState.RUNNING, started_at=job.started_at or time.time())
            self._jobs[job_id] = job.with_(**changes)

    def update_job(self, job_id: str, **fields: Any) -> bool:
        with self._lock:
            job = self._jobs[job_id]
            if job.state.finished:
                return False
            self._jobs[job_id] = job.with_(**{"updated_at": time.time(), **fields})
            return True

    def advance_round(self, job_id: str, from_round: int, **fields: Any) -> bool:
        with self._lock:
            job = self._jobs[job_id]
            if job.state.finished or job.round_index != from_round:
                return False
            self._jobs[job_id] = job.with_(**{"updated_at": time.time(), **fields, "round_index": from_round + 1})
            return True

    def stats_version(self, model_id: str) -> int:
        try:
            return self._store().get(model_id).stats_version
        except (ModelNotFoundError, StoreNotFoundError):  # no store yet: nothing indexed
            return 0

    def publish(self, spec: JobSpec, stats: ModelStats, tau: float | None = None,
                thumbnails: list[bytes] | None = None) -> int:
        store = self._store(spec, stats.dim, stats.encoder, tau)
        current = self.stats_version(spec.model_id)
        if current == spec.stats_version:  # a redelivered finaliser: the same bits are there
            return current
        if current + 1 != spec.stats_version:
            raise RuntimeError(
                f"{spec.model_id}: the store holds stats version {current}, this job computed "
                f"version {spec.stats_version}; another writer indexed the model meanwhile"
            )
        stored = store.put(spec.metadata, stats, replace=current > 0, thumbnails=thumbnails)
        return stored.stats_version
