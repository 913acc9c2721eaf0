"""Prometheus metrics of the admin service, computed when /metrics is scraped: jobs by state,
models stored and served, the store's generation and how far each shard replica lags behind it.

Sync lag is counted in models: a replica's served models against the store's models of that
replica's shard (the pack's generation only changes at compaction, so models are what a lagging
replica visibly misses). The per-shard counts of the store are recomputed only when the pack's
manifest changes (every add and removal rewrites it), not on every scrape.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Callable, Iterator

import grpc
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelverse.serving.partition import shard_of
from modelverse.store.directory import DirectoryStore
from modelverse.store.errors import StoreError
from modelverse.store.pack import MANIFEST
from modelverse.v1 import shard_pb2

DESCRIBE_TIMEOUT = 1.0


class AdminCollector(Collector):
    def __init__(self, store: DirectoryStore, shard_stubs: list[list[object]],
                 job_counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        """``job_counts``: (kind, state) -> jobs, for ``modelverse_admin_jobs``."""
        self.store = store
        self.shard_stubs = shard_stubs
        self.job_counts = job_counts
        self._lock = threading.Lock()
        self._per_shard: tuple[tuple[int, ...], list[int]] | None = None  # (manifest stat, counts)

    def _store_counts(self) -> tuple[int, int, list[int]]:
        """(generation, models, models per shard) of the store's current pack."""
        try:  # before the pack is read: a manifest replaced in between only makes the key stale
            stat = (self.store.root / "pack" / MANIFEST).stat()
        except FileNotFoundError:
            return 0, 0, [0] * len(self.shard_stubs)
        pack = self.store.pack()
        if pack is None:
            return 0, 0, [0] * len(self.shard_stubs)
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            if self._per_shard is None or self._per_shard[0] != key:
                shards = len(self.shard_stubs)
                counted = Counter(shard_of(model_id, shards) for model_id in pack.live_rows())
                self._per_shard = (key, [counted.get(s, 0) for s in range(shards)])
            per_shard = self._per_shard[1]
        return pack.generation, sum(per_shard), per_shard

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # computed at scrape time: nothing to describe at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("modelverse_admin_jobs", "Jobs the admin knows, by kind and state", labels=["kind", "state"])
        for (kind, state), count in sorted(self.job_counts().items()):
            jobs.add_metric([kind, state], count)
        yield jobs

        try:
            generation, models, per_shard = self._store_counts()
        except (StoreError, OSError):
            return  # a damaged store: its own commands say why; no numbers rather than wrong ones
        yield GaugeMetricFamily("modelverse_store_models", "Models in the store", value=models)
        yield GaugeMetricFamily("modelverse_store_generation", "Generation of the store's pack", value=generation)

        up = GaugeMetricFamily("modelverse_shard_up", "1 when the replica answered Describe", labels=["shard", "replica"])
        served = GaugeMetricFamily("modelverse_shard_models", "Models a replica serves", labels=["shard", "replica"])
        shard_generation = GaugeMetricFamily("modelverse_shard_store_generation", "Store generation a replica serves",
                                             labels=["shard", "replica"])
        lag = GaugeMetricFamily("modelverse_shard_sync_lag_models",
                                "Models by which a replica differs from the store's models of its shard",
                                labels=["shard", "replica"])
        calls = [[stub.Describe.future(shard_pb2.DescribeRequest(), timeout=DESCRIBE_TIMEOUT) for stub in replicas]
                 for replicas in self.shard_stubs]
        for shard, replicas in enumerate(calls):
            for replica, call in enumerate(replicas):
                labels = [str(shard), str(replica)]
                try:
                    description = call.result()
                except grpc.RpcError:
                    up.add_metric(labels, 0)
                    continue
                up.add_metric(labels, 1)
                served.add_metric(labels, description.models)
                shard_generation.add_metric(labels, description.store_generation)
                lag.add_metric(labels, abs(per_shard[shard] - description.models))
        yield from (up, served, shard_generation, lag)
