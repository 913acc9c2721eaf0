"""Prometheus metrics of every serving process: time per stage, requests by status code."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import Counter, Histogram, start_http_server

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


@contextmanager
def stage(service: str, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(service, name).observe(time.perf_counter() - start)


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """Expose /metrics over HTTP when a port is given (0 or None: no endpoint)."""
    if port:
        start_http_server(port, addr=host)
