"""Start-up checks of the fleet's Redis: no eviction, and some persistence.

Redis holds the cluster's statistics, job records, partial moments and the broker's queues. An
evicting ``maxmemory-policy`` deletes any of them silently under memory pressure (a queued chunk
vanishes, a job waits for ever, a model's statistics disappear), so a worker or the admin refuses
to start on one. Without persistence (no AOF and no RDB snapshots) a Redis restart loses
everything; that is a warning, not a refusal (a throw-away test Redis is legitimate).

The settings are read with INFO (allowed to most ACL users) and ``CONFIG GET save`` (often
not: then the RDB part is reported as unknown).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from modelverse.errors import FailedPreconditionError

log = logging.getLogger(__name__)

SAFE_POLICY = "noeviction"


class UnsafeRedisError(FailedPreconditionError, RuntimeError):
    """The Redis would silently delete the fleet's data; the process refuses to start."""


@dataclass(frozen=True)
class RedisSettings:
    maxmemory_policy: str
    maxmemory: int
    aof_enabled: bool
    rdb_save: str | None  # the "save" setting; None when CONFIG is not allowed

    @property
    def persistent(self) -> bool | None:
        """True with an AOF or RDB snapshots, False with neither, None when unknown."""
        if self.aof_enabled or self.rdb_save:
            return True
        return None if self.rdb_save is None else False


def read_settings(client: redis.Redis) -> RedisSettings:
    memory = client.info("memory")
    persistence = client.info("persistence")
    try:
        save = client.config_get("save").get("save", "")
        rdb_save: str | None = save.decode() if isinstance(save, bytes) else str(save)
    except redis.ResponseError:  # CONFIG renamed away or not allowed to this ACL user
        rdb_save = None
    return RedisSettings(
        maxmemory_policy=str(memory.get("maxmemory_policy", "unknown")),
        maxmemory=int(memory.get("maxmemory", 0)),
        aof_enabled=bool(int(persistence.get("aof_enabled", 0))),
        rdb_save=rdb_save,
    )


def problems(settings: RedisSettings) -> tuple[list[str], list[str]]:
    """(reasons to refuse, warnings) for these settings."""
    refuse = []
    warn = []
    if settings.maxmemory_policy != SAFE_POLICY:
        refuse.append(f"maxmemory-policy is {settings.maxmemory_policy}: under memory pressure Redis would "
                      f"silently delete queued chunks, job records and statistics; set "
                      f"`maxmemory-policy {SAFE_POLICY}` (writes then fail loudly instead)")
    if settings.persistent is False:
        warn.append("Redis persists nothing (appendonly no, no RDB save points): a Redis restart loses "
                    "every statistic, job and queued chunk; set `appendonly yes` (docs/FLEET.md)")
    elif settings.persistent is None:
        warn.append("Redis has no AOF and CONFIG GET save is not allowed here: cannot tell whether it "
                    "persists anything (appendonly yes is recommended)")
    return refuse, warn


def check_redis(url: str, what: str, *, allow_eviction: bool = False, client: redis.Redis | None = None) -> list[str]:
    """Check the Redis at ``url`` for ``what`` (e.g. "worker", "admin"); raise UnsafeRedisError on
    an evicting policy unless ``allow_eviction``; log and return the warnings. An unreachable
    Redis is a warning too: the process waits for it as before and is checked at its next start."""
    own = client is None
    client = client or redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    try:
        settings = read_settings(client)
    except redis.AuthenticationError:
        raise  # a wrong password is not a reason to wait: say so at once
    except redis.RedisError as exc:
        message = f"cannot check the settings of the {what}'s Redis ({type(exc).__name__}: {str(exc)[:200]})"
        log.warning(message)
        return [message]
    finally:
        if own:
            client.close()
    refuse, warn = problems(settings)
    if refuse and not allow_eviction:
        raise UnsafeRedisError(f"the {what}'s Redis is unsafe: " + "; ".join(refuse)
                               + " (or start with --allow-evicting-redis to accept the risk)")
    for message in [*refuse, *warn]:
        log.warning("the %s's Redis: %s", what, message)
    return refuse + warn
