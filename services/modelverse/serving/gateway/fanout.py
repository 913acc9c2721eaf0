"""Calls to the shards: every shard in parallel, each from one of its replicas.

A replica that does not answer (UNAVAILABLE and other transport failures) is skipped for the
next one of the same shard. A replica that answers *slowly*, or not at all (hung: it accepts the
connection and says nothing), is handled with time:

- each attempt gets its share of what is left of the deadline (with two replicas the first gets
  half), so a timed-out attempt leaves time to ask the next replica: a timeout fails over;
- an attempt that has not answered after the recent p95 of answers is *hedged*: the next replica
  is asked too, the first answer wins and the other call is cancelled;
- a replica that timed out or lost a race is asked last for a while (``replicas.ReplicaHealth``);
- the shards are given a little less than the caller's deadline, so that a shard none of whose
  replicas answers in time is reported missing in time for a partial answer.

A shard none of whose replicas answers is reported missing, and the caller decides (Search
answers partial, ListModels fails). Answers that are the caller's fault (INVALID_ARGUMENT,
NOT_FOUND) are raised as they are.
"""

from __future__ import annotations

import contextvars
import itertools
import queue
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.trace import Span, StatusCode

from modelverse.errors import DeadlineExceededError, UnavailableError, error_for_status
from modelverse.security.tls import ClientTLS
from modelverse.serving import metrics
from modelverse.serving.gateway.replicas import HedgeBudget, LatencyTracker, ReplicaHealth
from modelverse.serving.grpc_server import channel
from modelverse.serving.messages import bounded
from modelverse.serving.request_context import outgoing_metadata
from modelverse.serving.tracing import OFF, Tracing
from modelverse.v1 import shard_pb2_grpc

FAILOVER_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # a shard shedding load: another replica may have room
    grpc.StatusCode.DEADLINE_EXCEEDED,  # this attempt's share of the deadline: the next may answer
}
PASS_THROUGH_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
                      grpc.StatusCode.DATA_LOSS}  # DATA_LOSS: the store every replica reads
# Kept back from the caller's deadline for merging and answering: a shard that has not answered
# by then is missing (partial answer) rather than the whole search late.
ANSWER_RESERVE_FRACTION = 0.1
MAX_ANSWER_RESERVE = 0.1


def shard_deadline(deadline: float) -> float:
    """The deadline the shards are given for a caller's ``deadline`` (monotonic seconds)."""
    remaining = deadline - time.monotonic()
    return deadline - min(MAX_ANSWER_RESERVE, max(0.0, remaining) * ANSWER_RESERVE_FRACTION)


@dataclass
class FanOutResult:
    answers: dict[int, Any]
    missing: list[int]


