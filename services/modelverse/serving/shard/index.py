"""The first stage of one shard: FAISS inner product over its models' normalised first moments,
or, for a method with a lifted first stage (``core.lift``: MGF), over each model's lifted vectors.

Built in one piece from the store (``main``), then changed live:

- ``main`` is never modified after it is built, so it can be saved with ``write_index`` and
  loaded memory-mapped (an IVF index loaded with IO_FLAG_MMAP is read-only in FAISS);
- models added since live in ``delta``, an exact ``IndexIDMap2(IndexFlatIP)``;
- models removed from ``main`` are tombstoned: every search excludes them with an IDSelector.

Integer ids: main's rows are 0..n-1 in build order, delta's ids count up from n. The string
ids of main are saved next to the index (``ids.json``) with each model's stats version, so a
restarted shard knows what the saved index holds and brings it up to date from the store.
When the live changes grow past a fraction of main, the shard rebuilds (``needs_rebuild``).

A lifted index holds ``copies`` vectors per model (``LiftSpec.copies``): model label L owns the
FAISS labels L * copies ... L * copies + copies - 1, and a model scores as its best vector, so a
search asks FAISS for k * copies vectors (enough for k distinct models) and keeps each model's
first. Its spec is saved with it (``ids.json``); a saved index of another spec is rebuilt.

Saving is atomic and durable: each file is written to a temporary name, fsynced and renamed,
and the directory fsynced; ``ids.json`` (renamed last) records the size and SHA-256 of the
index file it belongs to. Loading checks them, so a torn or corrupt save (a crash between the
two renames, a damaged disk) is found and the shard rebuilds from the store instead of
crashing at every start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from modelverse.core.collection import Collection
from modelverse.core.lift import LiftSpec, lift_models
from modelverse.core.scores import normalized_means
from modelverse.serving.index_choice import IndexPlan, build_index
from modelverse.store.files import fsync_directory

log = logging.getLogger("modelverse.shard")

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
REBUILD_FRACTION = 0.2
REBUILD_MIN_CHANGES = 2048


def first_stage_vectors(means: np.ndarray) -> np.ndarray:
    """What FAISS indexes: mu / ||mu|| in float32 (a zero mean stays zero, as core scores it)."""
    return np.ascontiguousarray(normalized_means(means), dtype=np.float32)


@dataclass(frozen=True)
class ModelRows:
    """Some rows of a (memory-mapped) collection: what an index's vectors are made from. Read
    a block at a time by ``lift_models``, so a shard's factors are never all in memory at once."""

    collection: Collection
    rows: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return int(self.rows.size)

    def means(self) -> np.ndarray:
        return np.asarray(self.collection.means[self.rows], dtype=np.float64)


def index_vectors(lift: LiftSpec | None, rows: ModelRows | np.ndarray) -> np.ndarray:
    """(n * copies, dim) float32: what an index with ``lift`` (None: first moments) holds.
    A first-moment index also takes the means themselves, (n, d)."""
    if lift is None:
        return first_stage_vectors(rows if isinstance(rows, np.ndarray) else rows.means())
    if isinstance(rows, np.ndarray):
        raise TypeError("a lifted index is made from ModelRows (it needs the second order)")
    c = rows.collection.compressed
    return lift_models(lift, rows.collection.means, c.diag, c.factor, logdet=c.logdet, eps=c.eps, rows=rows.rows)


@dataclass
class SearchResult:
    ids: list[str]
    scores: np.ndarray  # (k,) float32 inner products


