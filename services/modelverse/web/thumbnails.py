"""Thumbnails fetched from the gateway once per (model, stats version) and kept in memory (LRU):
a result page asks for the hits it lacks in parallel, and the images are then served from here
with caching headers, so a browser asks the web service once and the gateway once per model."""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from modelverse.v1 import search_pb2
from modelverse.web.client import Gateway

DEFAULT_CAPACITY = 2048  # models; 8 PNGs of ~5 KB each: about 80 MB at most


@dataclass(frozen=True)
class Thumbnails:
    model_id: str
    stats_version: int
    images: tuple[bytes, ...]


class ThumbnailCache:
    def __init__(self, gateway: Gateway, capacity: int = DEFAULT_CAPACITY, threads: int = 8) -> None:
        self.gateway = gateway
        self.capacity = capacity
        self._entries: OrderedDict[str, Thumbnails] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="thumbnails")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _cached(self, model_id: str, stats_version: int) -> Thumbnails | None:
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is None or (stats_version and entry.stats_version != stats_version):
                return None
            self._entries.move_to_end(model_id)
            return entry

    def _fetch(self, model_id: str) -> Thumbnails:
        answer = self.gateway.stub.GetThumbnails(search_pb2.GetThumbnailsRequest(model_id=model_id),
                                                 timeout=self.gateway.timeout_s)
        entry = Thumbnails(model_id, answer.stats_version, tuple(answer.images))
        with self._lock:
            self._entries[model_id] = entry
            self._entries.move_to_end(model_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return entry

    def get(self, model_id: str, stats_version: int = 0) -> Thumbnails:
        """The model's thumbnails (``stats_version`` 0: whatever version is cached); raises
        grpc.RpcError as the gateway answers."""
        return self._cached(model_id, stats_version) or self._fetch(model_id)

    def get_many(self, wanted: list[tuple[str, int]]) -> dict[str, Thumbnails | None]:
        """Thumbnails of many models, those not cached fetched in parallel; None for a model the
        gateway could not answer for (the page shows it without thumbnails, not an error)."""
        found: dict[str, Thumbnails | None] = {}
        missing = []
        for model_id, version in wanted:
            entry = self._cached(model_id, version)
            if entry is None:
                missing.append(model_id)
            found[model_id] = entry
        futures = {m: self._executor.submit(self._fetch, m) for m in missing}
        for model_id, future in futures.items():
            try:
                found[model_id] = future.result()
            except grpc.RpcError:
                found[model_id] = None
        return found
