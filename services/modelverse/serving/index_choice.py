"""Which FAISS index a recall shard builds, chosen from its size and a memory budget.

The rule, in the spirit of autofaiss and FAISS's own guidelines
(https://github.com/facebookresearch/faiss/wiki/Guidelines-to-choose-an-index):

1. Up to ``exact_threshold`` vectors (default 20,000), when the raw vectors fit the budget:
   ``Flat``, the exact inner product. At d = 512 a scan of 20,000 vectors is a few ms on one
   core, and exact recall makes the two-stage search equal to the exhaustive one whenever the
   candidates cover the shard.
2. Above it, an inverted file: nlist = the power of two nearest 4 sqrt(n) (FAISS: 4 to 16
   sqrt(n) lists), at most n / 39 (FAISS warns below 39 training points per centroid) and at
   least 16. The codes are chosen by the budget: raw float32 vectors (``IVF,Flat``, 4 d bytes
   per vector) if they fit, else 8-bit scalar quantisation (``IVF,SQ8``, d bytes), else product
   quantisation (``IVF,PQm``, m bytes, the largest m in 64, 32, 16, 8 that fits and divides d).
   nprobe defaults to nlist / 32 (about 3 % of the lists scanned), at least 8; the recall of
   this default against the exact first stage is measured by tools/bench_serving.py.
3. No HNSW: FAISS's HNSW cannot remove vectors, and shards remove models live.

A budget that not even the smallest codes fit is an error, not a silent degradation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

EXACT_THRESHOLD = 20_000
MIN_POINTS_PER_CENTROID = 39
TRAINING_POINTS_PER_CENTROID = 64
TRAINING_POINTS_FLAT_CODES = 65536  # enough for a scalar quantiser's per-dimension ranges
IVF_OVERHEAD_BYTES = 8  # the id stored with every vector in an inverted list


@dataclass(frozen=True)
class IndexPlan:
    factory: str  # a faiss.index_factory description
    exact: bool
    nlist: int  # 0 for Flat
    nprobe: int  # 0 for Flat
    bytes_per_vector: int
    reason: str

    def training_size(self, n: int) -> int:
        return 0 if self.exact else min(n, TRAINING_POINTS_PER_CENTROID * self.nlist)


def _nlist_for(n: int) -> int:
    target = 4.0 * math.sqrt(n)
    nlist = 2 ** round(math.log2(target))
    return int(max(16, min(nlist, 65536, max(16, n // MIN_POINTS_PER_CENTROID))))


def choose_index(
    n: int,
    dim: int,
    memory_budget_bytes: int,
    *,
    exact_threshold: int = EXACT_THRESHOLD,
    nprobe: int | None = None,
    compact: bool = False,
) -> IndexPlan:
    """The index for n vectors of dimension dim within memory_budget_bytes (see module doc).

    ``compact``: above the exact threshold, start from 8-bit codes rather than raw floats (for
    the lifted indexes, several vectors per model; serving/shard/state.py::lifted_plan).
    """
    if n < 0 or dim <= 0 or memory_budget_bytes <= 0:
        raise ValueError(f"invalid index sizing: n={n}, dim={dim}, budget={memory_budget_bytes}")
    flat_bytes = 4 * dim
    if n <= exact_threshold and n * flat_bytes <= memory_budget_bytes:
        return IndexPlan("Flat", True, 0, 0, flat_bytes, f"{n} <= {exact_threshold} vectors: exact")
    nlist = _nlist_for(n)
    probe = nprobe if nprobe is not None else max(8, nlist // 32)
    probe = min(probe, nlist)
    options = [] if compact else [(f"IVF{nlist},Flat", flat_bytes)]
    options += [(f"IVF{nlist},SQ8", dim)]
    options += [(f"IVF{nlist},PQ{m}", m) for m in (64, 32, 16, 8) if dim % m == 0 and m < dim]
    for factory, code_bytes in options:
        per_vector = code_bytes + IVF_OVERHEAD_BYTES
        if n * per_vector <= memory_budget_bytes:
            return IndexPlan(
                factory, False, nlist, probe, per_vector,
                f"{n} vectors > {exact_threshold}: inverted file; {per_vector} B/vector fits "
                f"the budget of {memory_budget_bytes} B",
            )
    raise ValueError(
        f"{n} vectors of dimension {dim} do not fit {memory_budget_bytes} bytes even as "
        f"{options[-1][1]}-byte codes: raise the budget or add shards"
    )


def build_index(plan: IndexPlan, vectors: np.ndarray, seed: int = 0) -> faiss.Index:
    """A trained index holding ``vectors`` (rows labelled 0..n-1), inner-product metric."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:  # an inverted file, or scalar-quantised codes (their ranges)
        rng = np.random.default_rng(seed)
        size = plan.training_size(vectors.shape[0]) or min(vectors.shape[0], TRAINING_POINTS_FLAT_CODES)
        sample = vectors[np.sort(rng.choice(vectors.shape[0], size, replace=False))]
        index.train(sample)
    if not plan.exact:
        faiss.extract_index_ivf(index).nprobe = plan.nprobe
    index.add(vectors)
    return index
