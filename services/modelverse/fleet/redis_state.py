"""The fleet's state in Redis: the model store plus what only the fleet keeps.

``RedisFleetState`` is the ``FleetState`` of a cluster (``fleet.fleet_state`` has the Protocol and
the embedded ``LocalState``): the Redis model store (``store.redis_store``, where finished
statistics are published and announced) and, under the same prefix, partial moments under
idempotent keys, the thumbnails a chunk kept, job records and leases.

Keys (``P`` = the prefix, ``mv`` by default; ``H`` = a digest of the model id; the model
store's own keys are listed in ``store.redis_store``)::

    P:partial:NAME         npz bytes of one chunk's PartialMoments (float64), expires after a week
    P:thumbs:NAME          the thumbnails a chunk kept (chunk 0), until the finaliser publishes them
    P:job:ID               hash: one job record (see modelverse.fleet.job_records.JobRecord)
    P:job:ID:chunks        set of finished chunk indices
    P:jobs                 sorted set of job ids by submission time
    P:jobs:active          set of job ids not yet done or failed (the watchdog's work list)
    P:model:H:vN:job       the job computing version N of a model (submissions join it)
    P:lease:NAME           short-lived leases (one watchdog resubmits a stalled job at a time)
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import numpy as np
import redis

from modelverse.core.moments import PartialMoments
from modelverse.core.stats import ModelStats
from modelverse.fleet.job_records import JobRecord, JobSpec, JobState
from modelverse.store.errors import StoreCorruptError
from modelverse.store.redis_store import RedisModelStore
from modelverse.store.thumbnails import thumbnails_from_bytes, thumbnails_to_bytes

PARTIAL_TTL_S = 7 * 24 * 3600

# Atomic "update unless finished": two deliveries of a task must not turn a failed job back
# into a running one, nor a done one into failed.
_UPDATE_UNLESS_FINISHED = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state == 'done' or state == 'failed' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
# The same, allowed to run while Redis is out of memory (Redis >= 7 script flag): failing a job
# is a few hundred bytes and must not wait for memory that may never come back (issue 14).
_FAIL_WHEN_FULL = """#!lua flags=allow-oom
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state == 'done' or state == 'failed' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""
MAX_FAILURE_REASON = 600  # characters of a reason written past maxmemory
_ADVANCE_ROUND = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'done' or state == 'failed' then return 0 end
if redis.call('HGET', KEYS[1], 'round_index') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""
_START_JOB = """
if redis.call('HGET', KEYS[1], 'state') == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[1], 'updated_at', ARGV[1])
end
return 1
"""
_MARK_CHUNK_DONE = """
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
if redis.call('HGET', KEYS[1], 'state') == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  redis.call('HSET', KEYS[1], 'started_at', ARGV[2])
end
return 1
"""


def partial_to_bytes(moments: PartialMoments) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, count=np.array(moments.count, dtype=np.int64), mean=moments.mean, m2=moments.m2)
    return buffer.getvalue()


def partial_from_bytes(data: bytes) -> PartialMoments:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return PartialMoments(int(arrays["count"]), arrays["mean"], arrays["m2"])
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError) as exc:
        raise StoreCorruptError(f"unreadable partial moments ({exc})") from exc


def _job_field(name: str, value: Any) -> str:
    if isinstance(value, JobState):
        return value.value
    if name == "probe_scores":
        return json.dumps(list(value))
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


