"""The model store of a cluster's fleet: statistics, metadata and thumbnails in Redis.

It stands behind the ``store.model_store.ModelStore`` Protocol, as the directory store does
(``put``, ``get``, ``get_stats``, ``get_thumbnails``, ``remove``, ``ids``, ``collection``), and
keeps a change feed of its models that the admin tails to serve what the fleet publishes. What
only the fleet keeps under the same prefix (partial moments, job records, leases) is in
``modelverse.fleet.redis_state``.

Keys (``P`` = the prefix, ``mv`` by default; ``H`` = a digest of the model id)::

    P:config               JSON: dim, rank, eps, encoder (fixed by the first write, as for a
                           directory store)
    P:models               set of model ids
    P:model:H              hash: meta (JSON record), stats (npz bytes), thumbs (``store.thumbnails``
                           blob, only when the fleet drew samples); written in one MULTI, so a reader
                           never sees new metadata with old statistics or thumbnails
    P:events               stream of {"event": "model_ready", "model_id", "stats_version", ...} and
                           {"event": "model_removed", "model_id"}, written in the same MULTI as the model

Redis must keep what it acknowledged: run it with ``appendonly yes`` (``appendfsync everysec``
or ``always``) and ``maxmemory-policy noeviction`` (see docs/FLEET.md); an evicting policy
would silently drop statistics or partials.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from modelverse.core.collection import Collection
from modelverse.core.reference import MissingStatisticsError
from modelverse.core.stats import DEFAULT_TAU, ModelStats
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

EVENTS_MAXLEN = 100_000
MODEL_READY = "model_ready"
MODEL_REMOVED = "model_removed"


def connect(url: str, retries: int = 6) -> redis.Redis:
    """A client that rides out a short Redis restart (exponential backoff, about 15 s in all)."""
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=5.0, base=0.2), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=5,
        health_check_interval=30,
    )


class RedisModelStore:
    def __init__(self, client: redis.Redis, prefix: str = "mv") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "mv", retries: int = 6) -> RedisModelStore:
        return cls(connect(url, retries), prefix)

    def __repr__(self) -> str:
        # Also the admin's name of its source in its follower's cursor file (serving/admin/
        # generator_jobs.py): a different text would make every admin reload the fleet's models.
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

    def _stored(self, model_id: str, meta: bytes) -> StoredModel:
        """A model's "meta" field, parsed (the statistics are in the same hash, not a file)."""
        return StoredModel.from_dict(json.loads(meta), where=f"{model_id!r} in {self!r}", stats_file="redis")

    def _version_of(self, model_id: str, meta: bytes | None) -> int:
        """The stats version a model's "meta" field records, 0 for a model not there."""
        return 0 if meta is None else self._stored(model_id, meta).stats_version

    def _read(self, model_id: str) -> tuple[StoredModel, bytes]:
        meta, stats = self.client.hmget(self._model_key(model_id), ["meta", "stats"])
        if meta is None or stats is None:
            raise ModelNotFoundError(f"no model {model_id!r} in {self!r}")
        return self._stored(model_id, meta), stats

    def get(self, model_id: str) -> StoredModel:
        return self._read(model_id)[0]

    def get_thumbnails(self, model_id: str) -> list[bytes]:
        """The model's stored thumbnails (PNG files), [] when it has none."""
        meta, blob = self.client.hmget(self._model_key(model_id), ["meta", "thumbs"])
        if meta is None:
            raise ModelNotFoundError(f"no model {model_id!r} in {self!r}")
        return [] if blob is None else thumbnails_from_bytes(blob, f"{model_id!r} in {self!r}")

    def get_stats(self, model_id: str) -> ModelStats:
        stored, payload = self._read(model_id)
        if hashlib.sha256(payload).hexdigest() != stored.stats_sha256:
            raise StoreCorruptError(f"{model_id!r} in {self!r}: statistics checksum mismatch")
        return read_stats(io.BytesIO(payload))  # type: ignore[arg-type]

    def stats_version(self, model_id: str) -> int:
        """The model's current stats version, 0 when it has none."""
        return self._version_of(model_id, self.client.hget(self._model_key(model_id), "meta"))

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
               pipe: redis.client.Pipeline, announce: Mapping[str, str] | None = None,
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
        event = {"event": MODEL_READY, "model_id": metadata.id, "stats_version": str(version), **(announce or {})}
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
                    self._write(metadata, stats, self._version_of(metadata.id, meta) + 1, pipe, thumbnails=thumbnails)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        return self.get(metadata.id)

    def put_version(self, metadata: ModelMetadata, stats: ModelStats, version: int, *, tau: float | None = None,
                    thumbnails: list[bytes] | None = None, announce: Mapping[str, str] | None = None) -> int:
        """Write the model's statistics as exactly ``version`` unless the store holds that
        version or a newer one already; returns the version the store holds then.

        Idempotent: a second write of one version finds it there and writes nothing, and an
        older version never overwrites a newer one. ``tau`` becomes the store's if this is its
        first write; ``announce`` adds fields to the change feed's "model_ready" event.
        """
        self._check(stats, tau)
        key = self._model_key(metadata.id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    current = self._version_of(metadata.id, pipe.hget(key, "meta"))
                    if current >= version:
                        pipe.unwatch()
                        return current
                    self._write(metadata, stats, version, pipe, announce, thumbnails)
                    pipe.execute()
                    return version
                except redis.WatchError:
                    continue

    def remove(self, model_id: str) -> None:
        key = self._model_key(model_id)
        with self.client.pipeline() as pipe:
            pipe.delete(key)
            pipe.srem(self._key("models"), model_id)
            pipe.xadd(self.events_key, {"event": MODEL_REMOVED, "model_id": model_id},
                      maxlen=EVENTS_MAXLEN, approximate=True)
            deleted, _, _ = pipe.execute()
        if not deleted:
            raise ModelNotFoundError(f"no model {model_id!r} in {self!r}")

    # -- the change feed ----------------------------------------------------------------------

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
