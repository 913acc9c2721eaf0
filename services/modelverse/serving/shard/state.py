"""What one shard serves: its partition of the store, its FAISS index, and how both follow
the store as models are added and removed."""

from __future__ import annotations

import logging
import mmap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from modelverse.core.collection import Collection
from modelverse.core.scores import normalize_query, normalized_means
from modelverse.core.reference import Method, QueryPart
from modelverse.serving import metrics
from modelverse.serving.index_choice import EXACT_THRESHOLD, choose_index
from modelverse.serving.partition import shard_of
from modelverse.serving.rerank import QueryModelStats, candidates_collection, rerank_scores
from modelverse.serving.shard.index import ShardIndex
from modelverse.store.directory import DirectoryStore
from modelverse.store.errors import ModelNotFoundError, StoreError
from modelverse.store.metadata import ModelMetadata
from modelverse.store.pack import MANIFEST, Pack

log = logging.getLogger("modelverse.shard")

DEFAULT_MEMORY_BUDGET = 8 * 1024**3


@dataclass(frozen=True)
class ShardConfig:
    store: Path
    shard: int
    shards: int
    index_dir: Path
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET
    exact_threshold: int = EXACT_THRESHOLD
    nprobe: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """One consistent view for a search: replaced whole by a sync, never changed in place."""

    pack: Pack | None
    collection: Collection | None
    row_of: dict[str, int]  # this shard's live models -> row of the pack
    metadata: dict[str, ModelMetadata]
    versions: dict[str, int]


@dataclass(frozen=True)
class Candidate:
    id: str
    metadata: ModelMetadata
    version: int
    first_stage_score: float
    score: float


@dataclass(frozen=True)
class SyncResult:
    models: int
    added: int
    removed: int
    rebuilt: bool = False


@dataclass
class _Partition:
    rows: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


