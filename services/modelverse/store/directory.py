"""The embedded model store: one directory on the local filesystem, nothing else to run.

Layout::

    STORE/store.json                       format, version, dimension, rank, eps, encoder
    STORE/models/<name>-<hash>/meta.json   metadata + record (stats version, checksum, ...)
    STORE/models/<name>-<hash>/stats-v<N>.npz
    STORE/models/<name>-<hash>/thumbnails-v<N>.zip   a few small samples (``store.thumbnails``),
                                           when the fleet drew them; none for models added from features
    STORE/pack/...                         packed serving table (see ``pack``)

The per-model files are the source of truth; the pack is derived from them and can always be
rebuilt (``modelverse repack``). Writers take an exclusive lock on ``STORE/.lock``; readers take
none. Every file is replaced atomically, and a model becomes visible only once its statistics
and metadata are both on disk.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelverse.core.collection import Collection
from modelverse.core.params import ScoringParams
from modelverse.core.reference import MissingStatisticsError
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK, DEFAULT_TAU, ModelStats
from modelverse.errors import InvalidInputError
from modelverse.store.errors import (
    IncompatibleStatsError,
    ModelExistsError,
    ModelNotFoundError,
    StoreCorruptError,
    StoreError,
    StoreNotFoundError,
)
from modelverse.store.files import atomic_write_bytes, atomic_write_json, read_json
from modelverse.store.metadata import ModelMetadata, validate_model_id
from modelverse.store.pack import CHECKED_COLUMNS, MANIFEST, Pack, PackRow, PackWriter
from modelverse.store.stats_io import read_stats, stats_to_bytes
from modelverse.store.thumbnails import thumbnails_from_bytes, thumbnails_to_bytes

STORE_FORMAT = "modelverse-store"
STORE_MANIFEST = "store.json"  # a directory holds a store once this file is there
STORE_FORMAT_VERSION = 1
META_FORMAT_VERSION = 1
COMPACT_WHEN_DEAD_FRACTION = 0.25
COMPACT_MIN_ROWS = 256

log = logging.getLogger("modelverse.store")

# Told about each model a read leaves out because its data is damaged: (model id, why).
SkipReport = Callable[[str, str], None]


def _log_skip(model_id: str, reason: str) -> None:
    log.warning("damaged model left out", extra={"model_id": model_id, "reason": reason})


@dataclass(frozen=True)
class StoreConfig:
    dim: int
    rank: int = DEFAULT_RANK
    eps: float = DEFAULT_EPS
    # The feature space: every model's statistics and every query must come from this encoder
    # ("name:fingerprint"; "" for features added without naming their encoder).
    encoder: str = ""
    # The temperature of the Monte Carlo and 1st + 2nd moment scores: the encoder's own,
    # exp(logit_scale) (CLIP's is the paper's 100; docs/QUALITY.md). Fixed at creation like the
    # encoder; not part of equality, because statistics do not depend on it, only scores do.
    tau: float = field(default=DEFAULT_TAU, compare=False)

    @property
    def scoring(self) -> ScoringParams:
        """What every scorer of this store's statistics uses: the one source of tau and eps."""
        return ScoringParams(tau=self.tau, eps=self.eps)


