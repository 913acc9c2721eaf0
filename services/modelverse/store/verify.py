"""`modelverse verify`: find what crashes and disk faults left in a directory store, and with
``repair`` put it right.

What it looks for (``kind`` of each finding):

- ``temporary``: a file an atomic write left when its process was killed (``.NAME.XXXX.tmp``);
- ``removed-leftover``: a model directory a killed ``remove`` renamed out of sight;
- ``pack-missing`` / ``pack-corrupt`` / ``pack-unchecked``: no pack (or no ``pack.json``), a
  pack that cannot be read, a pack written before checksums;
- ``stale-generation``: column files of a generation no manifest names (a killed rewrite);
- ``zombie``: a model whose files are complete but which no pack row names (an add killed
  between ``meta.json`` and ``pack.json``); no search, ``list`` or ``info`` serves it;
- ``orphan-row``: a pack row whose model has no files; ``orphan-dir``: a model directory
  without ``meta.json`` (an add killed before it); ``orphan-file``: a statistics (or thumbnails) file no
  record points to (a replace killed before removing the old one);
- ``row-checksum`` / ``row-stale``: a packed row that fails its checksum, or holds another
  stats version than the model's own files;
- ``pack-only``: packed rows and no model files at all (a bulk-written benchmark store): left
  alone, since a rebuild from the model files would empty the pack;
- ``corrupt-model``: a model whose ``meta.json`` or statistics file is unreadable or fails
  its checksum.

The cheap check (``deep=False``, what the admin runs at start) reads manifests, column sizes
and directory listings only; the deep one also reads every model's files and every packed
row's checksum. ``repair`` removes temporary files, leftovers and orphans, moves a corrupt
model aside to ``STORE/quarantine/`` (the rest of the store keeps working), and rebuilds the
pack from the per-model files whenever the pack is missing, corrupt, unchecked, or disagrees
with them. A zombie is rolled forward: its files are complete and checksummed, so the rebuilt
pack serves it (the add had written everything it computed). Everything runs under the store's
writer lock, so a verify never sees another writer's half-done work.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelverse.store.directory import DirectoryStore, model_dir_name, store_lock
from modelverse.store.errors import StoreCorruptError, StoreError
from modelverse.store.pack import MANIFEST, Pack

QUARANTINE = "quarantine"
# What files.atomic_write_bytes names its temporary files: ".<target>.<random>.tmp".
TEMPORARY_FILE = re.compile(r"^\..+\.tmp$")
# A model's versioned files: only the ones its record names belong to it.
VERSIONED_FILE = re.compile(r"^(stats-v\d+\.npz|thumbnails-v\d+\.zip)$")


@dataclass(frozen=True)
class Finding:
    kind: str
    path: str  # relative to the store
    detail: str
    action: str = ""  # what repair did; "" when nothing was done


@dataclass
class VerifyReport:
    store: str
    deep: bool
    repair: bool
    models: int = 0  # models the pack serves after the check (and the repair)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing found, or everything found was repaired."""
        return all(f.action for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "deep": self.deep, "repair": self.repair, "models": self.models,
                "ok": self.ok, "findings": [asdict(f) for f in self.findings]}


