"""Calls to the shards: every shard in parallel, each from one of its replicas.

A replica that does not answer (UNAVAILABLE and other transport failures) is skipped for the
next one of the same shard; a shard none of whose replicas answers is reported missing, and
the caller decides (Search answers partial, ListModels fails). Answers that are the caller's
fault (INVALID_ARGUMENT, NOT_FOUND) are raised as they are.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import grpc

from modelverse.serving.gateway.errors import RequestError
from modelverse.serving.grpc_server import channel
from modelverse.v1 import shard_pb2_grpc

FAILOVER_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
PASS_THROUGH_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}


@dataclass
class FanOutResult:
    answers: dict[int, Any]
    missing: list[int]


class ShardPool:
    def __init__(self, shards: list[list[str]]) -> None:
        if not shards or any(not replicas for replicas in shards):
            raise ValueError("every shard needs at least one replica address")
        self.addresses = shards
        self.channels = [[channel(a) for a in replicas] for replicas in shards]
        self.stubs = [[shard_pb2_grpc.ShardServiceStub(c) for c in replicas] for replicas in self.channels]
        self._turns = [itertools.count() for _ in shards]  # round-robin over replicas
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.stubs)

    def close(self) -> None:
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

    def _settle(self, shard: int, order: list[int], first: grpc.Future | None, rpc: str, request: Any, deadline: float) -> Any | None:
        """The shard's answer, trying its replicas in order; None if none answered."""
        for attempt, replica in enumerate(order):
            try:
                if attempt == 0 and first is not None:
                    return first.result()
                call: Callable[..., Any] = getattr(self.stubs[shard][replica], rpc)
                return call(request, timeout=self._timeout(deadline))
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise RequestError(code, f"shard {shard} did not answer before the deadline") from exc
                if code in PASS_THROUGH_CODES:
                    raise RequestError(code, exc.details() or code.name) from exc
                if code not in FAILOVER_CODES:
                    raise RequestError(grpc.StatusCode.INTERNAL, f"shard {shard}: {code.name}: {exc.details()}") from exc
        return None

    def fan_out(self, rpc: str, request: Any, deadline: float, shards: list[int] | None = None) -> FanOutResult:
        targets = list(range(len(self.stubs))) if shards is None else shards
        timeout = self._timeout(deadline)
        orders = {s: self._order(s) for s in targets}
        futures = {s: getattr(self.stubs[s][orders[s][0]], rpc).future(request, timeout=timeout) for s in targets}
        answers: dict[int, Any] = {}
        missing: list[int] = []
        try:
            for s in targets:
                answer = self._settle(s, orders[s], futures[s], rpc, request, deadline)
                if answer is None:
                    missing.append(s)
                else:
                    answers[s] = answer
        finally:
            for f in futures.values():
                f.cancel()
        return FanOutResult(answers, missing)

    def call(self, shard: int, rpc: str, request: Any, deadline: float) -> Any:
        answer = self._settle(shard, self._order(shard), None, rpc, request, deadline)
        if answer is None:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, f"no replica of shard {shard} is answering")
        return answer
