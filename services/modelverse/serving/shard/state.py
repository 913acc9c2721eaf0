"""What one shard serves: its partition of the store, its FAISS indexes, and how they follow
the store as models are added and removed.

Every shard has the first-moment index (FIRST_MOMENT, GAUSSIAN, FRECHET recall from it) and one
lifted index per method in ``ShardConfig.lifted`` (default MGF; ``core.lift``). Each method's
first stage (``serving.first_stage``) says which index it searches, with which query vector
and nprobe. All the indexes are built, saved, loaded, changed live and rebuilt together."""

from __future__ import annotations

import dataclasses
import logging
import mmap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from modelverse.core.collection import Collection
from modelverse.core.lift import DEFAULT_ALPHA, DEFAULT_COLUMNS
from modelverse.core.ranking import top_k
from modelverse.core.sentence_encoder import sentence_encoder
from modelverse.core.scores import normalized_means
from modelverse.core.text_index import described_texts
from modelverse.core.types import Method, QueryPart
from modelverse.errors import InvalidInputError
from modelverse.serving import metrics
from modelverse.serving.first_stage import (
    SECOND_ORDER_PROBE_FACTOR,
    FirstStage,
    first_moment_query,
    first_stages,
)
from modelverse.serving.index_choice import EXHAUSTIVE_THRESHOLD
from modelverse.serving.partition import shard_of
from modelverse.serving.rerank import (
    QueryModelStats,
    candidates_collection,
    first_moment_scores,
    rerank_scores,
)
from modelverse.serving.shard.index import ModelRows, ShardIndex
from modelverse.serving.shard.query_context import QueryContext
from modelverse.serving.shard.semantic_index import SemanticIndex
from modelverse.store.directory import DirectoryStore
from modelverse.store.embedding_cache import EmbeddingCache, embed_missing
from modelverse.store.errors import ModelNotFoundError, StoreError
from modelverse.store.metadata import ModelMetadata
from modelverse.store.pack import MANIFEST, Pack

log = logging.getLogger("modelverse.shard")

DEFAULT_MEMORY_BUDGET = 8 * 1024**3
EMBEDDINGS_DIR = "metadata-embeddings"
# A sync embeds metadata for about this long, then serves (the watch loop's next sync goes on)
EMBED_SLICE_SECONDS = 10.0


@dataclass(frozen=True)
class ShardConfig:
    store: Path
    shard: int
    shards: int
    index_dir: Path
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET
    exhaustive_threshold: int = EXHAUSTIVE_THRESHOLD
    nprobe: int | None = None
    compact_index: bool = True  # 8-bit codes for the first-moment inverted file (index_choice)
    # GAUSSIAN and FRECHET recall from the first-moment index too, but rank by a score its cosine
    # only approximates, so their candidates come from this many times more lists (docs/SERVING.md).
    second_order_probe_factor: int = SECOND_ORDER_PROBE_FACTOR
    lifted: tuple[str, ...] = ("mgf",)  # methods (Method values) with a lifted first stage
    lift_columns: int = DEFAULT_COLUMNS
    lift_alpha: float = DEFAULT_ALPHA
    lifted_nprobe: int | None = None  # None: nlist / 8 (index_choice.choose_lifted_index)
    # Embed the models' metadata (all-MiniLM-L6-v2, cached beside the index) for the dense half of
    # a METADATA / HYBRID text search; off: BM25 alone
    metadata_embeddings: bool = True


@dataclass(frozen=True)
class Snapshot:
    """One consistent view for a search: replaced whole by a sync, never changed in place."""

    pack: Pack | None
    collection: Collection | None
    row_of: dict[str, int]  # this shard's live models -> row of the pack
    metadata: dict[str, ModelMetadata]
    versions: dict[str, int]
    # The pack's means as a plain ndarray view (indexing an np.memmap pays for the subclass):
    # FIRST_MOMENT's rerank reads its candidates' rows from it.
    means: np.ndarray | None = None
    # The metadata search (BM25, embeddings) and the confidence reference of these models (issue 17)
    context: QueryContext | None = None


