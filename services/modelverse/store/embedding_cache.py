"""Sentence embeddings of model metadata kept on disk, so a restarted shard does not embed again.

Embedding a model's metadata text costs tens of milliseconds of CPU (core.sentence_encoder:
21 MFLOP a token); a shard of 100,000 described models spends hours of one core on it the first
time. The cache maps SHA-256(encoder identity, text) to the embedding: a model whose name,
description, tags or creator change gets a new key, and another encoder (a new wheel) never
reads old vectors.

Layout: a folder of segments ``segment-*.npz``, each holding ``keys`` (n, 16) uint8 (the first
16 bytes of the hash) and ``vectors`` (n, dim) float32, written atomically (store.files): a
crash loses at most the segment being written. Past MAX_SEGMENTS the smaller half are merged
into one (sizes grow geometrically, so a long first embedding rewrites each row a few times, not
once per segment). ``prune`` drops the embeddings of texts no longer in use once they outnumber
the live ones. An unreadable segment is logged and left out: its texts are embedded again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from modelverse.core.sentence_encoder import DIM, encoder_identity
from modelverse.store.files import atomic_write_bytes

log = logging.getLogger("modelverse.store")

KEY_BYTES = 16
MAX_SEGMENTS = 8
EMBED_BATCH = 64  # texts per forward pass between deadline checks
SEGMENT_GLOB = "segment-*.npz"


def text_key(identity: str, text: str) -> bytes:
    return hashlib.sha256(f"{identity}\n{text}".encode()).digest()[:KEY_BYTES]


class EmbeddingCache:
    """The embeddings of ``identity``'s encoder (default: core.sentence_encoder's) under
    ``directory``, created on the first write."""

    def __init__(self, directory: Path, identity: str | None = None, dim: int = DIM) -> None:
        self.directory = directory
        self.identity = identity or encoder_identity()
        self.dim = dim
        self._rows: dict[bytes, np.ndarray] = {}
        self._segments: dict[Path, list[bytes]] = {}  # segment -> its keys
        self._load()

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def segments(self) -> int:
        return len(self._segments)

    def _load(self) -> None:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob(SEGMENT_GLOB)):
            try:
                with np.load(path, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
                if keys.ndim != 2 or keys.shape[1] != KEY_BYTES or vectors.shape != (keys.shape[0], self.dim):
                    raise ValueError(f"shapes {keys.shape} and {vectors.shape}")
            except FileNotFoundError:  # merged away by another process meanwhile
                continue
            except Exception as exc:  # a torn or foreign file: its texts are embedded again
                log.warning("unreadable embedding cache segment left out", extra={"path": str(path), "error": str(exc)})
                continue
            names = [key.tobytes() for key in keys]
            self._rows.update(zip(names, vectors.astype(np.float32, copy=False)))
            self._segments[path] = names

    def _key(self, text: str) -> bytes:
        return text_key(self.identity, text)

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts without an embedding, in order."""
        return [t for t in dict.fromkeys(texts) if self._key(t) not in self._rows]

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32; KeyError when one is not cached (``missing`` says which)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._rows[self._key(text)]
        return out

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Keep these embeddings, saved as one new segment."""
        if not texts:
            return
        keys = [self._key(t) for t in texts]
        vectors = np.asarray(vectors, dtype=np.float32)
        self._rows.update(zip(keys, vectors))
        self._write(keys)
        if len(self._segments) > MAX_SEGMENTS:
            by_size = sorted(self._segments, key=lambda p: len(self._segments[p]))
            self._merge(by_size[: len(by_size) // 2 + 1])

    def prune(self, live_texts: Sequence[str]) -> None:
        """Forget the texts not in ``live_texts`` when they are more than the live ones (one rewrite)."""
        live = set(map(self._key, live_texts)) & self._rows.keys()
        if len(self._rows) - len(live) <= len(live):
            return
        self._rows = {k: self._rows[k] for k in live}
        self._merge(list(self._segments))

    def _write(self, keys: list[bytes]) -> None:
        buffer = io.BytesIO()
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)
        np.savez(buffer, keys=key_array, vectors=np.stack([self._rows[k] for k in keys]))
        path = self.directory / f"segment-{time.time_ns():020d}-{os.getpid()}.npz"
        atomic_write_bytes(path, buffer.getvalue())
        self._segments[path] = keys

    def _merge(self, paths: list[Path]) -> None:
        """One segment of these segments' keys still known; the old files deleted after it is saved."""
        keys = list(dict.fromkeys(k for p in paths for k in self._segments[p] if k in self._rows))
        if keys:
            self._write(keys)
        for path in paths:
            del self._segments[path]
            path.unlink(missing_ok=True)


def embed_missing(cache: EmbeddingCache, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray],
                  seconds: float | None = None) -> int:
    """Embed the texts ``cache`` lacks, EMBED_BATCH at a time, until about ``seconds`` have passed
    (None: all; at least one batch), and save them (one segment); returns how many are still missing."""
    todo = cache.missing(texts)
    started = time.perf_counter()
    done: list[str] = []
    made: list[np.ndarray] = []
    while len(done) < len(todo):  # at least one batch, however short the time
        batch = todo[len(done):len(done) + EMBED_BATCH]
        made.append(np.asarray(encode(batch), dtype=np.float32))
        done += batch
        if seconds is not None and time.perf_counter() - started >= seconds:
            break
    if done:
        cache.add(done, np.concatenate(made))
        log.info("metadata embedded", extra={"texts": len(done), "left": len(todo) - len(done),
                                             "seconds": round(time.perf_counter() - started, 3)})
    return len(todo) - len(done)
