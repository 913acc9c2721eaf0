"""Which shard serves a model: a stable hash of its id, the same in every process and release."""

from __future__ import annotations

import hashlib


def shard_of(model_id: str, shards: int) -> int:
    """Shard index of a model. Python's hash() is salted per process, so we use BLAKE2b."""
    if shards <= 0:
        raise ValueError(f"the number of shards must be positive, got {shards}")
    digest = hashlib.blake2b(model_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards
