"""Calls to the shards: every shard in parallel, each from one of its replicas.

A replica that does not answer (UNAVAILABLE and other transport failures) is skipped for the
next one of the same shard; a shard none of whose replicas answers is reported missing, and
the caller decides (Search answers partial, ListModels fails). Answers that are the caller's
fault (INVALID_ARGUMENT, NOT_FOUND) are raised as they are.
"""

from __future__ import annotations

import itertools
from concurrent import futures
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import grpc

from modelverse.security.tls import ClientTLS
from modelverse.serving.gateway.errors import RequestError
from modelverse.serving.grpc_server import channel
from modelverse.serving.messages import bounded
from modelverse.v1 import shard_pb2_grpc

FAILOVER_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
PASS_THROUGH_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
                      grpc.StatusCode.DATA_LOSS}  # DATA_LOSS: the store every replica reads


@dataclass
class FanOutResult:
    answers: dict[int, Any]
    missing: list[int]


class ShardPool:
    def __init__(self, shards: list[list[str]], tls: ClientTLS | None = None) -> None:
        """``tls``: reach the shards over TLS (mutual when it holds a client certificate)."""
        if not shards or any(not replicas for replicas in shards):
            raise ValueError("every shard needs at least one replica address")
        self.addresses = shards
        self.channels = [[channel(a, tls=tls) for a in replicas] for replicas in shards]
        self.stubs = [[shard_pb2_grpc.ShardServiceStub(c) for c in replicas] for replicas in self.channels]
        self._turns = [itertools.count() for _ in shards]  # round-robin over replicas
        self._lock = threading.Lock()
        # Calls to the other shards of a fan-out; enough threads for every gateway worker's.
        self._executor = futures.ThreadPoolExecutor(max_workers=max(4, 16 * len(shards)), thread_name_prefix="fanout")

    def __len__(self) -> int:
        return len(self.stubs)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for replicas in self.channels:
            for ch in replicas:
                ch.close()

    def _order(self, shard: int) -> list[int]:
        with self._lock:
            start = next(self._turns[shard])
        n = len(self.stubs[shard])
        return [(start + i) % n for i in range(n)]

    @staticmethod
    def _timeout(deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline expired before the shards answered")
        return remaining

    def _settle(self, shard: int, order: list[int], rpc: str, request: Any, deadline: float) -> Any | None:
        """The shard's answer, trying its replicas in order; None if none answered."""
        for replica in order:
            try:
                call: Callable[..., Any] = getattr(self.stubs[shard][replica], rpc)
                return call(request, timeout=self._timeout(deadline))
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise RequestError(code, f"shard {shard} did not answer before the deadline") from exc
                if code in PASS_THROUGH_CODES:
                    raise RequestError(code, bounded(exc.details() or code.name)) from exc
                if code not in FAILOVER_CODES:
                    raise RequestError(grpc.StatusCode.INTERNAL, f"shard {shard}: {code.name}: {exc.details()}") from exc
        return None

    def fan_out(self, rpc: str, request: Any, deadline: float, shards: list[int] | None = None) -> FanOutResult:
        """Every target shard at once: the first in this thread, the others on the pool's
        threads, each a blocking call (a gRPC ``.future()`` on a sync channel starts a
        channel-spin thread per call, which cost more CPU than the call at 200 QPS)."""
        targets = list(range(len(self.stubs))) if shards is None else shards
        self._timeout(deadline)
        orders = {s: self._order(s) for s in targets}
        others = {s: self._executor.submit(self._settle, s, orders[s], rpc, request, deadline) for s in targets[1:]}
        answers: dict[int, Any] = {}
        missing: list[int] = []
        try:
            settled = {targets[0]: self._settle(targets[0], orders[targets[0]], rpc, request, deadline)} if targets else {}
            for s, future in others.items():
                settled[s] = future.result()
        finally:
            for future in others.values():
                future.cancel()
        for s in targets:
            if settled.get(s) is None:
                missing.append(s)
            else:
                answers[s] = settled[s]
        return FanOutResult(answers, missing)

    def call(self, shard: int, rpc: str, request: Any, deadline: float) -> Any:
        answer = self._settle(shard, self._order(shard), rpc, request, deadline)
        if answer is None:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, f"no replica of shard {shard} is answering")
        return answer