@dataclass(frozen=True)
class Recalled:
    """A shard's candidates in first-stage order, as arrays: hundreds per query, so no object
    per candidate. ``snapshot`` is the view they were found in (their metadata)."""

    ids: list[str]
    first_stage_scores: np.ndarray  # (n,) float32, the FAISS inner products
    scores: np.ndarray  # (n,) float64, the method's score
    snapshot: Snapshot
    rows: np.ndarray | None = None  # (n,) the candidates' pack rows (issue 17: text scores, MGF for confidence)

    def __len__(self) -> int:
        return len(self.ids)

    def best(self, k: int) -> list[str]:
        """The k best by score, in ``core.ranking.top_k``'s order (the gateway merges by it)."""
        if not self.ids:
            return []
        return [hit.id for hit in top_k(np.array(self.ids), self.scores, k)]


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
        self.first_stages: dict[Method, FirstStage] = first_stages(config, self.store.config.scoring)
        # the metadata's sentence embeddings, kept beside the index so a restart does not embed again
        self.embeddings = EmbeddingCache(config.index_dir / EMBEDDINGS_DIR) if config.metadata_embeddings else None
        pack = self.store.pack()
        partition = self._partition(pack)
        dim = self.store.config.dim
        loaded = {method: ShardIndex.load(stage.index_dir(config.index_dir), config.memory_budget_bytes, stage.lift)
                  for method, stage in self._index_owners().items()}
        main = loaded[Method.FIRST_MOMENT]
        if main is None or any(index is None or index.dim != self.first_stages[method].index_dim(dim) or index.versions != main.versions
                               for method, index in loaded.items()):
            self._drop_damaged(pack, partition, list(partition.rows))
            index, lifted = self._build(pack, partition)
        else:
            index, lifted = self._split(loaded)  # type: ignore[arg-type]
        self.index: ShardIndex = index
        self.lifted: dict[Method, ShardIndex] = lifted
        for method, owned in self._owned_indexes().items():
            owned.plan = self.first_stages[method].loaded_plan(owned.plan)
        self.sync()
        if self.snapshot.pack is not None:
            started = time.perf_counter()
            read = read_resident_columns(self.snapshot.pack)
            log.info("resident columns read", extra={"shard": config.shard, "bytes": read,
                                                     "seconds": round(time.perf_counter() - started, 3)})

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

    def _drop_damaged(self, pack: Pack | None, partition: _Partition, ids: list[str]) -> list[str]:
        """Leave out of ``partition`` the models among ``ids`` whose packed rows fail their
        checksums (logged; `modelverse verify --repair` rewrites them): a damaged row is
        never indexed, so never a candidate. Returns the ids kept. Rows are checked when they
        are first indexed, which is when the shard reads them whole."""
        if pack is None or not ids:
            return ids
        bad = set(pack.corrupt_rows(np.array([partition.rows[m] for m in ids], dtype=np.int64)).tolist())
        if not bad:
            return ids
        for model_id in ids:
            if partition.rows[model_id] in bad:
                log.warning("damaged pack row not served; run `modelverse verify --repair`",
                            extra={"shard": self.config.shard, "model_id": model_id[:200]})
                del partition.rows[model_id]
                del partition.versions[model_id]
        return [m for m in ids if m in partition.rows]

    def _index_owners(self) -> dict[Method, FirstStage]:
        """One first stage per index of the shard: FIRST_MOMENT's (the first-moment index, which
        the other unlifted methods share) and each lifted method's."""
        return {m: s for m, s in self.first_stages.items() if m is Method.FIRST_MOMENT or s.lift is not None}

    def _owned_indexes(self) -> dict[Method, ShardIndex]:
        """The shard's indexes, by the method that owns them (``_index_owners``)."""
        return {Method.FIRST_MOMENT: self.index, **self.lifted}

    def _index_of(self, stage: FirstStage) -> ShardIndex:
        return self.index if stage.lift is None else self.lifted[stage.method]

    @staticmethod
    def _split(indexes: dict[Method, ShardIndex]) -> tuple[ShardIndex, dict[Method, ShardIndex]]:
        """(the first-moment index, the lifted ones by method)."""
        return indexes[Method.FIRST_MOMENT], {m: i for m, i in indexes.items() if m is not Method.FIRST_MOMENT}

    def _rows(self, pack: Pack | None, rows: list[int]) -> ModelRows:
        if pack is None or not pack.rows:  # an empty store: nothing to read, only the dimension
            dim = self.store.config.dim
            empty = Collection(np.array([], dtype=object), np.zeros((0, dim), dtype=np.float32), None)  # type: ignore[arg-type]
            return ModelRows(empty, np.zeros(0, dtype=np.int64))
        return ModelRows(pack.collection(), np.array(rows, dtype=np.int64))

    def _build(self, pack: Pack | None, partition: _Partition) -> tuple[ShardIndex, dict[Method, ShardIndex]]:
        """The first-moment index and every lifted one, built from the store and saved."""
        ids = sorted(partition.rows)
        dim = self.store.config.dim
        rows = self._rows(pack, [partition.rows[i] for i in ids])
        versions = [partition.versions[i] for i in ids]
        cfg = self.config
        built: dict[Method, ShardIndex] = {}
        for method, stage in self._index_owners().items():
            started = time.perf_counter()
            plan = stage.plan(len(ids), dim)
            index = ShardIndex.build(plan, ids, rows, versions, stage.lift)
            index.save(stage.index_dir(cfg.index_dir))
            built[method] = index
            log.info("index built", extra={"shard": cfg.shard, "models": len(ids), "first_stage": method.value,
                                            "index_type": plan.factory, "seconds": round(time.perf_counter() - started, 3)})
        return self._split(built)

    def _indexes(self) -> list[ShardIndex]:
        return [self.index, *self.lifted.values()]

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
            changed = [m for m, v in partition.versions.items() if self.index.versions.get(m) != v]
            added = self._drop_damaged(pack, partition, changed)
            removed = [m for m in list(self.index.int_of) if m not in partition.rows]
            metadata = {m: md for m, md in old.metadata.items() if m in partition.rows}
            for model_id in partition.rows:
                if model_id not in metadata or model_id in added:
                    metadata[model_id] = self._read_metadata(model_id)
            if pack is not None:
                advise_random_access(pack)
            collection = None if pack is None or not pack.rows else pack.collection()
            means = None if collection is None else np.asarray(collection.means)
            context = old.context
            if context is None or added or removed:
                context = QueryContext.build(metadata, collection, partition.rows, self.embeddings, old.context)
            snapshot = Snapshot(pack, collection, partition.rows, metadata, partition.versions, means, context)
            rebuilt = False
            if added or removed:
                if self.index.needs_rebuild(len(added) + len(removed)) and partition.rows:
                    new_index, new_lifted = self._build(pack, partition)
                    rebuilt = True
                    with self._lock:
                        self.index, self.lifted, self.snapshot = new_index, new_lifted, snapshot
                else:
                    rows = self._rows(pack, [partition.rows[m] for m in added])
                    added_versions = [partition.versions[m] for m in added]
                    with self._lock:
                        for index in self._indexes():
                            index.remove(removed)
                            if added:
                                index.add(added, rows, added_versions)
                        self.snapshot = snapshot
            else:
                with self._lock:
                    self.snapshot = snapshot
            if added or removed:
                log.info("synced", extra={"shard": self.config.shard, "added": len(added),
                                          "removed": len(removed), "models": len(partition.rows), "rebuilt": rebuilt})
            self._embed_pending(None if old.context is None else old.context.semantic)
            return SyncResult(len(partition.rows), len(added), len(removed), rebuilt)

    @property
    def semantic_pending(self) -> bool:
        """Whether some model's metadata is still to embed (the dense match is off until then)."""
        context = self.snapshot.context
        return context is not None and context.semantic_pending

    def _embed_pending(self, previous: SemanticIndex | None = None) -> None:
        """Embed a slice (EMBED_SLICE_SECONDS) of the metadata the cache lacks; once none is left,
        the snapshot's context gets its dense match. Called by every sync, so the watch loop goes
        on while ``semantic_pending``; a store of a few hundred models is done in the first.
        ``previous``: the dense index being replaced (its training is reused)."""
        context = self.snapshot.context
        if context is None or not context.semantic_pending or self.embeddings is None:
            return
        _, texts = described_texts(context.documents)
        left = embed_missing(self.embeddings, texts, lambda batch: sentence_encoder().encode(batch),
                             EMBED_SLICE_SECONDS)
        if left:
            log.info("metadata still to embed", extra={"shard": self.config.shard, "left": left})
            return
        self.embeddings.prune(texts)
        with_semantic = context.with_semantic(self.embeddings, previous)
        with self._lock:
            self.snapshot = dataclasses.replace(self.snapshot, context=with_semantic)

    def watch(self, stop: threading.Event, interval: float) -> None:
        """Sync whenever the pack's manifest changes (models added or removed by any writer), and
        while metadata is still to embed."""
        last = None
        while not stop.wait(interval):
            try:
                stat = self.manifest_path.stat()
                current = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except FileNotFoundError:
                current = None
            if current != last or self.semantic_pending:
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

    def samples(self, model_id: str) -> int:
        """How many samples the model's statistics summarise (the pack's count column); 0 if unknown."""
        snap = self.snapshot
        row = snap.row_of.get(model_id)
        if row is None or snap.pack is None:
            return 0
        return int(snap.pack.arrays["scalars"]["count"][row])

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
        method: Method,
        candidates: int,
        *,
        parts: list[QueryPart] | None = None,
        query_model: QueryModelStats | None = None,
        allowed: Callable[[ModelMetadata], bool] | None = None,
        query_text: str = "",
        text_candidates: int = 200,
        query_embedding: np.ndarray | None = None,
    ) -> Recalled:
        """First stage (FAISS) then the method's score on the candidates, in first-stage order.

        The query is ``parts`` (weighted vectors) or, for FRECHET, ``query_model`` (a stored
        model, itself left out of the candidates). The method's first stage
        (``serving.first_stage``) chooses the index, the query vector and the nprobe.
        ``query_text`` (METADATA / HYBRID) adds the best BM25 matches to the candidates, and
        ``query_embedding`` (the text's sentence embedding) the best dense metadata matches.
        """
        if candidates <= 0:
            raise InvalidInputError(f"candidates must be positive, got {candidates}")
        dim = self.store.config.dim
        stage = self.first_stages[method]
        q = stage.query(dim, parts, query_model)
        exclude = query_model.id if query_model is not None else None
        k = candidates + (1 if exclude else 0)
        with metrics.stage("shard", "recall"), self._lock:
            snap = self.snapshot
            index = self._index_of(stage)
            allowed_ids = None if allowed is None else {m for m, md in snap.metadata.items() if allowed(md)}
            found = index.search(q, k, allowed_ids, stage.nprobe(index.plan))
        keep = [i for i, m in enumerate(found.ids) if m != exclude][:candidates]
        ids = [found.ids[i] for i in keep]
        first = found.scores[keep].astype(np.float32)
        if query_text and snap.context is not None:  # METADATA / HYBRID: the best text matches too
            ids, first = with_text_candidates(snap, ids, first, query_text, query_embedding, text_candidates,
                                              allowed_ids, first_moment_query(dim, parts, query_model))
        if not ids or snap.collection is None:
            return Recalled([], np.zeros(0, np.float32), np.zeros(0), snap)
        rows = np.fromiter(map(snap.row_of.__getitem__, ids), dtype=np.int64, count=len(ids))
        with metrics.stage("shard", "rerank"):
            if method is Method.FIRST_MOMENT and parts and snap.means is not None:
                scores = first_moment_scores(parts, snap.means[rows])  # rerank_scores' arithmetic, no Collection
            else:
                if snap.pack is not None:
                    snap.pack.prefetch(rows)  # the reads overlap instead of faulting one by one
                scores = rerank_scores(
                    candidates_collection(snap.collection, rows, method), method, self.store.config.scoring,
                    parts=parts, query_model=query_model,
                )
        return Recalled(ids, first, np.asarray(scores, dtype=np.float64), snap, rows)