class RedisFleetState(RedisModelStore):
    def __init__(self, client: redis.Redis, prefix: str = "mv") -> None:
        super().__init__(client, prefix)
        self._update_unless_finished = client.register_script(_UPDATE_UNLESS_FINISHED)
        self._mark_chunk_done = client.register_script(_MARK_CHUNK_DONE)
        self._advance_round = client.register_script(_ADVANCE_ROUND)
        self._start_job = client.register_script(_START_JOB)
        self._fail_when_full = client.register_script(_FAIL_WHEN_FULL)

    # -- finished statistics ------------------------------------------------------------------

    def publish(self, spec: JobSpec, stats: ModelStats, tau: float | None = None,
                thumbnails: list[bytes] | None = None) -> int:
        """Write a job's statistics as exactly ``spec.stats_version`` and announce them (the
        "model_ready" event names the job).

        Idempotent: a finaliser delivered twice finds its version there and writes nothing.
        A job whose version was overtaken by a newer one does not overwrite it. ``tau`` (the
        encoder's temperature) becomes the store's if this is its first write.
        """
        return self.put_version(spec.metadata, stats, spec.stats_version, tau=tau, thumbnails=thumbnails,
                                announce={"job_id": spec.job_id})

    # -- partial moments ------------------------------------------------------------------------

    def put_partial(self, name: str, moments: PartialMoments) -> bool:
        return bool(self.client.set(self._key("partial", name), partial_to_bytes(moments), nx=True, ex=PARTIAL_TTL_S))

    def get_partial(self, name: str) -> PartialMoments | None:
        data = self.client.get(self._key("partial", name))
        return None if data is None else partial_from_bytes(data)

    def has_partial(self, name: str) -> bool:
        return bool(self.client.exists(self._key("partial", name)))

    def delete_partials(self, names: list[str]) -> None:
        if names:
            self.client.delete(*(self._key(kind, name) for name in names for kind in ("partial", "thumbs")))

    def put_chunk_thumbnails(self, name: str, thumbnails: list[bytes]) -> None:
        self.client.set(self._key("thumbs", name), thumbnails_to_bytes(thumbnails), ex=PARTIAL_TTL_S)

    def get_chunk_thumbnails(self, name: str) -> list[bytes] | None:
        data = self.client.get(self._key("thumbs", name))
        return None if data is None else thumbnails_from_bytes(data, f"chunk {name} in {self!r}")

    # -- job records ----------------------------------------------------------------------------

    def _job_key(self, job_id: str) -> str:
        return self._key("job", job_id)

    def create_job(self, record: JobRecord) -> None:
        with self.client.pipeline() as pipe:
            pipe.hset(self._job_key(record.job_id), mapping=record.to_fields())
            pipe.zadd(self._key("jobs"), {record.job_id: record.submitted_at})
            if not record.state.finished:
                pipe.sadd(self._key("jobs", "active"), record.job_id)
            pipe.execute()

    def get_job(self, job_id: str) -> JobRecord | None:
        # Not a MULTI: Redis refuses every command of a transaction, reads too, while it is out
        # of memory, and a job's record must stay readable then (to fail it, to show it).
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._job_key(job_id))
            pipe.smembers(self._job_key(job_id) + ":chunks")
            fields, chunks = pipe.execute()
        if not fields:
            return None
        decoded = {k.decode(): v.decode() for k, v in fields.items()}
        return JobRecord.from_fields(decoded, frozenset(int(c) for c in chunks))

    def job_ids(self, limit: int | None = None) -> list[str]:
        """Most recent first."""
        end = -1 if limit is None else limit - 1
        return [j.decode() for j in self.client.zrevrange(self._key("jobs"), 0, end)]

    def jobs(self, limit: int | None = None) -> list[JobRecord]:
        records = (self.get_job(job_id) for job_id in self.job_ids(limit))
        return [r for r in records if r is not None]

    def job_states(self, limit: int | None = None) -> dict[str, int]:
        """How many of the most recent ``limit`` jobs are in each state (reads only, no MULTI)."""
        ids = self.job_ids(limit)
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._job_key(job_id), "state")
            states = pipe.execute()
        counts: dict[str, int] = {}
        for state in states:
            if state is not None:
                counts[state.decode()] = counts.get(state.decode(), 0) + 1
        return counts

    def start_job(self, job_id: str) -> None:
        key = self._job_key(job_id)
        self._start_job(keys=[key], args=[repr(time.time())])

    def mark_chunk_done(self, job_id: str, chunk_index: int) -> None:
        key = self._job_key(job_id)
        self._mark_chunk_done(keys=[key, key + ":chunks"], args=[chunk_index, repr(time.time())])

    @staticmethod
    def _field_args(fields: dict[str, Any]) -> list[str]:
        args: list[str] = []
        for name, value in {"updated_at": time.time(), **fields}.items():
            args += [name, _job_field(name, value)]
        return args

    def update_job(self, job_id: str, **fields: Any) -> bool:
        updated = int(self._update_unless_finished(keys=[self._job_key(job_id)], args=self._field_args(fields))) == 1
        if updated and fields.get("state") in (JobState.DONE, JobState.FAILED):
            self.client.srem(self._key("jobs", "active"), job_id)
        return updated

    def fail_job_when_full(self, job_id: str, reason: str) -> bool:
        """Fail an unfinished job even while Redis refuses writes for lack of memory (a short
        record written past ``maxmemory``); False when it had finished already."""
        reason = reason if len(reason) <= MAX_FAILURE_REASON else reason[: MAX_FAILURE_REASON - 3] + "..."
        args = [job_id, "state", JobState.FAILED.value, "error", reason,
                "finished_at", repr(time.time()), "updated_at", repr(time.time())]
        keys = [self._job_key(job_id), self._key("jobs", "active")]
        return int(self._fail_when_full(keys=keys, args=args)) == 1

    def advance_round(self, job_id: str, from_round: int, **fields: Any) -> bool:
        args = [str(from_round), *self._field_args({**fields, "round_index": from_round + 1})]
        return int(self._advance_round(keys=[self._job_key(job_id)], args=args)) == 1

    def active_job_ids(self) -> list[str]:
        """Jobs submitted and not yet done or failed (what the watchdog looks after)."""
        return sorted(j.decode() for j in self.client.smembers(self._key("jobs", "active")))

    def active_job_for(self, model_id: str, stats_version: int, job_id: str) -> JobRecord | None:
        """Register ``job_id`` as the job computing (model, version), unless an unfinished job
        already is: then that job's record (a second submission joins the first)."""
        key = self._model_key(model_id) + f":v{stats_version}:job"
        while True:
            if self.client.set(key, job_id, nx=True, ex=PARTIAL_TTL_S):
                return None
            current = self.client.get(key)
            if current is None:
                continue
            record = self.get_job(current.decode())
            if record is not None and not record.state.finished:
                return record
            self.client.set(key, job_id, ex=PARTIAL_TTL_S)  # the earlier job finished or failed
            return None

    def claim(self, name: str, ttl_s: float) -> bool:
        """A lease on ``name`` for ``ttl_s`` seconds, held by whoever calls first."""
        return bool(self.client.set(self._key("lease", name), "1", nx=True, px=max(1, int(ttl_s * 1000))))
