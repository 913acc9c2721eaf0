"""Consistent copies of a directory store, taken while writers (the admin, the fleet) go on.

``snapshot`` holds the store's writer lock while it links the files of one state of the store:
``store.json``, ``pack.json``, the current generation's column files and, for every model the
pack serves, its ``meta.json`` and statistics file (and any other file of its directory but
temporary ones). Nothing it links is ever changed in place (docs/STORE.md): per-model files
are replaced by renaming a new file over them, which leaves the snapshot's link on the old
one, and a generation's column files only grow past the rows its manifest names. So hard
links are a consistent copy at the cost of a directory entry per file, and writers wait only
for the linking. Where a hard link is impossible (another filesystem) the file is copied.

``restore`` checks a snapshot with a deep ``verify`` and copies it (never links: the restored
store is written to again) into a new directory, renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from modelverse.store.directory import STORE_MANIFEST, DirectoryStore, model_dir_name, store_lock
from modelverse.store.errors import StoreError
from modelverse.store.files import atomic_write_json, fsync_directory
from modelverse.store.pack import CHECKSUMS, MANIFEST, Pack
from modelverse.store.verify import TEMPORARY_FILE, VERSIONED_FILE, verify_store

SNAPSHOT_MANIFEST = "snapshot.json"
SNAPSHOT_FORMAT = "modelverse-store-snapshot"


@dataclass(frozen=True)
class SnapshotResult:
    path: str
    models: int
    generation: int
    linked: int  # files hard-linked
    copied: int  # files copied (another filesystem, or small mutable ones)
    locked_seconds: float  # how long writers waited (the lock was held)
    seconds: float  # the whole snapshot, making it durable included


class _Linker:
    def __init__(self) -> None:
        self.linked = 0
        self.copied = 0

    def link(self, source: Path, target: Path) -> None:
        try:
            os.link(source, target)
            self.linked += 1
        except OSError:  # EXDEV (another filesystem) or a filesystem without hard links
            self.copy(source, target)

    def copy(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
        self.copied += 1


def _fresh_target(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"{out}: already exists and is not empty; give a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"


def _make_durable(tree: Path, *, files: bool) -> None:
    """fsync every directory of ``tree`` (the new links' entries) and, with ``files``, every
    file (copies; a hard link's data is the store's, fsynced when it was written)."""
    for directory, _, names in os.walk(tree):
        if files:
            for name in names:
                with open(os.path.join(directory, name), "rb") as handle:
                    os.fsync(handle.fileno())
        fsync_directory(Path(directory))


def _move_into_place(work: Path, out: Path, *, copied_files: bool) -> None:
    """Make ``work`` durable, then give it its name: a snapshot or a restored store exists
    under its name only when complete."""
    _make_durable(work, files=copied_files)
    if out.exists():
        out.rmdir()  # empty, checked before
    work.rename(out)
    fsync_directory(out.parent)


def snapshot_store(root: Path | str, out: Path | str) -> SnapshotResult:
    """A consistent copy of the store at ``root`` in the new directory ``out``."""
    store = DirectoryStore.open(root)
    out = Path(out)
    work = _fresh_target(out)
    linker = _Linker()
    started = time.perf_counter()
    try:
        with store_lock(store.root):
            locked = time.perf_counter()
            pack = store.pack()
            if pack is None:
                raise StoreError(f"{store.root}: the store has no pack yet; nothing to snapshot")
            linker.copy(store.root / STORE_MANIFEST, work / STORE_MANIFEST)
            generation = f"g{pack.generation:06d}"
            (work / "pack" / generation).mkdir(parents=True)
            for name in [*pack.arrays, *([CHECKSUMS] if pack.checksums is not None else [])]:
                linker.link(store.root / "pack" / generation / f"{name}.bin", work / "pack" / generation / f"{name}.bin")
            linker.copy(store.root / "pack" / MANIFEST, work / "pack" / MANIFEST)
            rows = pack.live_rows()
            models = sorted(rows)
            versions = pack.arrays["scalars"]["stats_version"]
            (work / "models").mkdir(exist_ok=True)
            for model_id in models:
                # The pack row's stats version names the model's current files: no meta.json
                # is read while writers wait (that, and a recursive glob, were most of the time).
                version = int(versions[rows[model_id]])
                current = {f"stats-v{version}.npz", f"thumbnails-v{version}.zip"}
                name = model_dir_name(model_id)
                target_dir = work / "models" / name
                target_dir.mkdir()
                try:
                    entries = list(os.scandir(store.root / "models" / name))
                except FileNotFoundError:  # a packed row without model files: verify reports it
                    continue
                for entry in entries:
                    if not entry.is_file(follow_symlinks=False) or TEMPORARY_FILE.match(entry.name):
                        continue  # model directories are flat; anything else is not the store's
                    if VERSIONED_FILE.match(entry.name) and entry.name not in current:
                        continue  # left by an interrupted replace; not part of this state
                    linker.link(Path(entry.path), target_dir / entry.name)
            locked = time.perf_counter() - locked
        atomic_write_json(
            work / SNAPSHOT_MANIFEST,
            {"format": SNAPSHOT_FORMAT, "source": str(store.root.resolve()), "generation": pack.generation,
             "models": len(models), "created_at": datetime.now(UTC).isoformat(timespec="seconds")},
        )
        _move_into_place(work, out, copied_files=False)  # copies were fsynced as they were made
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return SnapshotResult(str(out), len(models), pack.generation, linker.linked, linker.copied,
                          locked, time.perf_counter() - started)


def read_snapshot_manifest(snapshot: Path) -> dict:
    path = snapshot / SNAPSHOT_MANIFEST
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{snapshot}: not a complete store snapshot (no readable {SNAPSHOT_MANIFEST})") from exc
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise StoreError(f"{path}: not a store snapshot manifest")
    return data


def restore_store(snapshot: Path | str, target: Path | str) -> int:
    """Bring a snapshot back as a new store at ``target``; returns the models it holds.
    The snapshot is verified first (deep); a damaged one is refused with what is wrong."""
    snapshot, target = Path(snapshot), Path(target)
    manifest = read_snapshot_manifest(snapshot)
    report = verify_store(snapshot, deep=True, repair=False)
    if not report.ok:
        first = report.findings[0]
        raise StoreError(f"{snapshot}: the snapshot is damaged ({len(report.findings)} finding(s), first: "
                         f"{first.kind} {first.path}: {first.detail}); nothing restored")
    if report.models != manifest.get("models"):
        raise StoreError(f"{snapshot}: holds {report.models} models, its manifest says {manifest.get('models')}")
    work = _fresh_target(target)
    try:
        shutil.copytree(snapshot, work, ignore=lambda _d, names: [n for n in names if n in {SNAPSHOT_MANIFEST, ".lock"}])
        _move_into_place(work, target, copied_files=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    # The restored store must open and serve what the snapshot held.
    restored = Pack.open(target / "pack")
    return 0 if restored is None else len(restored.live_rows())
