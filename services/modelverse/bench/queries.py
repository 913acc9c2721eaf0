"""Queries for benchmarks over a store: points drawn from the stored models' own Gaussians
(image-like), text-like points near a group of models' means, and the gRPC request that carries one."""

from __future__ import annotations

import numpy as np

from modelverse.core.collection import Collection
from modelverse.v1 import search_pb2


def make_queries(collection: Collection, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` unit vectors, each a draw from N(mu, D + W W^T) of a distinct live model (like
    an image that model made), and those models' ids. float32, as a client sends them."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.flatnonzero(collection.live_mask()), count, replace=False))
    c = collection.compressed
    factor = np.asarray(c.factor[rows], dtype=np.float64)
    diag = np.asarray(c.diag[rows], dtype=np.float64)
    z = np.asarray(collection.means[rows], dtype=np.float64)
    z = z + np.einsum("mdr,mr->md", factor, rng.standard_normal((count, factor.shape[2])))
    z = z + np.sqrt(diag) * rng.standard_normal(z.shape)
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32), collection.ids[rows]


def make_text_queries(means: np.ndarray, count: int, seed: int, neighbours: int = 16,
                      noise: float = 0.5) -> np.ndarray:
    """``count`` text-like unit vectors (float32): a caption lands near a concept's images, not on
    one model's. Each is the mean direction of a random model's ``neighbours`` nearest models (by
    cosine of normalised means: the concept and the common direction, without any one model's
    own part or covariance) plus isotropic noise of norm ``noise``, as tools/bench_compression.py
    makes text-like queries from SyntheticZoo's concepts. ``means``: (M, d) live first moments."""
    rng = np.random.default_rng(seed)
    unit = np.asarray(means, dtype=np.float32)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    out = np.empty((count, unit.shape[1]), dtype=np.float64)
    for i, anchor in enumerate(rng.choice(unit.shape[0], count, replace=False)):
        near = np.argpartition(-(unit @ unit[anchor]), neighbours)[:neighbours]
        direction = unit[near].astype(np.float64).mean(axis=0)
        direction /= np.linalg.norm(direction)
        out[i] = direction + noise * rng.standard_normal(unit.shape[1]) / np.sqrt(unit.shape[1])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def vector_request(q: np.ndarray, method: int, k: int, candidates: int = 0) -> search_pb2.SearchRequest:
    """A Search of one raw vector; ``candidates`` per shard (0: the server's default)."""
    return search_pb2.SearchRequest(parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=q.tolist()))],
                                    top_k=k, method=method, candidates_per_shard=candidates)