class ShardIndex:
    def __init__(
        self, plan: IndexPlan, main: faiss.Index, main_ids: list[str], main_versions: list[int],
        lift: LiftSpec | None = None,
    ) -> None:
        self.plan = plan
        self.main = main
        self.lift = lift
        self.copies = 1 if lift is None else lift.copies
        self.dim = int(main.d)
        self.ids_by_int: list[str] = list(main_ids)
        self.int_of: dict[str, int] = {model_id: i for i, model_id in enumerate(main_ids)}
        self.versions: dict[str, int] = dict(zip(main_ids, main_versions))
        self.main_size = len(main_ids)
        self.main_versions = list(main_versions)  # what main was built from; never changes
        self.delta = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self.tombstones: set[int] = set()
        self._exclude: faiss.IDSelector | None = None
        self._exclude_parts: tuple[object, ...] = ()  # keeps the selector's arrays alive

    # -- building and persistence ---------------------------------------------------------

    @classmethod
    def build(
        cls, plan: IndexPlan, ids: list[str], rows: ModelRows | np.ndarray, versions: list[int],
        lift: LiftSpec | None = None,
    ) -> ShardIndex:
        d = rows.shape[1] if isinstance(rows, np.ndarray) else rows.collection.dim
        dim = d if lift is None else lift.dim(d)
        if ids:
            main = build_index(plan, index_vectors(lift, rows))
        else:
            main = faiss.index_factory(dim, "Flat", faiss.METRIC_INNER_PRODUCT)
        return cls(plan, main, ids, versions, lift)

    def save(self, directory: Path) -> None:
        """Save main (the delta and tombstones are rebuilt from the store at load)."""
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{INDEX_FILE}.{os.getpid()}.tmp"
        ids_tmp = directory / f".{IDS_FILE}.{os.getpid()}.tmp"
        try:
            faiss.write_index(self.main, str(tmp))
            _fsync_file(tmp)
            main_ids = self.ids_by_int[: self.main_size]
            record = {
                "plan": self.plan.__dict__,
                "dim": self.dim,
                "ids": main_ids,
                "versions": self.main_versions,
                "lift": None if self.lift is None else self.lift.__dict__,
                "index_bytes": tmp.stat().st_size,
                "index_sha256": _file_sha256(tmp),
            }
            with open(ids_tmp, "w") as handle:
                handle.write(json.dumps(record))
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(directory / INDEX_FILE)
            ids_tmp.replace(directory / IDS_FILE)  # last: it vouches for the index file
            fsync_directory(directory)
        finally:
            tmp.unlink(missing_ok=True)
            ids_tmp.unlink(missing_ok=True)

    @classmethod
    def load(
        cls, directory: Path, memory_budget_bytes: int | None = None, lift: LiftSpec | None = None
    ) -> ShardIndex | None:
        """The saved main index; None when nothing (complete) is saved there, or when it was
        built with another lift than ``lift``.

        Memory-mapped (IO_FLAG_MMAP) when the file is larger than ``memory_budget_bytes``
        (None: always), else read into memory: FAISS searches IVF lists read that way about
        ten times faster than memory-mapped ones (0.36 ms against 3 ms p50 for 50k vectors at
        d = 512, nprobe 32; docs/SERVING.md), and main is never modified either way.
        """
        index_path, ids_path = directory / INDEX_FILE, directory / IDS_FILE
        _remove_dead_writers_files(directory)
        if not (index_path.exists() and ids_path.exists()):
            return None
        try:
            record = json.loads(ids_path.read_text())
            saved_lift = record.get("lift")
            if (None if saved_lift is None else LiftSpec(**saved_lift)) != lift:
                return None  # another first stage (or other lift parameters): rebuild
            plan, ids, versions = IndexPlan.from_record(record["plan"]), list(record["ids"]), list(record["versions"])
            size = index_path.stat().st_size
            # Saved before checksums were kept: no digest to check, faiss's own reading decides.
            if "index_sha256" in record and (size != record["index_bytes"] or _file_sha256(index_path) != record["index_sha256"]):
                log.warning("saved index does not match its record; rebuilding", extra={"path": str(index_path)})
                return None
            mmap = memory_budget_bytes is None or size > memory_budget_bytes
            main = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP if mmap else 0)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RuntimeError) as exc:
            # ids.json unreadable, or faiss cannot read the index (RuntimeError): rebuild it
            log.warning("saved index unreadable; rebuilding", extra={"path": str(directory), "error": str(exc)[:200]})
            return None
        if main.ntotal != len(ids) * (1 if lift is None else lift.copies):
            return None  # the two files come from different builds: rebuild
        return cls(plan, main, ids, versions, lift)

    # -- live changes ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.int_of)

    def __contains__(self, model_id: str) -> bool:
        return model_id in self.int_of

    def _faiss_labels(self, labels: np.ndarray) -> np.ndarray:
        """The FAISS labels of models ``labels`` (each model's ``copies`` vectors)."""
        labels = np.asarray(labels, dtype=np.int64)
        if self.copies == 1:
            return labels
        return (labels[:, None] * self.copies + np.arange(self.copies)[None, :]).reshape(-1)

    def add(self, ids: list[str], rows: ModelRows | np.ndarray, versions: list[int]) -> None:
        """Add models (a model already present is replaced)."""
        if not ids:
            return
        self.remove([i for i in ids if i in self.int_of])
        start = len(self.ids_by_int)
        labels = np.arange(start, start + len(ids), dtype=np.int64)
        self.delta.add_with_ids(index_vectors(self.lift, rows), self._faiss_labels(labels))
        self.ids_by_int.extend(ids)
        for model_id, label, version in zip(ids, labels, versions):
            self.int_of[model_id] = int(label)
            self.versions[model_id] = int(version)

    def remove(self, ids: list[str]) -> None:
        delta_labels = []
        for model_id in ids:
            label = self.int_of.pop(model_id, None)
            self.versions.pop(model_id, None)
            if label is None:
                continue
            if label < self.main_size:
                self.tombstones.add(label)
            else:
                delta_labels.append(label)
        if delta_labels:
            self.delta.remove_ids(self._faiss_labels(np.array(delta_labels, dtype=np.int64)))
        self._exclude = None
        self._exclude_parts = ()

    def needs_rebuild(self, pending: int = 0) -> bool:
        """Whether main should be rebuilt once ``pending`` more changes are applied."""
        changes = len(self.tombstones) + self.delta.ntotal // self.copies + pending
        return changes >= max(REBUILD_MIN_CHANGES, REBUILD_FRACTION * self.main_size)

    # -- search -----------------------------------------------------------------------------

    def _exclusion(self) -> faiss.IDSelector | None:
        if self.tombstones and self._exclude is None:
            labels = self._faiss_labels(np.fromiter(self.tombstones, dtype=np.int64))
            batch = faiss.IDSelectorBatch(labels)
            self._exclude = faiss.IDSelectorNot(batch)
            self._exclude_parts = (batch, labels)
        return self._exclude if self.tombstones else None

    def _params(self, selector: faiss.IDSelector | None, nprobe: int | None = None) -> faiss.SearchParameters | None:
        if self.plan.exhaustive:
            return None if selector is None else faiss.SearchParameters(sel=selector)
        params = faiss.SearchParametersIVF(nprobe=min(self.plan.nlist, nprobe or self.plan.nprobe))
        if selector is not None:
            params.sel = selector
        return params

    def search(self, query: np.ndarray, k: int, allowed: set[str] | None = None, nprobe: int | None = None) -> SearchResult:
        """The k models of highest inner product with ``query``; ``allowed`` restricts them;
        ``nprobe`` overrides the plan's lists scanned (an inverted file)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        found_scores: list[np.ndarray] = []
        found_labels: list[np.ndarray] = []
        keep: tuple[object, ...] = ()
        if allowed is not None:
            labels = np.array(sorted(self.int_of[i] for i in allowed if i in self.int_of), dtype=np.int64)
            if labels.size == 0:
                return SearchResult([], np.zeros(0, dtype=np.float32))
            labels = self._faiss_labels(labels)
            main_sel = faiss.IDSelectorBatch(labels)
            delta_sel = main_sel
            keep = (main_sel, labels)
        else:
            main_sel, delta_sel = self._exclusion(), None
        wanted = k * self.copies  # enough vectors for k distinct models
        if self.main_size and k > 0:
            scores, labels_found = self.main.search(q, min(wanted, self.main.ntotal), params=self._params(main_sel, nprobe))
            found_scores.append(scores[0])
            found_labels.append(labels_found[0])
        if self.delta.ntotal and k > 0:
            params = None if delta_sel is None else faiss.SearchParameters(sel=delta_sel)
            scores, labels_found = self.delta.search(q, min(wanted, self.delta.ntotal), params=params)
            found_scores.append(scores[0])
            found_labels.append(labels_found[0])
        del keep
        if not found_scores:
            return SearchResult([], np.zeros(0, dtype=np.float32))
        scores = np.concatenate(found_scores)
        labels_all = np.concatenate(found_labels)
        valid = labels_all >= 0
        scores, labels_all = scores[valid], labels_all[valid] // self.copies
        order = np.argsort(-scores, kind="stable")
        if self.copies > 1:  # each model once, at its best vector
            _, first = np.unique(labels_all[order], return_index=True)
            order = order[np.sort(first)]
        order = order[:k]
        ids_by_int = self.ids_by_int
        return SearchResult([ids_by_int[label] for label in labels_all[order].tolist()], scores[order])


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _remove_dead_writers_files(directory: Path) -> None:
    """Delete the temporary files of saves whose process is gone (killed mid-save)."""
    for path in directory.glob(".*.tmp"):
        pid = path.name.rsplit(".", 2)[-2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's
