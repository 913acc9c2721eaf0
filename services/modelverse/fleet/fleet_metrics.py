"""Fleet metrics for Prometheus: jobs by state, queue depth, chunks done, worker heartbeats.

The fleet's state lives in Redis, and a worker's tasks run in pool processes that a scrape of
the main process cannot see; so the numbers are kept in Redis (counters incremented by the
tasks, one heartbeat per worker) and read at scrape time by :class:`FleetCollector`. Any process
can expose them: a worker with ``--metrics-port``, or ``modelverse jobs --metrics`` (prints the
text format once, e.g. for node_exporter's textfile collector).

Keys (``P`` = the store prefix): ``P:metrics`` (a hash of counters), ``P:workers`` (a hash of
worker name -> last heartbeat, unix seconds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelverse.fleet.job_records import JobState
from modelverse.fleet.redis_state import RedisFleetState

CHUNKS_DONE = "chunks_done"
REFUSED_MESSAGES = "refused_messages"
OOM_WAITS = "oom_waits"
COUNTERS = {
    CHUNKS_DONE: "Chunks sampled, encoded and stored by the fleet's workers",
    REFUSED_MESSAGES: "Job messages refused by a worker (unsigned, forged or malformed)",
    OOM_WAITS: "Pauses of a task waiting for an out-of-memory Redis to accept writes",
}
HEARTBEAT_INTERVAL_S = 10.0
ALIVE_AFTER_S = 3 * HEARTBEAT_INTERVAL_S  # a worker that missed three beats counts as gone
FORGET_AFTER_S = 24 * 3600.0  # heartbeats of workers gone this long are dropped
JOBS_COUNTED = 10_000  # jobs by state: over the most recent this many job records
# kombu's Redis transport keeps a queue's messages in lists: the queue's name for priority 0
# and NAME + "\x06\x16" + N for the other priority steps.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED_INDEX = "unacked_index"


def _metrics_key(store: RedisFleetState) -> str:
    return f"{store.prefix}:metrics"


def _workers_key(store: RedisFleetState) -> str:
    return f"{store.prefix}:workers"


def increment(store: RedisFleetState, counter: str, by: int = 1) -> None:
    """Add to a fleet counter; best effort (a metric never fails a task: a full Redis refuses it)."""
    try:
        store.client.hincrby(_metrics_key(store), counter, by)
    except redis.RedisError:
        pass


def heartbeat(store: RedisFleetState, worker: str, now: float | None = None) -> None:
    """Record ``worker``'s beat and forget workers silent for a day (names carry a PID, so every
    restart adds one)."""
    now = time.time() if now is None else now
    key = _workers_key(store)
    store.client.hset(key, worker, repr(now))
    gone = [name for name, when in store.client.hgetall(key).items() if now - float(when) > FORGET_AFTER_S]
    if gone:
        store.client.hdel(key, *gone)


def queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


class FleetCollector(Collector):
    """Reads the fleet's numbers from Redis at each scrape."""

    def __init__(self, store: RedisFleetState, broker: redis.Redis, queue: str = "modelverse") -> None:
        self.store = store
        self.broker = broker
        self.queue = queue

    def describe(self) -> list[object]:
        return []  # collected at scrape time only: registering must not touch Redis

    def collect(self) -> Iterator[object]:
        up = GaugeMetricFamily("modelverse_fleet_redis_up", "Whether this process could read the fleet's Redis")
        try:
            families = list(self._families(time.time()))
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, now: float) -> Iterator[object]:
        client = self.store.client
        jobs = GaugeMetricFamily("modelverse_fleet_jobs",
                                 f"Indexing jobs by state (the most recent {JOBS_COUNTED} jobs)", labels=["state"])
        counts = self.store.job_states(JOBS_COUNTED)
        for state in JobState:
            jobs.add_metric([state.value], counts.get(state.value, 0))
        yield jobs

        with self.broker.pipeline(transaction=False) as pipe:  # reads only: they work on a full Redis
            for key in queue_keys(self.queue):
                pipe.llen(key)
            pipe.zcard(UNACKED_INDEX)
            *lengths, unacked = pipe.execute()
        depth = GaugeMetricFamily("modelverse_fleet_queue_depth",
                                  "Task messages waiting in the broker's queue", labels=["queue"])
        depth.add_metric([self.queue], sum(lengths))
        yield depth
        taken = GaugeMetricFamily("modelverse_fleet_unacked_messages",
                                  "Task messages taken by a worker and not yet acknowledged (running)")
        taken.add_metric([], unacked)
        yield taken

        values = {k.decode(): int(v) for k, v in client.hgetall(_metrics_key(self.store)).items()}
        for name, help_text in COUNTERS.items():
            counter = CounterMetricFamily(f"modelverse_fleet_{name}", help_text)
            counter.add_metric([], values.get(name, 0))
            yield counter

        beats = {k.decode(): float(v) for k, v in client.hgetall(_workers_key(self.store)).items()}
        last = GaugeMetricFamily("modelverse_fleet_worker_heartbeat_timestamp_seconds",
                                 "Last heartbeat of each worker (unix time)", labels=["worker"])
        for worker, when in sorted(beats.items()):
            if now - when < FORGET_AFTER_S:
                last.add_metric([worker], when)
        yield last
        alive = GaugeMetricFamily("modelverse_fleet_workers_alive",
                                  f"Workers with a heartbeat in the last {ALIVE_AFTER_S:.0f} s")
        alive.add_metric([], sum(now - when < ALIVE_AFTER_S for when in beats.values()))
        yield alive

