"""What the gateway learns about its shard replicas as it calls them: how long an answer usually
takes (when to hedge) and which replicas were slow or silent lately (whom to ask last).

A hung replica (SIGSTOPped, swapping, stuck on a lock) accepts connections and then says
nothing; only time reveals it. So every attempt that times out, or loses a hedged race, makes
its replica *suspect* for a cool-down: suspects are asked after the healthy replicas of their
shard, and once the cool-down ends they are tried first again (that is how a recovered replica
gets its share of the load back).
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

# Before enough answers are seen, hedge after this long: far above a healthy loopback Recall
# (a few ms), far below any deadline a client would set.
DEFAULT_HEDGE_DELAY = 0.05
MIN_HEDGE_DELAY = 0.002
HEDGE_QUANTILE = 95.0
LATENCY_WINDOW = 256  # recent answers per RPC the quantile is computed from
RECOMPUTE_EVERY = 32  # the quantile is refreshed after this many new answers, not on every call
SUSPECT_SECONDS = 2.0
# Hedges may add at most this fraction to the first attempts (plus a small burst): on a busy
# machine the p95 moves and hedges would otherwise add load exactly when there is least room.
HEDGE_BUDGET_FRACTION = 0.1
HEDGE_BURST = 10.0


class HedgeBudget:
    """A token bucket: every first attempt earns ``fraction`` of a hedge, up to ``burst`` saved."""

    def __init__(self, fraction: float = HEDGE_BUDGET_FRACTION, burst: float = HEDGE_BURST) -> None:
        self._fraction = fraction
        self._burst = burst
        self._tokens = burst
        self._lock = threading.Lock()

    def earn(self) -> None:
        with self._lock:
            self._tokens = min(self._burst, self._tokens + self._fraction)

    def spend(self) -> bool:
        with self._lock:
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class LatencyTracker:
    """The recent p95 of successful attempts, per RPC name."""

    def __init__(self, default: float = DEFAULT_HEDGE_DELAY) -> None:
        self._default = default
        self._lock = threading.Lock()
        self._samples: dict[str, deque[float]] = {}
        self._since_recompute: dict[str, int] = {}
        self._quantile: dict[str, float] = {}

    def observe(self, rpc: str, seconds: float) -> None:
        with self._lock:
            window = self._samples.setdefault(rpc, deque(maxlen=LATENCY_WINDOW))
            window.append(seconds)
            count = self._since_recompute.get(rpc, 0) + 1
            if count >= RECOMPUTE_EVERY or rpc not in self._quantile and len(window) >= 8:
                self._quantile[rpc] = float(np.percentile(np.fromiter(window, dtype=np.float64), HEDGE_QUANTILE))
                count = 0
            self._since_recompute[rpc] = count

    def hedge_delay(self, rpc: str) -> float:
        with self._lock:
            return max(MIN_HEDGE_DELAY, self._quantile.get(rpc, self._default))


class ReplicaHealth:
    """Per shard, per replica: until when it is suspect (monotonic seconds)."""

    def __init__(self, shape: list[int], cooldown: float = SUSPECT_SECONDS) -> None:
        self._suspect_until = [[0.0] * replicas for replicas in shape]
        self._cooldown = cooldown
        self._lock = threading.Lock()

    def mark_slow(self, shard: int, replica: int) -> None:
        with self._lock:
            self._suspect_until[shard][replica] = time.monotonic() + self._cooldown

    def mark_answered(self, shard: int, replica: int) -> None:
        with self._lock:
            self._suspect_until[shard][replica] = 0.0

    def healthy_first(self, shard: int, order: list[int]) -> list[int]:
        """``order`` (the round-robin's) with the currently suspect replicas moved to the end."""
        now = time.monotonic()
        with self._lock:
            until = self._suspect_until[shard]
            return [r for r in order if until[r] <= now] + [r for r in order if until[r] > now]