class ShardPool:
    def __init__(self, shards: list[list[str]], tls: ClientTLS | None = None, tracing: Tracing = OFF) -> None:
        """``tls``: reach the shards over TLS (mutual when it holds a client certificate);
        ``tracing``: a client span per attempt, its context sent along (off by default)."""
        if not shards or any(not replicas for replicas in shards):
            raise ValueError("every shard needs at least one replica address")
        self.addresses = shards
        self.channels = [[channel(a, tls=tls) for a in replicas] for replicas in shards]
        self.stubs = [[shard_pb2_grpc.ShardServiceStub(c) for c in replicas] for replicas in self.channels]
        self.tracing = tracing
        self.latency = LatencyTracker()
        self.health = ReplicaHealth([len(replicas) for replicas in shards])
        self.hedges = HedgeBudget()
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
        return self.health.healthy_first(shard, [(start + i) % n for i in range(n)])

    @staticmethod
    def _timeout(deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError("the deadline expired before the shards answered")
        return remaining

    # -- one attempt's bookkeeping ------------------------------------------------------------------

    def _start_span(self, shard: int, replica: int, rpc: str) -> Span:
        return self.tracing.start_client_span(f"shard {shard} {rpc}", {
            "rpc.system": "grpc", "rpc.service": "modelverse.v1.ShardService", "rpc.method": rpc,
            "modelverse.shard": shard, "modelverse.replica": replica,
            "server.address": self.addresses[shard][replica],
        })

    def _metadata(self, span: Span) -> tuple[tuple[str, str], ...]:
        return outgoing_metadata() + self.tracing.metadata_for(span)

    def _judge(self, shard: int, replica: int, exc: grpc.RpcError, span: Span) -> None:
        """Raise what the caller must see; return when the next replica should be asked."""
        code = exc.code()
        span.set_status(StatusCode.ERROR, code.name)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            self.health.mark_slow(shard, replica)
        if code in PASS_THROUGH_CODES:
            raise error_for_status(code.name, bounded(exc.details() or code.name)) from exc
        if code not in FAILOVER_CODES:  # e.g. a shard refusing the gateway's key: ours to fix, not the caller's
            raise RuntimeError(f"shard {shard} answered {code.name}: {exc.details()}") from exc

    def _answered(self, shard: int, replica: int, rpc: str, seconds: float) -> None:
        self.latency.observe(rpc, seconds)
        self.health.mark_answered(shard, replica)

    # -- one shard ------------------------------------------------------------------------------------

    def _settle(self, shard: int, order: list[int], rpc: str, request: Any, deadline: float) -> Any | None:
        """The shard's answer from one of its replicas (in ``order``); None if none answered in time."""
        if len(order) == 1:
            return self._settle_single(shard, order[0], rpc, request, deadline)
        return self._settle_hedged(shard, order, rpc, request, deadline)

    def _settle_single(self, shard: int, replica: int, rpc: str, request: Any, deadline: float) -> Any | None:
        """A blocking call: no replica to fail over to or hedge with (and a ``.future()`` on a
        sync channel starts a channel-spin thread per call, which costs CPU at high QPS)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        span = self._start_span(shard, replica, rpc)
        started = time.perf_counter()
        try:
            answer = getattr(self.stubs[shard][replica], rpc)(request, timeout=remaining, metadata=self._metadata(span))
        except grpc.RpcError as exc:
            self._judge(shard, replica, exc, span)
            return None
        finally:
            span.end()
        self._answered(shard, replica, rpc, time.perf_counter() - started)
        return answer

    def _settle_hedged(self, shard: int, order: list[int], rpc: str, request: Any, deadline: float) -> Any | None:
        """Replicas asked one after another as attempts fail, time out or run past the hedge
        delay; several may run at once, the first answer wins and the others are cancelled."""
        untried = list(order)
        running: dict[int, tuple[grpc.Future, Span, float]] = {}
        finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        hedge_delay = self.latency.hedge_delay(rpc)
        last_launch = 0.0

        def launch(why: str) -> None:
            nonlocal last_launch
            metrics.HEDGES.labels("gateway", rpc, why).inc()
            replica = untried.pop(0)
            # Each attempt not yet started gets an equal share of what is left; the last gets all.
            timeout = max(0.001, (deadline - time.monotonic()) / (len(untried) + 1))
            span = self._start_span(shard, replica, rpc)
            span.set_attribute("modelverse.attempt_timeout_s", round(timeout, 4))
            call = getattr(self.stubs[shard][replica], rpc).future(request, timeout=timeout, metadata=self._metadata(span))
            last_launch = time.monotonic()
            running[replica] = (call, span, time.perf_counter())
            call.add_done_callback(lambda _, r=replica: finished.put(r))

        may_hedge = True
        try:
            launch("first")
            self.hedges.earn()
            while running:
                now = time.monotonic()
                if now >= deadline:
                    return None
                wake = min(deadline, last_launch + hedge_delay) if untried and may_hedge else deadline
                try:
                    replica = finished.get(timeout=max(0.0, wake - now))
                except queue.Empty:
                    if untried and may_hedge and time.monotonic() < deadline:
                        if self.hedges.spend():
                            launch("hedge")  # the first attempt is slower than usual
                        else:  # out of budget: the attempt's own timeout share fails it over
                            may_hedge = False
                    continue
                call, span, started = running.pop(replica)
                exc = call.exception()
                if exc is None:
                    self._answered(shard, replica, rpc, time.perf_counter() - started)
                    for slower in running:  # they lost the race: asked last for a while
                        self.health.mark_slow(shard, slower)
                    span.end()
                    return call.result()
                try:
                    self._judge(shard, replica, exc, span)
                finally:
                    span.end()
                if untried:
                    launch("failover")  # fail over at once
            return None
        finally:
            for call, span, _ in running.values():
                call.cancel()
                span.set_attribute("modelverse.cancelled", True)
                span.end()

    # -- every shard ----------------------------------------------------------------------------------

    def fan_out(self, rpc: str, request: Any, deadline: float, shards: list[int] | None = None) -> FanOutResult:
        """Every target shard at once: the first in this thread, the others on the pool's
        threads (with this thread's context: request id, trace), each settled by ``_settle``."""
        targets = list(range(len(self.stubs))) if shards is None else shards
        self._timeout(deadline)
        callers_deadline, deadline = deadline, shard_deadline(deadline)
        orders = {s: self._order(s) for s in targets}
        others = {s: self._executor.submit(contextvars.copy_context().run, self._settle, s, orders[s], rpc, request, deadline)
                  for s in targets[1:]}
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
        if targets and not answers:
            self._expired(callers_deadline)
        return FanOutResult(answers, missing)

    @staticmethod
    def _expired(callers_deadline: float) -> None:
        """No shard answered. If the caller's own deadline is gone too (it was too short to
        reach a shard), that is DEADLINE_EXCEEDED; shards that failed or hung while the
        caller's time lasted leave the caller to answer UNAVAILABLE within it."""
        if time.monotonic() >= callers_deadline:
            raise DeadlineExceededError("the deadline expired before any shard answered")

    def call(self, shard: int, rpc: str, request: Any, deadline: float) -> Any:
        self._timeout(deadline)
        answer = self._settle(shard, self._order(shard), rpc, request, shard_deadline(deadline))
        if answer is None:
            self._expired(deadline)
            raise UnavailableError(f"no replica of shard {shard} answered in time")
        return answer
