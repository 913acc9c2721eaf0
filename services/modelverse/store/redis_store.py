"""The model store for a cluster: statistics, metadata, partial moments and job records in Redis.

It offers the directory store's reading and writing interface (``put``, ``get``,
``get_stats``, ``remove``, ``ids``, ``collection``) and, for the indexing fleet, partial moments
under idempotent keys, job records and a "model ready" event stream.

Keys (``P`` = the prefix, ``mv`` by default; ``H`` = a digest of the model id)::

    P:config               JSON: dim, rank, eps, encoder (fixed by the first write, as for a
                           directory store)
    P:models               set of model ids
    P:model:H              hash: meta (JSON record), stats (npz bytes), thumbs (``store.thumbnails``
                           blob, only when the fleet drew samples); written in one MULTI, so a reader
                           never sees new metadata with old statistics or thumbnails
    P:partial:NAME         npz bytes of one chunk's PartialMoments (float64), expires after a week
    P:thumbs:NAME          the thumbnails a chunk kept (chunk 0), until the finaliser publishes them
    P:job:ID               hash: one job record (see modelverse.fleet.jobs.JobRecord)
    P:job:ID:chunks        set of finished chunk indices
    P:jobs                 sorted set of job ids by submission time
    P:jobs:active          set of job ids not yet done or failed (the watchdog's work list)
    P:model:H:vN:job       the job computing version N of a model (submissions join it)
    P:lease:NAME           short-lived leases (one watchdog resubmits a stalled job at a time)
    P:events               stream of {"event": "model_ready", "model_id", "stats_version", ...}

Redis must keep what it acknowledged: run it with ``appendonly yes`` (``appendfsync everysec``
or ``always``) and ``maxmemory-policy noeviction`` (see docs/FLEET.md); an evicting policy
would silently drop statistics or partials.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from modelverse.core.collection import Collection
from modelverse.core.moments import PartialMoments
from modelverse.core.reference import MissingStatisticsError
from modelverse.core.stats import DEFAULT_TAU, ModelStats
from modelverse.fleet.jobs import JobRecord, JobSpec, JobState
from modelverse.store.directory import StoreConfig, StoredModel
from modelverse.store.errors import (
    IncompatibleStatsError,
    ModelExistsError,
    ModelNotFoundError,
    StoreCorruptError,
    StoreError,
)
from modelverse.store.metadata import ModelMetadata, validate_model_id
from modelverse.store.stats_io import read_stats, stats_to_bytes
from modelverse.store.thumbnails import thumbnails_from_bytes, thumbnails_to_bytes

PARTIAL_TTL_S = 7 * 24 * 3600
EVENTS_MAXLEN = 100_000
MODEL_READY = "model_ready"

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


def connect(url: str, retries: int = 6) -> redis.Redis:
    """A client that rides out a short Redis restart (exponential backoff, about 15 s in all)."""
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=5.0, base=0.2), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=5,
        health_check_interval=30,
    )


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


class RedisStore:
    def __init__(self, client: redis.Redis, prefix: str = "mv") -> None:
        self.client = client
        self.prefix = prefix
        self._update_unless_finished = client.register_script(_UPDATE_UNLESS_FINISHED)
        self._mark_chunk_done = client.register_script(_MARK_CHUNK_DONE)
        self._advance_round = client.register_script(_ADVANCE_ROUND)
        self._start_job = client.register_script(_START_JOB)
        self._fail_when_full = client.register_script(_FAIL_WHEN_FULL)

    @classmethod
    def from_url(cls, url: str, prefix: str = "mv", retries: int = 6) -> RedisStore:
        return cls(connect(url, retries), prefix)

    def __repr__(self) -> str:
        kwargs = self.client.connection_pool.connection_kwargs
        return f"RedisStore({kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}, prefix={self.prefix!r})"

    # -- keys ---------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _model_key(self, model_id: str) -> str:
        return self._key("model", hashlib.sha256(validate_model_id(model_id).encode()).hexdigest()[:32])

    @property
    def events_key(self) -> str:
        return self._key("events")

    # -- configuration ----------------------------------------------------------------------

    @property
    def config(self) -> StoreConfig:
        raw = self.client.get(self._key("config"))
        if raw is None:
            raise StoreError(f"{self!r} holds no models yet")
        data = json.loads(raw)
        return StoreConfig(int(data["dim"]), int(data["rank"]), float(data["eps"]), str(data.get("encoder", "")),
                           float(data.get("tau", DEFAULT_TAU)))

    def ensure_config(self, config: StoreConfig) -> StoreConfig:
        """Fix dim/rank/eps/encoder (and tau) on the first write; later writes must match all but
        tau, which stays the first writer's."""
        value = json.dumps({"dim": config.dim, "rank": config.rank, "eps": config.eps, "encoder": config.encoder,
                            "tau": config.tau})
        self.client.set(self._key("config"), value, nx=True)
        kept = self.config
        if kept != config:
            raise IncompatibleStatsError(
                f"statistics with dim {config.dim}, rank {config.rank}, eps {config.eps}, encoder "
                f"{config.encoder!r} do not fit {self!r}, which holds dim {kept.dim}, rank {kept.rank}, "
                f"eps {kept.eps}, encoder {kept.encoder!r}"
            )
        return kept

    # -- reading ------------------------------------------------------------------------------

    def ids(self) -> list[str]:
        return sorted(m.decode() for m in self.client.smembers(self._key("models")))

    def __len__(self) -> int:
        return int(self.client.scard(self._key("models")))

    def __contains__(self, model_id: str) -> bool:
        return bool(self.client.hexists(self._model_key(model_id), "meta"))

    def _read(self, model_id: str) -> tuple[dict[str, Any], bytes]:
        meta, stats = self.client.hmget(self._model_key(model_id), ["meta", "stats"])
        if meta is None or stats is None:
            raise ModelNotFoundError(f"no model {model_id!r} in {self!r}")
        return json.loads(meta), stats

    @staticmethod
    def _stored(data: dict[str, Any]) -> StoredModel:
        record = data["record"]
        return StoredModel(
            metadata=ModelMetadata.from_dict(data["metadata"]),
            stats_version=int(record["stats_version"]),
            count=int(record["count"]),
            has_covariance=bool(record["has_covariance"]),
            has_samples=bool(record["has_samples"]),
            added_at=str(record["added_at"]),
            stats_file="redis",
            stats_sha256=str(record["stats_sha256"]),
            encoder=str(record.get("encoder") or ""),
            thumbnails=int(record.get("thumbnails") or 0),
        )

    def get(self, model_id: str) -> StoredModel:
        return self._stored(self._read(model_id)[0])

    def get_thumbnails(self, model_id: str) -> list[bytes]:
        """The model's stored thumbnails (PNG files), [] when it has none."""
        meta, blob = self.client.hmget(self._model_key(model_id), ["meta", "thumbs"])
        if meta is None:
            raise ModelNotFoundError(f"no model {model_id!r} in {self!r}")
        return [] if blob is None else thumbnails_from_bytes(blob, f"{model_id!r} in {self!r}")

    def get_stats(self, model_id: str) -> ModelStats:
        data, payload = self._read(model_id)
        if hashlib.sha256(payload).hexdigest() != data["record"]["stats_sha256"]:
            raise StoreCorruptError(f"{model_id!r} in {self!r}: statistics checksum mismatch")
        return read_stats(io.BytesIO(payload))  # type: ignore[arg-type]

    def stats_version(self, model_id: str) -> int:
        meta = self.client.hget(self._model_key(model_id), "meta")
        return 0 if meta is None else int(json.loads(meta)["record"]["stats_version"])

    def collection(self, *, full: bool = False, samples: bool = False) -> Collection:
        ids = self.ids()
        if not ids:
            raise StoreError(f"{self!r} holds no models yet")
        stats = [self.get_stats(model_id) for model_id in ids]
        if full and any(s.covariance is None for s in stats):
            raise MissingStatisticsError("some models have no stored full covariance")
        if samples and any(s.samples is None for s in stats):
            raise MissingStatisticsError("some models have no stored raw samples")
        collection = Collection.from_stats(ids, stats)
        return Collection(
            collection.ids,
            collection.means,
            collection.compressed,
            collection.full if full else None,
            collection.samples if samples else None,
        )

    # -- writing ------------------------------------------------------------------------------

    def _write(self, metadata: ModelMetadata, stats: ModelStats, version: int,
               pipe: redis.client.Pipeline, extra: dict[str, str] | None = None,
               thumbnails: list[bytes] | None = None) -> None:
        payload = stats_to_bytes(stats)
        blob = thumbnails_to_bytes(thumbnails) if thumbnails else None
        record = {
            "format_version": 1,
            "metadata": metadata.to_dict(),
            "record": {
                "stats_version": version,
                "stats_sha256": hashlib.sha256(payload).hexdigest(),
                "count": stats.count,
                "dim": stats.dim,
                "has_covariance": stats.covariance is not None,
                "has_samples": stats.samples is not None,
                "added_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "encoder": stats.encoder,
                "thumbnails": len(thumbnails or []),
            },
        }
        pipe.multi()
        key = self._model_key(metadata.id)
        pipe.hset(key, mapping={"meta": json.dumps(record), "stats": payload})
        if blob is None:  # a new version without thumbnails must not show the old version's
            pipe.hdel(key, "thumbs")
        else:
            pipe.hset(key, "thumbs", blob)
        pipe.sadd(self._key("models"), metadata.id)
        event = {"event": MODEL_READY, "model_id": metadata.id, "stats_version": str(version), **(extra or {})}
        pipe.xadd(self.events_key, event, maxlen=EVENTS_MAXLEN, approximate=True)

    def _check(self, stats: ModelStats, tau: float | None = None) -> None:
        self.ensure_config(StoreConfig(stats.dim, stats.compressed.rank, stats.compressed.eps, stats.encoder,
                                       DEFAULT_TAU if tau is None else tau))

    def put(self, metadata: ModelMetadata, stats: ModelStats, *, replace: bool = False,
            thumbnails: list[bytes] | None = None) -> StoredModel:
        """Add (or with ``replace``, replace) a model; its stats version goes up by one."""
        self._check(stats)
        key = self._model_key(metadata.id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    meta = pipe.hget(key, "meta")
                    if meta is not None and not replace:
                        raise ModelExistsError(f"model {metadata.id!r} is already in the store (use --replace to replace it)")
                    version = 1 if meta is None else int(json.loads(meta)["record"]["stats_version"]) + 1
                    self._write(metadata, stats, version, pipe, thumbnails=thumbnails)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        return self.get(metadata.id)

    def publish(self, spec: JobSpec, stats: ModelStats, tau: float | None = None,
                thumbnails: list[bytes] | None = None) -> int:
        """Write a job's statistics as exactly ``spec.stats_version`` and announce them.

        Idempotent: a finaliser delivered twice finds its version there and writes nothing.
        A job whose version was overtaken by a newer one does not overwrite it. ``tau`` (the
        encoder's temperature) becomes the store's if this is its first write.
        """
        self._check(stats, tau)
        key = self._model_key(spec.model_id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    meta = pipe.hget(key, "meta")
                    current = 0 if meta is None else int(json.loads(meta)["record"]["stats_version"])
                    if current >= spec.stats_version:
                        pipe.unwatch()
                        return current
                    self._write(spec.metadata, stats, spec.stats_version, pipe, {"job_id": spec.job_id}, thumbnails)
                    pipe.execute()
                    return spec.stats_version
                except redis.WatchError:
                    continue

    def remove(self, model_id: str) -> None:
        key = self._model_key(model_id)
        with self.client.pipeline() as pipe:
            pipe.delete(key)
            pipe.srem(self._key("models"), model_id)
            pipe.xadd(self.events_key, {"event": "model_removed", "model_id": model_id},
                      maxlen=EVENTS_MAXLEN, approximate=True)
            deleted, _, _ = pipe.execute()
        if not deleted:
            raise ModelNotFoundError(f"no model {model_id!r} in {self!r}")

    def last_event_id(self) -> str:
        """The id of the newest event ("0-0" when none): where a freshly loaded reader tails from."""
        newest = self.client.xrevrange(self.events_key, count=1)
        return newest[0][0].decode() if newest else "0-0"

    def events(self, after: str = "0-0", count: int = 1000, block_ms: int | None = None) -> list[tuple[str, dict[str, str]]]:
        """Events after stream id ``after`` (what a serving process tails to pick up models)."""
        reply = self.client.xread({self.events_key: after}, count=count, block=block_ms)
        return [
            (event_id.decode(), {k.decode(): v.decode() for k, v in fields.items()})
            for _, entries in reply
            for event_id, fields in entries
        ]

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