# Read by every query (the first moment's rerank) and 2 KiB of a model's 20: read in at once
# and kept warm, where a cold page would cost a disk read per candidate at a million models.
RESIDENT_COLUMNS = ("means", "scalars")


def read_resident_columns(pack: Pack) -> int:
    """Fault in the columns every query reads before the shard serves, one byte a page; returns
    the bytes covered. MADV_WILLNEED alone reads ahead in the background: at 1M models the first
    queries after a start on saved indexes still waited on the disk (p99 185 ms, run 6)."""
    covered = 0
    for name in RESIDENT_COLUMNS:
        column = pack.arrays.get(name)
        if column is None or column.size == 0:
            continue
        raw = column.reshape(-1).view(np.uint8)
        for start in range(0, raw.size, 1 << 26):  # 64 MiB at a time
            int(raw[start:start + (1 << 26):mmap.PAGESIZE].sum())
        covered += raw.size
    return covered


def advise_random_access(pack: Pack) -> None:
    """Tell the kernel the second-order columns are read a few scattered rows at a time (the
    candidates), so a page fault does not read ahead megabytes of other models' factors, and
    to read the columns every query touches into the page cache now."""
    for name, column in pack.arrays.items():
        mapping = getattr(column, "_mmap", None)  # np.memmap keeps its mmap.mmap here
        if mapping is not None and hasattr(mapping, "madvise"):
            mapping.madvise(mmap.MADV_WILLNEED if name in RESIDENT_COLUMNS else mmap.MADV_RANDOM)


def with_text_candidates(snap: Snapshot, ids: list[str], first: np.ndarray, query_text: str,
                         query_embedding: np.ndarray | None, count: int, allowed_ids: set[str] | None,
                         q: np.ndarray) -> tuple[list[str], np.ndarray]:
    """``ids`` plus the shard's ``count`` best BM25 matches and its ``count`` best dense matches
    (when the query's embedding came) not among them, each with the cosine of its first
    moment with the query ``q`` as first-stage score (after a lifted first stage, whose inner
    products live in another space, that cosine orders them only roughly)."""
    assert snap.context is not None
    matches = snap.context.text_candidates(query_text, count, allowed_ids)
    if query_embedding is not None:
        matches += snap.context.semantic_candidates(query_embedding, count, allowed_ids)
    present = set(ids)
    extra = [m for m in dict.fromkeys(matches) if m not in present]
    if not extra or snap.means is None:
        return ids, first
    rows = np.fromiter(map(snap.row_of.__getitem__, extra), dtype=np.int64, count=len(extra))
    extra_first = (normalized_means(np.asarray(snap.means[rows], dtype=np.float64)) @ q.astype(np.float64)).astype(np.float32)
    return ids + extra, np.concatenate([first, extra_first])