@dataclass(frozen=True)
class StoredModel:
    """What the store knows of a model besides its arrays."""

    metadata: ModelMetadata
    stats_version: int
    count: int
    has_covariance: bool
    has_samples: bool
    added_at: str
    stats_file: str
    stats_sha256: str
    encoder: str = ""
    thumbnails: int = 0  # how many thumbnails are stored (0: none, e.g. added from features)
    thumbnails_file: str = ""

    @classmethod
    def from_dict(cls, data: Any, *, where: str, stats_file: str | None = None) -> StoredModel:
        """A model's record as a store keeps it, ``{"metadata": {...}, "record": {...}}`` (a
        directory store's meta.json, a Redis store's "meta" field): the one parser of both.

        ``where`` names the record in the StoreCorruptError a malformed one raises;
        ``stats_file`` is where the statistics are, for a store whose record does not say (Redis).
        """
        try:
            record = data["record"]
            return cls(
                metadata=ModelMetadata.from_dict(data["metadata"]),
                stats_version=int(record["stats_version"]),
                count=int(record["count"]),
                has_covariance=bool(record["has_covariance"]),
                has_samples=bool(record["has_samples"]),
                added_at=str(record["added_at"]),
                stats_file=str(record["stats_file"]) if stats_file is None else stats_file,
                stats_sha256=str(record["stats_sha256"]),
                encoder=str(record.get("encoder") or ""),
                thumbnails=int(record.get("thumbnails") or 0),
                thumbnails_file=str(record.get("thumbnails_file") or ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreCorruptError(f"{where}: malformed model record ({exc!r})") from exc

    def summary(self) -> dict[str, Any]:
        """The flat form ``modelverse info --json`` and ``list --json`` print (not the stored
        record: that is what ``from_dict`` reads)."""
        return {
            **self.metadata.to_dict(),
            "stats_version": self.stats_version,
            "count": self.count,
            "has_covariance": self.has_covariance,
            "has_samples": self.has_samples,
            "added_at": self.added_at,
            "encoder": self.encoder,
            "thumbnails": self.thumbnails,
        }


def meta_digest(body: dict[str, Any]) -> str:
    """The checksum a meta.json carries of its own content (every key but "sha256")."""
    content = {k: v for k, v in body.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@contextmanager
def store_lock(root: Path) -> Iterator[None]:
    """The store's exclusive writer lock (flock on ROOT/.lock): writers, creation, repair and
    snapshots take it; readers never do."""
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# A test-only hook (tests/test_store_recovery.py): when set, a writer that has written a
# model's meta.json creates the file named here and sleeps before it touches the pack, so a
# test can kill -9 it at exactly that point. Never set in production.
PAUSE_BEFORE_PACK_ENV = "MODELVERSE_TEST_PAUSE_BEFORE_PACK"


def _pause_before_pack_if_asked() -> None:
    marker = os.environ.get(PAUSE_BEFORE_PACK_ENV)
    if marker:
        Path(marker).touch()
        import time

        while True:  # until the test kills this process
            time.sleep(1)


def model_dir_name(model_id: str) -> str:
    """A readable, filesystem-safe and collision-free directory name for any valid id."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[:64].lstrip(".") or "model"
    return f"{readable}-{hashlib.sha256(model_id.encode()).hexdigest()[:16]}"


class DirectoryStore:
    def __init__(self, root: Path, config: StoreConfig) -> None:
        self.root = root
        self.config = config
        # (pack.json's stat, its live ids): membership re-reads the manifest only when it changes
        self._packed_cache: tuple[tuple[int, int, int] | None, set[str]] | None = None

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path | str, config: StoreConfig) -> DirectoryStore:
        """A new, empty store; StoreError if one exists (made by another process a moment ago)."""
        return cls._create_or_open(Path(root), config, may_open=False)

    @classmethod
    def _create_or_open(cls, root: Path, config: StoreConfig, *, may_open: bool) -> DirectoryStore:
        if (config.dim <= 0 or config.rank <= 0 or config.rank > config.dim or config.eps <= 0
                or not 0 < config.tau < float("inf")):
            raise InvalidInputError(f"invalid store configuration {config}")
        root.mkdir(parents=True, exist_ok=True)
        # Under the lock, so that of two processes creating the same store one creates it and
        # the other finds it (and then its own configuration is checked against it).
        with store_lock(root):
            if cls.exists(root):
                if may_open:
                    return cls.open(root)
                raise StoreError(f"{root}: a store already exists here")
            store = cls(root, config)
            store._write_new(config)
            return store

    def _write_new(self, config: StoreConfig) -> None:
        root = self.root
        (root / "models").mkdir(parents=True, exist_ok=True)
        self._pack_writer().write_empty()
        atomic_write_json(  # last: a store exists once its manifest does
            root / STORE_MANIFEST,
            {
                "format": STORE_FORMAT,
                "format_version": STORE_FORMAT_VERSION,
                "dim": config.dim,
                "rank": config.rank,
                "eps": config.eps,
                "encoder": config.encoder,
                "tau": config.tau,
                "created_at": _now(),
            },
        )

    @classmethod
    def open(cls, root: Path | str) -> DirectoryStore:
        root = Path(root)
        path = root / STORE_MANIFEST
        if not path.exists():
            raise StoreNotFoundError(f"{root}: no model store here (create one with `modelverse add`)")
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
            raise StoreCorruptError(f"{path}: not a modelverse store manifest")
        if data.get("format_version") != STORE_FORMAT_VERSION:
            raise StoreCorruptError(
                f"{path}: store format version {data.get('format_version')}, this program reads "
                f"{STORE_FORMAT_VERSION}"
            )
        try:
            config = StoreConfig(
                dim=int(data["dim"]),
                rank=int(data["rank"]),
                eps=float(data["eps"]),
                encoder=str(data.get("encoder", "")),
                tau=float(data.get("tau", DEFAULT_TAU)),  # stores made before tau was kept: the paper's
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorruptError(f"{path}: malformed store manifest ({exc!r})") from exc
        return cls(root, config)

    @staticmethod
    def exists(root: Path | str) -> bool:
        """Whether ``root`` holds a store (its manifest): what callers ask before open or create."""
        return (Path(root) / STORE_MANIFEST).exists()

    @classmethod
    def open_or_create(cls, root: Path | str, config: StoreConfig) -> DirectoryStore:
        """The store at ``root``, created with ``config`` if there is none (the caller checks
        an existing store's configuration against what it needs)."""
        if cls.exists(root):
            return cls.open(root)
        return cls._create_or_open(Path(root), config, may_open=True)

    # -- paths and locking ------------------------------------------------------------------

    def _model_dir(self, model_id: str) -> Path:
        return self.root / "models" / model_dir_name(validate_model_id(model_id))

    def _pack_writer(self) -> PackWriter:
        return PackWriter(self.root / "pack", self.config.dim, self.config.rank, self.config.eps)

    def _writer_lock(self) -> AbstractContextManager[None]:
        return store_lock(self.root)

    # -- reading ------------------------------------------------------------------------------

    def pack(self) -> Pack | None:
        """The pack's current snapshot; None for a store that never packed anything (made
        before every store had a pack and still empty). A missing pack of a store that holds
        model files is damage, and says so."""
        pack = Pack.open(self.root / "pack")
        if pack is None and self._has_model_dirs():
            raise StoreCorruptError(
                f"{self.root / 'pack' / MANIFEST}: the pack is missing but the store holds model files; "
                "run `modelverse verify --repair` to rebuild it"
            )
        return pack

    def _has_model_dirs(self) -> bool:
        try:
            with os.scandir(self.root / "models") as entries:
                return any(e.is_dir() and not e.name.startswith(".") for e in entries)
        except FileNotFoundError:
            return False

    def ids(self) -> list[str]:
        pack = self.pack()
        return [] if pack is None else sorted(pack.live_rows())

    def __len__(self) -> int:
        return len(self.ids())

    def _packed_ids(self) -> set[str]:
        """The pack's live ids, re-read only when pack.json changes (one stat per call)."""
        path = self.root / "pack" / MANIFEST
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            key = None
        cached = self._packed_cache
        if cached is None or cached[0] != key:
            pack = self.pack()
            cached = (key, set() if pack is None else set(pack.live_rows()))
            self._packed_cache = cached
        return cached[1]

    def __contains__(self, model_id: str) -> bool:
        """Whether the model is in the store: in its pack, which is what every search, `list`
        and `info` serve. A model whose files were written by an add killed before the pack
        (a "zombie") is not; `add` may write it again and `verify --repair` completes it."""
        return model_id in self._packed_ids()

    def is_zombie(self, model_id: str) -> bool:
        return model_id not in self and (self._model_dir(model_id) / "meta.json").exists()

    def get(self, model_id: str) -> StoredModel:
        """A model's record, read from its meta.json (callers list or search packed ids; see
        ``__contains__`` for whether the store serves it)."""
        path = self._model_dir(model_id) / "meta.json"
        if not path.exists():
            raise ModelNotFoundError(f"no model {model_id!r} in {self.root}")
        data = read_json(path)
        if isinstance(data, dict) and "sha256" in data and data["sha256"] != meta_digest(data):
            raise StoreCorruptError(
                f"{path}: checksum mismatch; the model record is corrupt (`modelverse verify --repair` "
                "quarantines it)"
            )
        return StoredModel.from_dict(data, where=str(path))

    def get_thumbnails(self, model_id: str) -> list[bytes]:
        """The model's stored thumbnails (PNG files), [] when it has none."""
        stored = self.get(model_id)
        if not stored.thumbnails_file:
            return []
        path = self._model_dir(model_id) / stored.thumbnails_file
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreCorruptError(f"{path}: thumbnails file is missing") from exc
        return thumbnails_from_bytes(data, str(path))

    def check_files(self, model_id: str) -> StoredModel:
        """The model's record, once its meta.json and statistics file pass their checksums
        (StoreCorruptError otherwise); the statistics are not parsed."""
        stored = self.get(model_id)
        self._checked_stats_path(model_id, stored)
        return stored

    def _checked_stats_path(self, model_id: str, stored: StoredModel) -> Path:
        path = self._model_dir(model_id) / stored.stats_file
        try:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except FileNotFoundError as exc:
            raise StoreCorruptError(f"{path}: statistics file is missing") from exc
        if digest != stored.stats_sha256:
            raise StoreCorruptError(f"{path}: checksum mismatch; the file is corrupt or truncated")
        return path

    def get_stats(self, model_id: str) -> ModelStats:
        return read_stats(self._checked_stats_path(model_id, self.get(model_id)))

    def collection(
        self, *, full: bool = False, samples: bool = False,
        check_columns: Iterable[str] = CHECKED_COLUMNS, on_skip: SkipReport = _log_skip,
    ) -> Collection:
        """Every model's statistics for scoring.

        By default: the memory-mapped pack (first moments and compressed second order), which
        opens in milliseconds at any size. ``full`` / ``samples`` also load each model's full
        covariance / raw samples from its own file: meant for small collections.

        Rows whose ``check_columns`` fail their checksums, and models whose own files are
        damaged (``full`` / ``samples``), are left out and reported to ``on_skip``: a damaged
        row is never scored (an overwritten mean once ranked an unrelated model first).
        """
        pack = self.pack()
        if pack is None or not pack.live_rows():
            raise StoreError(f"{self.root}: the store holds no models yet")
        corrupt = pack.corrupt_rows(columns=tuple(check_columns))
        for row in corrupt.tolist():
            on_skip(str(pack.row_ids[row]), "its packed row fails its checksum")
        if not (full or samples):
            if len(corrupt) == len(pack.live_rows()):
                raise StoreCorruptError(f"{self.root}: every packed row fails its checksum; run `modelverse verify --repair`")
            return pack.collection(skip_rows=corrupt)
        bad_ids = {pack.row_ids[row] for row in corrupt.tolist()}
        ids, stats = [], []
        for model_id in sorted(pack.live_rows()):
            if model_id in bad_ids:
                continue
            try:
                stats.append(self.get_stats(model_id))
                ids.append(model_id)
            except StoreCorruptError as exc:
                on_skip(model_id, str(exc))
        if not ids:
            raise StoreCorruptError(f"{self.root}: no model's statistics are readable; run `modelverse verify`")
        lacking = [
            model_id
            for model_id, s in zip(ids, stats)
            if (full and s.covariance is None) or (samples and s.samples is None)
        ]
        if lacking:
            what = "full covariance" if full else "raw samples"
            raise MissingStatisticsError(
                f"{len(lacking)} model(s) have no stored {what} (for example {lacking[0]!r}); "
                "re-add them keeping it, or use the compressed second order"
            )
        collection = Collection.from_stats(ids, stats)
        return collection if samples else Collection(collection.ids, collection.means, collection.compressed, collection.full)

    # -- writing ------------------------------------------------------------------------------

    def _check_stats(self, stats: ModelStats) -> None:
        c = stats.compressed
        if stats.dim != self.config.dim:
            raise IncompatibleStatsError(
                f"features have dimension {stats.dim}, the store at {self.root} holds dimension {self.config.dim}"
            )
        if c.rank != self.config.rank or c.eps != self.config.eps:
            raise IncompatibleStatsError(
                f"statistics were compressed with rank {c.rank}, eps {c.eps}; the store uses "
                f"rank {self.config.rank}, eps {self.config.eps}"
            )
        if stats.encoder != self.config.encoder:
            raise IncompatibleStatsError(
                f"statistics were made with encoder {_encoder_label(stats.encoder)}, the store at "
                f"{self.root} holds features of encoder {_encoder_label(self.config.encoder)}: "
                "index into another store, or re-encode with the store's encoder"
            )

    def check_query_encoder(self, encoder: str) -> None:
        """Refuse a query whose features come from another encoder than the store's."""
        if encoder != self.config.encoder:
            raise IncompatibleStatsError(
                f"the query was encoded with {_encoder_label(encoder)}, but the store at {self.root} "
                f"holds statistics made with {_encoder_label(self.config.encoder)}: use that "
                "encoder (--encoder / $MODELVERSE_ENCODER) or a store indexed with yours"
            )

    def _previous_version(self, model_id: str) -> tuple[int, list[str]]:
        """(stats version, [stats file, thumbnails file]) of whatever files the model has now,
        packed or not; (0, []) for none. An unreadable record counts as none: it is overwritten."""
        if not (self._model_dir(model_id) / "meta.json").exists():
            return 0, []
        try:
            previous = self.get(model_id)
        except StoreCorruptError:
            return 0, []
        return previous.stats_version, [f for f in (previous.stats_file, previous.thumbnails_file) if f]

    def _write_model_files(
        self, metadata: ModelMetadata, stats: ModelStats, replace: bool, packed: set[str],
        thumbnails: list[bytes] | None = None,
    ) -> tuple[PackRow, list[Path]]:
        model_dir = self._model_dir(metadata.id)
        meta_path = model_dir / "meta.json"
        if metadata.id in packed and not replace:
            raise ModelExistsError(f"model {metadata.id!r} is already in the store (use --replace to replace it)")
        # A zombie's (an unpacked model's) files are overwritten; its version still counts up,
        # so that a shard never mistakes the new statistics for ones it has indexed.
        previous_version, previous_files = self._previous_version(metadata.id)
        version = previous_version + 1
        stats_file = f"stats-v{version}.npz"
        payload = stats_to_bytes(stats)
        atomic_write_bytes(model_dir / stats_file, payload)
        # Versioned like the statistics, written before meta.json names it: a reader never sees
        # the thumbnails of one version with the record of another.
        thumbnails_file = f"thumbnails-v{version}.zip" if thumbnails else ""
        if thumbnails:
            atomic_write_bytes(model_dir / thumbnails_file, thumbnails_to_bytes(thumbnails))
        body = {
            "format_version": META_FORMAT_VERSION,
            "metadata": metadata.to_dict(),
            "record": {
                "stats_version": version,
                "stats_file": stats_file,
                "stats_sha256": hashlib.sha256(payload).hexdigest(),
                "count": stats.count,
                "dim": stats.dim,
                "has_covariance": stats.covariance is not None,
                "has_samples": stats.samples is not None,
                "added_at": _now(),
                "encoder": stats.encoder,
                "thumbnails": len(thumbnails or []),
                "thumbnails_file": thumbnails_file,
            },
        }
        atomic_write_json(meta_path, {**body, "sha256": meta_digest(body)})
        old_files = [model_dir / f for f in previous_files if f not in (stats_file, thumbnails_file)]
        return PackRow(metadata.id, stats, version), old_files

    def put_many(
        self,
        items: list[tuple[ModelMetadata, ModelStats]],
        *,
        replace: bool = False,
        thumbnails: Mapping[str, list[bytes]] | None = None,
    ) -> None:
        """Add (or with ``replace``, replace) models; the pack is updated once for all.
        ``thumbnails`` maps a model id to its thumbnails; a model without any has none stored
        (a replaced model's old thumbnails go with its old statistics)."""
        ids = [metadata.id for metadata, _ in items]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("the same model id appears twice in one batch")
        for _, stats in items:
            self._check_stats(stats)
        with self._writer_lock():
            current = Pack.open(self.root / "pack")
            packed = set() if current is None else set(current.live_rows())
            written = [self._write_model_files(m, s, replace, packed, (thumbnails or {}).get(m.id)) for m, s in items]
            _pause_before_pack_if_asked()
            writer = self._pack_writer()
            writer.append([row for row, _ in written])
            for _, old_files in written:
                for old_file in old_files:
                    old_file.unlink(missing_ok=True)
            self._maybe_compact(writer)

    def put(
        self,
        metadata: ModelMetadata,
        stats: ModelStats,
        *,
        replace: bool = False,
        thumbnails: list[bytes] | None = None,
    ) -> StoredModel:
        self.put_many([(metadata, stats)], replace=replace,
                      thumbnails={metadata.id: thumbnails} if thumbnails else None)
        return self.get(metadata.id)

    def remove(self, model_id: str) -> None:
        with self._writer_lock():
            model_dir = self._model_dir(model_id)
            if not (model_dir / "meta.json").exists():
                raise ModelNotFoundError(f"no model {model_id!r} in {self.root}")
            # Out of sight first (a crash here leaves it served until the next repack, but
            # never resurrected by one), then out of the pack, then off the disk.
            trash = model_dir.with_name(f".removed-{model_dir.name}-{uuid.uuid4().hex[:8]}")
            model_dir.rename(trash)
            writer = self._pack_writer()
            writer.remove(model_id)
            shutil.rmtree(trash, ignore_errors=True)
            self._maybe_compact(writer)

    def _maybe_compact(self, writer: PackWriter) -> None:
        pack = self.pack()
        if pack is not None and pack.rows >= COMPACT_MIN_ROWS and writer.dead_fraction() > COMPACT_WHEN_DEAD_FRACTION:
            writer.compact()

    def repack(self, on_skip: SkipReport = _log_skip) -> int:
        """Rebuild the pack from the per-model files; returns the number of models packed.
        Works with a missing or corrupt pack. A model whose files are damaged is left out of
        the new pack and reported (``modelverse verify --repair`` moves it aside)."""
        with self._writer_lock():
            return self._repack_locked(on_skip)

    def _repack_locked(self, on_skip: SkipReport) -> int:
        models_dir = self.root / "models"
        for trash in models_dir.glob(".removed-*"):
            shutil.rmtree(trash, ignore_errors=True)
        ids: list[str] = []
        for meta_path in models_dir.glob("*/meta.json"):
            try:
                ids.append(self._record_id(meta_path))
            except StoreCorruptError as exc:
                on_skip(meta_path.parent.name, str(exc))
        packed = 0

        def rows() -> Iterator[PackRow]:  # one model's statistics in memory at a time
            nonlocal packed
            for model_id in sorted(ids):
                try:
                    row = PackRow(model_id, self.get_stats(model_id), self.get(model_id).stats_version)
                except StoreCorruptError as exc:
                    on_skip(model_id, str(exc))
                    continue
                packed += 1
                yield row

        self._pack_writer().rebuild(rows())
        return packed

    def _record_id(self, meta_path: Path) -> str:
        """The id a meta.json names, checked against the directory it lies in."""
        data = read_json(meta_path)
        try:
            model_id = str(data["metadata"]["id"])
        except (KeyError, TypeError) as exc:
            raise StoreCorruptError(f"{meta_path}: malformed model record ({exc!r})") from exc
        if model_dir_name(model_id) != meta_path.parent.name:
            raise StoreCorruptError(f"{meta_path}: names model {model_id[:80]!r}, which belongs in another directory")
        return model_id


def _encoder_label(encoder: str) -> str:
    return repr(encoder) if encoder else "an unstated encoder (features added directly)"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