class _Verifier:
    def __init__(self, store: DirectoryStore, deep: bool, repair: bool) -> None:
        self.store = store
        self.root = store.root
        self.deep = deep
        self.repair = repair
        self.report = VerifyReport(str(store.root), deep, repair)
        self.rebuild_pack = False
        self.bad_rows: set[int] = set()

    def found(self, kind: str, path: Path, detail: str, action: str = "") -> None:
        relative = str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)
        self.report.findings.append(Finding(kind, relative, detail, action if self.repair else ""))

    # -- the steps ------------------------------------------------------------------------------

    def run(self) -> VerifyReport:
        self.check_temporary_files()
        self.check_removed_leftovers()
        pack = self.check_pack()
        self.check_models(pack)
        if self.repair and self.rebuild_pack:
            self.store._repack_locked(on_skip=lambda model_id, why: None)  # damaged ones are quarantined already
        elif self.repair and pack is None and not (self.root / "pack" / MANIFEST).exists():
            self.store._pack_writer().write_empty()  # an old, empty store: give it its pack
        try:
            final = Pack.open(self.root / "pack")
            self.report.models = 0 if final is None else len(final.live_rows())
        except StoreCorruptError:
            self.report.models = 0
        return self.report

    def check_temporary_files(self) -> None:
        # The cheap check lists the store's own directories; the deep one every model's too.
        directories = [self.root, self.root / "pack", self.root / "models", *sorted((self.root / "pack").glob("g*"))]
        if self.deep:
            directories += [p for p in sorted((self.root / "models").glob("*")) if p.is_dir()]
        for directory in directories:
            self.temporary_files_in(directory)

    def temporary_files_in(self, directory: Path) -> None:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and TEMPORARY_FILE.match(entry.name):
                path = Path(entry.path)
                if self.repair:
                    path.unlink(missing_ok=True)
                self.found("temporary", path, "temporary file of an interrupted write", "deleted")

    def check_removed_leftovers(self) -> None:
        for path in sorted((self.root / "models").glob(".removed-*")):
            if self.repair:
                shutil.rmtree(path, ignore_errors=True)
            self.found("removed-leftover", path, "model directory of an interrupted remove", "deleted")

    def check_pack(self) -> Pack | None:
        pack_dir = self.root / "pack"
        manifest = pack_dir / MANIFEST
        try:
            pack = Pack.open(pack_dir)
        except StoreCorruptError as exc:
            self.rebuild_pack = True
            self.found("pack-corrupt", manifest, str(exc), "rebuilt from the per-model files")
            return None
        if pack is None:
            if self.store._has_model_dirs():
                self.rebuild_pack = True
                what = "pack/ is missing" if not pack_dir.exists() else "pack/pack.json is missing"
                self.found("pack-missing", manifest, what, "rebuilt from the per-model files")
            return None
        live = [m for m in pack.row_ids if m is not None]
        if len(set(live)) != len(live):
            self.rebuild_pack = True
            self.found("pack-corrupt", manifest, "a model id names two live rows", "rebuilt from the per-model files")
        if pack.checksums is None:
            self.rebuild_pack = True
            self.found("pack-unchecked", manifest, "the pack was written without row checksums",
                       "rebuilt with checksums")
        for generation_dir in sorted(pack_dir.glob("g*")):
            if generation_dir.is_dir() and generation_dir.name != f"g{pack.generation:06d}":
                if self.repair and not self.rebuild_pack:  # a rebuild deletes them itself
                    shutil.rmtree(generation_dir, ignore_errors=True)
                self.found("stale-generation", generation_dir, "column files no manifest names", "deleted")
        return pack

    def check_models(self, pack: Pack | None) -> None:
        models_dir = self.root / "models"
        packed = {} if pack is None else pack.live_rows()
        expected = {model_dir_name(model_id): model_id for model_id in packed}
        try:
            names = sorted(e.name for e in os.scandir(models_dir) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            names = []
        present = set(names)
        # Every packed row's checksums at once (a loop in C per row and column, not per model).
        self.bad_rows = set(pack.corrupt_rows().tolist()) if (self.deep and pack is not None) else set()
        if packed and not names:
            # Rows and no model files at all: a pack written in bulk (tools/scale_stats.py). A
            # rebuild from model files would empty it, so it is reported and left alone.
            self.found("pack-only", self.root / "pack" / MANIFEST,
                       f"{len(packed)} packed rows and no per-model files (a bulk-written store); "
                       f"{len(self.bad_rows)} rows fail their checksums; nothing to rebuild from")
            return
        for dir_name, model_id in sorted(expected.items()):
            if dir_name not in present or not (models_dir / dir_name / "meta.json").exists():
                self.rebuild_pack = True
                self.found("orphan-row", models_dir / dir_name,
                           f"pack row {packed[model_id]} names model {model_id[:80]!r}, which has no files",
                           "dropped from the pack")
        for dir_name in names:
            model_dir = models_dir / dir_name
            if not (model_dir / "meta.json").exists():
                if self.repair:
                    shutil.rmtree(model_dir, ignore_errors=True)
                self.found("orphan-dir", model_dir, "model directory without meta.json (an interrupted add)", "deleted")
                continue
            packed_id = expected.get(dir_name)
            if packed_id is None:
                self.check_zombie(model_dir, pack_readable=pack is not None)
            elif self.deep:
                self.check_model(model_dir, packed_id, pack, packed[packed_id])

    def check_zombie(self, model_dir: Path, pack_readable: bool) -> None:
        try:
            model_id = self.store._record_id(model_dir / "meta.json")
            if self.deep or self.repair:
                self.store.check_files(model_id)  # its files must be whole to be rolled forward
        except StoreCorruptError as exc:
            self.quarantine(model_dir, str(exc))
            return
        if not pack_readable:
            return  # every model is "unpacked" without a pack: the pack finding says it all
        self.rebuild_pack = True
        self.found("zombie", model_dir,
                   f"model {model_id[:80]!r} has its files but no pack row (an add killed before the pack)",
                   "added to the pack")

    def check_model(self, model_dir: Path, model_id: str, pack: Pack | None, row: int) -> None:
        try:
            # Checksums, not parsing: a file identical to what was written parses (and parsing
            # every npz was 60 % of a deep verify).
            record = self.store.check_files(model_id)
        except StoreCorruptError as exc:
            self.quarantine(model_dir, str(exc))
            return
        current = {record.stats_file, record.thumbnails_file}
        for path in sorted(model_dir.iterdir()):
            if VERSIONED_FILE.match(path.name) and path.name not in current:
                if self.repair:
                    path.unlink(missing_ok=True)
                self.found("orphan-file", path, f"a file of another version than the record's ({record.stats_file})",
                           "deleted")
        if pack is None:
            return
        if row in self.bad_rows:
            self.rebuild_pack = True
            self.found("row-checksum", model_dir, f"pack row {row} of {model_id[:80]!r} fails its checksum",
                       "rewritten from the model's files")
            return
        version = int(pack.arrays["scalars"]["stats_version"][row])
        if version != record.stats_version:
            self.rebuild_pack = True
            self.found("row-stale", model_dir,
                       f"pack row {row} holds stats version {version}, the model's files version {record.stats_version}",
                       "rewritten from the model's files")

    def quarantine(self, model_dir: Path, why: str) -> None:
        """Move a damaged model out of models/ (kept for inspection), so the rest is served."""
        self.rebuild_pack = True
        target = self.root / QUARANTINE / f"{model_dir.name}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        if self.repair:
            target.parent.mkdir(exist_ok=True)
            model_dir.rename(target)
        self.found("corrupt-model", model_dir, why, f"moved to {target.relative_to(self.root)}")


def verify_store(root: Path | str, *, deep: bool = True, repair: bool = False) -> VerifyReport:
    """Check (and with ``repair`` fix) the store at ``root``; holds its writer lock meanwhile.
    A store whose store.json is unreadable raises StoreCorruptError: nothing else can be
    checked without its configuration (restore it from a snapshot)."""
    store = DirectoryStore.open(root)
    with ExitStack() as held:
        try:
            held.enter_context(store_lock(store.root))
        except OSError as exc:
            if repair:
                raise StoreError(f"{store.root}: cannot take the store's lock to repair it ({exc.strerror})") from exc
            # A read-only copy (a snapshot on read-only media): nobody can write it either.
        return _Verifier(store, deep, repair).run()


__all__ = ["QUARANTINE", "Finding", "VerifyReport", "verify_store"]
