"""Redis out of memory: recognise it, wait it out with back-off, and fail the job when it persists.

With ``maxmemory-policy noeviction`` (the only safe policy, see ``redis_checks``) a full Redis
refuses every command that could grow memory, and every command inside a MULTI, reads included;
it still serves plain reads and DEL. A task cannot ask Celery to retry it later then: a retry is a
new message, and publishing it is refused too. So the task waits in its own process, doubling the
pause, for up to ``oom_wait_s``; the work it repeats is idempotent. When Redis stays full, the job
is failed with the reason after its own partial moments are deleted (DEL is allowed, and frees the
room the failure record needs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 30.0


class RedisFull(Exception):
    """Redis stayed out of memory for longer than the task may wait."""

    def __init__(self, waited_s: float, cause: BaseException) -> None:
        super().__init__(f"Redis stayed out of memory for {waited_s:.0f} s (maxmemory reached with "
                         f"noeviction: it refuses writes): {_first_line(cause)}")
        self.waited_s = waited_s


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def is_out_of_memory(exc: BaseException | None) -> bool:
    """True for Redis's OOM refusal, however deep a library wrapped it."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, redis.OutOfMemoryError):
            return True
        if isinstance(exc, redis.ResponseError) and "maxmemory" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def wait_out_of_memory(action: Callable[[], T], wait_s: float, what: str,
                       on_wait: Callable[[], None] | None = None) -> T:
    """``action()``, repeated with doubling pauses while Redis is out of memory; RedisFull once
    ``wait_s`` seconds passed. Other errors pass through at once. ``action`` must be idempotent."""
    started = time.monotonic()
    pause = FIRST_PAUSE_S
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            waited = time.monotonic() - started
            if waited + pause > wait_s:
                raise RedisFull(waited, exc) from exc
            log.warning("%s: Redis is out of memory; trying again in %.1f s (waited %.0f of %.0f s)",
                        what, pause, waited, wait_s)
            if on_wait is not None:
                try:
                    on_wait()
                except Exception:
                    log.debug("counting an out-of-memory wait failed", exc_info=True)
            time.sleep(pause)
            pause = min(LONGEST_PAUSE_S, pause * 2)