class ShardState:
    def __init__(self, config: ShardConfig) -> None:
        if not 0 <= config.shard < config.shards:
            raise ValueError(f"shard {config.shard} is not in 0..{config.shards - 1}")
        self.config = config
        self.store = DirectoryStore.open(config.store)
        self._shard_of: dict[str, int] = {}
        self._lock = threading.Lock()  # the index and the snapshot change together
        self._sync_lock = threading.Lock()  # one sync at a time
        self.snapshot = Snapshot(None, None, {}, {}, {})
        pack = self.store.pack()
        partition = self._partition(pack)
        self.index = ShardIndex.load(config.index_dir, config.memory_budget_bytes)
        if self.index is None or self.index.dim != self.store.config.dim:
            self.index = self._build(pack, partition)
        self.sync()

    @property
    def manifest_path(self) -> Path:
        return self.store.root / "pack" / MANIFEST

    # -- the partition ----------------------------------------------------------------------

    def _mine(self, model_id: str) -> bool:
        shard = self._shard_of.get(model_id)
        if shard is None:
            shard = self._shard_of[model_id] = shard_of(model_id, self.config.shards)
        return shard == self.config.shard

    def _partition(self, pack: Pack | None) -> _Partition:
        if pack is None:
            return _Partition()
        rows = {m: r for r, m in enumerate(pack.row_ids) if m is not None and self._mine(m)}
        versions_column = pack.arrays["scalars"]["stats_version"]
        row_array = np.fromiter(rows.values(), dtype=np.int64, count=len(rows))
        versions = dict(zip(rows, versions_column[row_array].tolist())) if rows else {}
        return _Partition(rows, versions)

    def _means(self, pack: Pack, rows: list[int]) -> np.ndarray:
        return np.asarray(pack.arrays["means"][np.array(rows, dtype=np.int64)], dtype=np.float64)

    def _build(self, pack: Pack | None, partition: _Partition) -> ShardIndex:
        started = time.perf_counter()
        ids = sorted(partition.rows)
        dim = self.store.config.dim
        plan = choose_index(
            len(ids), dim, self.config.memory_budget_bytes,
            exact_threshold=self.config.exact_threshold, nprobe=self.config.nprobe,
        )
        means = self._means(pack, [partition.rows[i] for i in ids]) if ids else np.zeros((0, dim))
        index = ShardIndex.build(plan, ids, means, [partition.versions[i] for i in ids])
        index.save(self.config.index_dir)
        log.info("index built", extra={"shard": self.config.shard, "models": len(ids),
                                        "index_type": plan.factory, "seconds": round(time.perf_counter() - started, 3)})
        return index

    def _read_metadata(self, model_id: str) -> ModelMetadata:
        try:
            return self.store.get(model_id).metadata
        except ModelNotFoundError:
            return ModelMetadata(model_id)  # packed without a model record (bulk-written benchmark stores)
        except StoreError as exc:
            log.warning("unreadable model record", extra={"model_id": model_id, "error": str(exc)})
            return ModelMetadata(model_id)

    # -- following the store ------------------------------------------------------------------

    def sync(self) -> SyncResult:
        """Bring the index and the snapshot to what the store holds now."""
        with self._sync_lock:
            pack = self.store.pack()
            partition = self._partition(pack)
            old = self.snapshot
            removed = [m for m in list(self.index.int_of) if m not in partition.rows]
            added = [m for m, v in partition.versions.items() if self.index.versions.get(m) != v]
            metadata = {m: md for m, md in old.metadata.items() if m in partition.rows}
            for model_id in partition.rows:
                if model_id not in metadata or model_id in added:
                    metadata[model_id] = self._read_metadata(model_id)
            if pack is not None:
                advise_random_access(pack)
            collection = None if pack is None or not pack.rows else pack.collection()
            snapshot = Snapshot(pack, collection, partition.rows, metadata, partition.versions)
            rebuilt = False
            if added or removed:
                if self.index.needs_rebuild(len(added) + len(removed)) and partition.rows:
                    new_index = self._build(pack, partition)
                    rebuilt = True
                    with self._lock:
                        self.index, self.snapshot = new_index, snapshot
                else:
                    means = self._means(pack, [partition.rows[m] for m in added]) if added else None
                    with self._lock:
                        self.index.remove(removed)
                        if added:
                            self.index.add(added, means, [partition.versions[m] for m in added])
                        self.snapshot = snapshot
            else:
                with self._lock:
                    self.snapshot = snapshot
            if added or removed:
                log.info("synced", extra={"shard": self.config.shard, "added": len(added),
                                          "removed": len(removed), "models": len(partition.rows), "rebuilt": rebuilt})
            return SyncResult(len(partition.rows), len(added), len(removed), rebuilt)

    def watch(self, stop: threading.Event, interval: float) -> None:
        """Sync whenever the pack's manifest changes (models added or removed by any writer)."""
        last = None
        while not stop.wait(interval):
            try:
                stat = self.manifest_path.stat()
                current = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except FileNotFoundError:
                current = None
            if current != last:
                try:
                    self.sync()
                    last = current
                except Exception:  # keep serving the last good snapshot; retried next tick
                    log.exception("sync failed", extra={"shard": self.config.shard})

    # -- queries ------------------------------------------------------------------------------

    def models(self) -> int:
        return len(self.snapshot.row_of)

    def metadata(self, model_id: str) -> tuple[ModelMetadata, int]:
        snap = self.snapshot
        if model_id not in snap.row_of:
            raise ModelNotFoundError(f"no model {model_id!r}")
        return snap.metadata[model_id], snap.versions[model_id]

    def query_model(self, model_id: str) -> QueryModelStats:
        snap = self.snapshot
        row = snap.row_of.get(model_id)
        if row is None or snap.collection is None:
            raise ModelNotFoundError(f"no model {model_id!r}")
        c = snap.collection.compressed
        return QueryModelStats.from_arrays(
            model_id, np.asarray(snap.collection.means[row], dtype=np.float64),
            np.asarray(c.diag[row]), np.asarray(c.factor[row]), float(c.traces[row]), c.eps,
        )

    def list_ids(self, after: str, limit: int) -> list[str]:
        return sorted(m for m in self.snapshot.row_of if m > after)[:limit]

    def recall(
        self,
        first_stage: np.ndarray,
        method: Method,
        candidates: int,
        *,
        parts: list[QueryPart] | None = None,
        query_model: QueryModelStats | None = None,
        allowed: Callable[[ModelMetadata], bool] | None = None,
    ) -> list[Candidate]:
        """First stage (FAISS) then the method's score on the candidates, best first."""
        if candidates <= 0:
            raise ValueError(f"candidates must be positive, got {candidates}")
        q = normalize_query(first_stage, self.store.config.dim).astype(np.float32)
        exclude = query_model.id if query_model is not None else None
        k = candidates + (1 if exclude else 0)
        with metrics.stage("shard", "recall"), self._lock:
            snap = self.snapshot
            allowed_ids = None if allowed is None else {m for m, md in snap.metadata.items() if allowed(md)}
            found = self.index.search(q, k, allowed_ids)
        pairs = [(m, s) for m, s in zip(found.ids, found.scores.tolist()) if m != exclude][:candidates]
        if not pairs or snap.collection is None:
            return []
        rows = np.array([snap.row_of[m] for m, _ in pairs], dtype=np.int64)
        with metrics.stage("shard", "rerank"):
            scores = rerank_scores(
                candidates_collection(snap.collection, rows), method, parts=parts, query_model=query_model
            )
        return [
            Candidate(m, snap.metadata[m], snap.versions[m], first, float(score))
            for (m, first), score in zip(pairs, scores.tolist())
        ]


def advise_random_access(pack: Pack) -> None:
    """Tell the kernel the pack's columns are read a few scattered rows at a time (the
    candidates), so a page fault does not read ahead megabytes of other models' factors."""
    for column in pack.arrays.values():
        mapping = getattr(column, "_mmap", None)  # np.memmap keeps its mmap.mmap here
        if mapping is not None and hasattr(mapping, "madvise"):
            mapping.madvise(mmap.MADV_RANDOM)


def first_stage_query(parts: list[QueryPart], dim: int) -> np.ndarray:
    """sum_k w_k q_k: its inner product with mu/||mu|| is the weighted sum of the parts' cosines."""
    return sum(p.weight * normalize_query(p.vector, dim) for p in parts)


def first_stage_of_model(query_model: QueryModelStats) -> np.ndarray:
    return normalized_means(query_model.mean[None])[0]
