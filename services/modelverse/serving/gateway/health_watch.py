"""The gateway's own health follows its shards': NOT_SERVING while no replica of any shard
answers a health check (every search would fail UNAVAILABLE: a load balancer should send the
traffic to another gateway), SERVING again as soon as one does."""

from __future__ import annotations

import logging
import threading
from typing import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from modelverse.serving import metrics
from modelverse.serving.gateway.fanout import ShardPool

log = logging.getLogger("modelverse.gateway")
CHECK_INTERVAL = 1.0
CHECK_TIMEOUT = 0.5


class ShardHealthWatch:
    def __init__(self, pool: ShardPool, servicer: health.HealthServicer, service_names: Sequence[str],
                 interval: float = CHECK_INTERVAL, timeout: float = CHECK_TIMEOUT) -> None:
        self.servicer = servicer
        self.service_names = ["", *service_names]
        self.interval = interval
        self.timeout = timeout
        self._stubs = [health_pb2_grpc.HealthStub(ch) for replicas in pool.channels for ch in replicas]
        self._serving: bool | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shard-health", daemon=True)

    def any_shard_answering(self) -> bool:
        for stub in self._stubs:
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=self.timeout)
            except grpc.RpcError:
                continue
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return True
        return False

    def check_once(self) -> bool:
        serving = self.any_shard_answering()
        if serving != self._serving:
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in self.service_names:
                self.servicer.set(name, status)
            metrics.HEALTHY.labels("gateway").set(1 if serving else 0)
            (log.info if serving else log.warning)(
                "gateway serving" if serving else "no shard answers: gateway NOT_SERVING")
            self._serving = serving
        return serving

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check_once()

    def start(self) -> ShardHealthWatch:
        self.check_once()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
