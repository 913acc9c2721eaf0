"""Reaching the fleet's Redis from the CLI: a broker or store that does not answer is one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modelverse.errors import UnavailableError
from modelverse.store.errors import StoreError


class FleetUnreachableError(UnavailableError, StoreError):
    """The broker or the Redis store does not answer; printed as one line."""


@contextmanager
def reaching(url: str) -> Iterator[None]:
    """Turn Redis's and kombu's connection errors inside the block into FleetUnreachableError."""
    import redis
    from kombu.exceptions import OperationalError

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OperationalError) as exc:
        raise FleetUnreachableError(f"cannot reach Redis at {url} ({exc})") from exc
