"""Fingerprints of weight files: sha256 over the bytes, computed once and cached beside them.

Hashing a 600 MB CLIP checkpoint takes seconds, and every process that loads an encoder needs the
fingerprint, so the digest is kept in a sidecar file ``<weights>.sha256.json`` recording the size
and modification time it was computed for; a changed file is hashed again. Where the weights'
folder is read-only the sidecar goes to ``<cache>/fingerprints/`` instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

SIDECAR_SUFFIX = ".sha256.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar_candidates(path: Path, cache_dir: Path) -> list[Path]:
    fallback_name = hashlib.sha1(str(path).encode()).hexdigest() + SIDECAR_SUFFIX
    return [path.with_name(path.name + SIDECAR_SUFFIX), cache_dir / "fingerprints" / fallback_name]


def _read_sidecar(sidecar: Path, stamp: dict[str, int]) -> str | None:
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if record.get("size") == stamp["size"] and record.get("mtime_ns") == stamp["mtime_ns"]:
        digest = record.get("sha256")
        return digest if isinstance(digest, str) and len(digest) == 64 else None
    return None


def _write_sidecar(sidecar: Path, record: dict[str, object]) -> bool:
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, sidecar)
        return True
    except OSError:
        return False


def file_fingerprint(path: str | os.PathLike[str], cache_dir: Path) -> str:
    """sha256 (hex) of a file's bytes, read from or written to its sidecar cache."""
    resolved = Path(path).resolve()
    info = resolved.stat()
    stamp = {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
    candidates = _sidecar_candidates(resolved, cache_dir)
    for sidecar in candidates:
        cached = _read_sidecar(sidecar, stamp)
        if cached is not None:
            return cached
    digest = sha256_file(resolved)
    record = {**stamp, "sha256": digest, "file": resolved.name}
    for sidecar in candidates:  # beside the weights if writable, else in the cache
        if _write_sidecar(sidecar, record):
            break
    return digest


def combined_fingerprint(paths: Sequence[Path], cache_dir: Path) -> str:
    """One digest over several files (e.g. a local-dir's config and weights), order-sensitive."""
    if len(paths) == 1:
        return file_fingerprint(paths[0], cache_dir)
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}:{file_fingerprint(path, cache_dir)}\n".encode())
    return digest.hexdigest()
