"""Check at start that a Redis URL lets us in, so a wrong password or ACL user is reported at once.

redis-py raises a wrong password as ``AuthenticationError``, a subclass of ``ConnectionError``,
so Celery's and our retry loops treated it as a network fault and retried it for minutes. A
process of the fleet (worker, admin in broker mode) calls ``check_redis_access`` before it
starts: bad credentials, a user the ACL forbids, or a TLS failure (``rediss://``) end it with a
clear message. A Redis that is merely not up yet is left to the usual retries.

URLs: ``redis://[[USER]:PASSWORD@]HOST:PORT/DB`` (``requirepass`` or ACL users) and
``rediss://...?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem`` for TLS (docs/SECURITY.md).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from modelverse.errors import FailedPreconditionError

log = logging.getLogger("modelverse.fleet")


class RedisAccessError(FailedPreconditionError, ValueError):
    """Redis refuses us (credentials, ACL, TLS): retrying will not help."""


def redacted(url: str) -> str:
    """``url`` with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_redis_access(url: str, what: str, timeout_s: float = 5.0) -> bool:
    """Ping ``url`` once; raises RedisAccessError when Redis refuses us; returns False (and
    logs) when it does not answer at all, True when it let us in."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                  retry=Retry(NoBackoff(), 0))
    shown = redacted(url)
    try:
        client.ping()
        return True
    except redis.AuthenticationError as exc:
        raise RedisAccessError(f"{what} {shown}: Redis refused the credentials ({exc}); check the URL's "
                               "user and password") from None
    except redis.exceptions.NoPermissionError as exc:
        raise RedisAccessError(f"{what} {shown}: the ACL user may not run the commands we need ({exc})") from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise RedisAccessError(f"{what} {shown}: Redis wants a password ({exc}); put it in the URL: "
                                   "redis://:PASSWORD@HOST:PORT/DB") from None
        raise
    except redis.ConnectionError as exc:
        if "SSL" in str(exc) or "certificate" in str(exc).lower():
            raise RedisAccessError(f"{what} {shown}: TLS to Redis failed ({exc})") from None
        log.warning("redis not answering yet", extra={"what": what, "url": shown, "error": str(exc)})
        return False
    finally:
        client.close()


def check_fleet_redis(urls: dict[str, str]) -> None:
    """``check_redis_access`` on each distinct URL of {role: url} (broker, store, result backend)."""
    seen: set[str] = set()
    for what, url in urls.items():
        if url and url not in seen and urlsplit(url).scheme in ("redis", "rediss", "unix"):
            seen.add(url)
            check_redis_access(url, what)
