"""Queries for benchmarks over a store: points drawn from the stored models' own Gaussians, and
the gRPC request that carries one."""

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


def vector_request(q: np.ndarray, method: int, k: int, candidates: int = 0) -> search_pb2.SearchRequest:
    """A Search of one raw vector; ``candidates`` per shard (0: the server's default)."""
    return search_pb2.SearchRequest(parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=q.tolist()))],
                                    top_k=k, method=method, candidates_per_shard=candidates)
