"""Admission control of a serving process: a bounded number of calls at work, a bounded queue in
front of them, and no queued call kept past the point where it can still be answered in time.

A call is refused at once with RESOURCE_EXHAUSTED (the caller may retry elsewhere or later, and a
gateway fails over to another shard replica) when

- the queue is full, or
- its expected wait (the calls ahead of it) plus the method's usual service time is longer than
  the time its caller left it (``context.time_remaining()``);

and a call that waited for a slot until only its service time was left is refused then, still
before its deadline. Without this, a burst larger than the thread pool waits in the pool's queue
and every call in it ends DEADLINE_EXCEEDED at exactly its deadline, after the work for most of
them was done for nobody.

The server's thread pool must have a thread for every call admitted or queued, plus a few for
health checks, which are never held back: build it with ``AdmissionLimits.threads()`` threads.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc

from modelverse.serving import metrics
from modelverse.serving.interceptors import Behaviour, UnaryCallInterceptor

log = logging.getLogger("modelverse.admission")
SPARE_THREADS = 4  # health checks and reflection, which are never queued
NO_DEADLINE_WAIT = 30.0  # the longest a call without a deadline waits for a slot
SERVICE_TIME_WEIGHT = 0.2  # weight of the newest call in the moving average of service times


@dataclass(frozen=True)
class AdmissionLimits:
    concurrency: int = 8  # calls at work at once
    queue: int = 16  # calls waiting for a slot

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.queue < 0:
            raise ValueError(f"admission: concurrency must be >= 1 and queue >= 0, got {self.concurrency} and {self.queue}")

    def threads(self) -> int:
        return self.concurrency + self.queue + SPARE_THREADS

    def maximum_concurrent_rpcs(self) -> int:
        """gRPC's own bound, checked on the server's polling thread before a call takes a thread:
        one call per thread, so that no call waits unseen in the pool's queue, where admission
        control cannot refuse it at once (a burst beyond it is refused by gRPC itself)."""
        return self.threads()


def admission_from_args(args: Any, service: str) -> AdmissionControl:
    """Admission control from settings' ``workers`` and ``queue`` (settings.common.AdmissionSettings)."""
    try:
        return AdmissionControl(AdmissionLimits(args.workers, args.queue), service)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


class ServiceTimes:
    """An exponentially weighted moving average of each method's time at work (seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._average: dict[str, float] = {}

    def observe(self, method: str, seconds: float) -> None:
        with self._lock:
            previous = self._average.get(method)
            self._average[method] = seconds if previous is None else previous + SERVICE_TIME_WEIGHT * (seconds - previous)

    def expected(self, method: str) -> float:
        with self._lock:
            return self._average.get(method, 0.0)


class Overloaded(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class AdmissionControl(UnaryCallInterceptor):
    """Put it last in a server's interceptor list: calls refused by the interceptors before it
    (no API key) take no slot."""

    def __init__(self, limits: AdmissionLimits, service: str) -> None:
        self.limits = limits
        self.service = service
        self.times = ServiceTimes()
        self._slots = threading.Semaphore(limits.concurrency)
        self._lock = threading.Lock()
        self._working = 0
        self._waiting = 0

    def around(self, rpc: str, behaviour: Behaviour) -> Behaviour:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                self._enter(rpc, context.time_remaining())
            except Overloaded as refusal:
                metrics.count_shed(self.service, rpc, refusal.reason)
                metrics.count_request(self.service, rpc, grpc.StatusCode.RESOURCE_EXHAUSTED.name)
                log.info("call shed", extra={"rpc": rpc, "reason": refusal.reason})
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message)
            started = time.perf_counter()
            try:
                return behaviour(request, context)
            finally:
                self.times.observe(rpc, time.perf_counter() - started)
                self._leave()

        return run

    def _enter(self, rpc: str, remaining: float | None) -> None:
        """Take a slot (waiting for one if need be) or raise Overloaded."""
        if remaining is None or remaining > 1e6:
            remaining = NO_DEADLINE_WAIT
        service = self.times.expected(rpc)
        with self._lock:
            if self._working < self.limits.concurrency and self._slots.acquire(blocking=False):
                self._working += 1
                return
            if self._waiting >= self.limits.queue:
                raise Overloaded("queue_full", f"{self.service} is overloaded ({self.limits.queue} calls queued); retry later")
            # The calls ahead finish about one service time apart per slot.
            expected_wait = (self._waiting // self.limits.concurrency + 1) * service
            if expected_wait + service > remaining:
                raise Overloaded("deadline", f"{self.service} is overloaded: this call would not be answered "
                                             f"within its deadline ({remaining:.3f} s left); retry later")
            self._waiting += 1
        metrics.QUEUED.labels(self.service).inc()
        got = False
        try:
            got = self._slots.acquire(timeout=max(0.0, remaining - service))
        finally:
            metrics.QUEUED.labels(self.service).dec()
            with self._lock:
                self._waiting -= 1
                if got:
                    self._working += 1
        if not got:
            raise Overloaded("deadline", f"{self.service} is overloaded: no slot freed in time for this call's "
                                         "deadline; retry later")

    def _leave(self) -> None:
        with self._lock:
            self._working -= 1
        self._slots.release()
