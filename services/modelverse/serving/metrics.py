"""Prometheus metrics of every serving process: time per stage, requests by status code.

Every search observes a few of these, so the labelled children are looked up once and kept
(``labels()`` hashes and locks on each call) and the stage timer is a plain class, not a
generator context manager."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

STAGE_SECONDS = Histogram(
    "modelverse_stage_seconds",
    "Time spent per stage of a request",
    ["service", "stage"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
REQUESTS = Counter(
    "modelverse_requests_total", "Requests answered, by RPC and status code", ["service", "rpc", "code"]
)
PARTIAL_RESPONSES = Counter(
    "modelverse_partial_responses_total", "Searches answered without some shard", ["service"]
)
SHED = Counter(
    "modelverse_shed_total", "Calls refused RESOURCE_EXHAUSTED by admission control, by reason "
    "(queue_full, deadline)", ["service", "rpc", "reason"],
)
QUEUED = Gauge("modelverse_queued_calls", "Calls waiting for a slot of admission control", ["service"])
HEDGES = Counter(
    "modelverse_shard_attempts_total", "Gateway attempts on shard replicas, by why they were started "
    "(first, hedge, failover)", ["service", "rpc", "why"],
)
HEALTHY = Gauge("modelverse_serving", "1 while the process reports SERVING on its health service", ["service"])


@lru_cache(maxsize=None)
def _stage_child(service: str, name: str) -> Any:
    return STAGE_SECONDS.labels(service, name)


@lru_cache(maxsize=None)
def _request_child(service: str, rpc: str, code: str) -> Any:
    return REQUESTS.labels(service, rpc, code)


def count_request(service: str, rpc: str, code: str) -> None:
    """One more answered request of ``rpc`` with status ``code`` (a StatusCode's name)."""
    _request_child(service, rpc, code).inc()


def count_shed(service: str, rpc: str, reason: str) -> None:
    SHED.labels(service, rpc, reason).inc()


class stage:  # noqa: N801  (used as ``with metrics.stage(service, name):``)
    """Time the block into modelverse_stage_seconds{service, stage}."""

    __slots__ = ("_child", "_start")

    def __init__(self, service: str, name: str) -> None:
        self._child = _stage_child(service, name)

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._child.observe(time.perf_counter() - self._start)


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """Expose /metrics over HTTP when a port is given (0 or None: no endpoint)."""
    if port:
        start_http_server(port, addr=host)
