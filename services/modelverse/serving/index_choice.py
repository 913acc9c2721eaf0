"""Which FAISS index a recall shard builds, chosen from its size and a memory budget.

The rule, in the spirit of autofaiss and FAISS's own guidelines
(https://github.com/facebookresearch/faiss/wiki/Guidelines-to-choose-an-index):

1. Up to ``exhaustive_threshold`` vectors (default 20,000), when the raw vectors fit the budget:
   ``Flat``, the exact inner product of every vector. At d = 512 a scan of 20,000 vectors is a
   few ms on one core, and exact recall makes the two-stage search equal to the exhaustive one whenever the
   candidates cover the shard.
2. Above it, an inverted file: nlist = the power of two nearest 8 sqrt(n) (FAISS: 4 to 16
   sqrt(n) lists; on a 500k shard of the million-model collection 4,096 lists at nprobe 128
   recall 0.989 of the exact top 10 in 1.9 ms, where 2,048 at 64 recall 0.977 in 2.5 ms), at most n / 39 (FAISS warns below 39 training points per centroid) and at
   least 16. The codes are chosen by the budget: raw float32 vectors (``IVF,Flat``, 4 d bytes
   per vector) if they fit, else 8-bit scalar quantisation (``IVF,SQ8``, d bytes), else product
   quantisation (``IVF,PQm``, m bytes, the largest m in 64, 32, 16, 8 that fits and divides d).
   With ``compact`` the 8-bit codes come first even when raw vectors fit: a shard re-scores its
   candidates from the pack's float32 means, so the codes only decide which candidates are
   recalled, and they save 1.5 KiB per model at d = 512 (the 24 KiB per model budget).
   nprobe defaults to nlist / 32 (about 3 % of the lists scanned), at least 64: on the synthetic
   collections 32 of 1,024 lists recall 0.95 of a 50k shard's exact top 10 and 64 recall 0.99;
   64 of 2,048 lists (a 500k shard) 0.977 in 2 ms (docs/SERVING.md).
3. No HNSW: FAISS's HNSW cannot remove vectors, and shards remove models live.

The lifted indexes (``core.lift``, several vectors per model for MGF) follow
``choose_lifted_index``: exhaustive 8-bit codes where the first moments would get an IVF.

A plan is ``exhaustive`` when a search scores every vector (``Flat``, ``SQ8``: no partition, no
nprobe), whether or not the scores are exact (8-bit codes round them).

A budget that not even the smallest codes fit is an error, not a silent degradation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

EXHAUSTIVE_THRESHOLD = 20_000
MIN_POINTS_PER_CENTROID = 39
TRAINING_POINTS_PER_CENTROID = 64
TRAINING_POINTS_FLAT_CODES = 65536  # enough for a scalar quantiser's per-dimension ranges
IVF_OVERHEAD_BYTES = 8
MIN_NPROBE = 64
LIFTED_SCAN_BYTES: int | None = None  # cap on a lifted index's exhaustive scan (None: always scan)


@dataclass(frozen=True)
class IndexPlan:
    factory: str  # a faiss.index_factory description
    exhaustive: bool  # every vector scored (no inverted file, no nprobe)
    nlist: int  # 0 for Flat
    nprobe: int  # 0 for Flat
    bytes_per_vector: int
    reason: str

    def training_size(self, n: int) -> int:
        return 0 if self.exhaustive else min(n, TRAINING_POINTS_PER_CENTROID * self.nlist)

    @classmethod
    def from_record(cls, record: dict) -> IndexPlan:
        """A plan saved with an index; those saved before the rename name ``exhaustive`` ``exact``."""
        record = dict(record)
        if "exact" in record and "exhaustive" not in record:
            record["exhaustive"] = record.pop("exact")
        return cls(**record)


def _nlist_for(n: int) -> int:
    target = 8.0 * math.sqrt(n)
    nlist = 2 ** round(math.log2(target))
    return int(max(16, min(nlist, 65536, max(16, n // MIN_POINTS_PER_CENTROID))))


def choose_index(
    n: int,
    dim: int,
    memory_budget_bytes: int,
    *,
    exhaustive_threshold: int = EXHAUSTIVE_THRESHOLD,
    nprobe: int | None = None,
    compact: bool = False,
) -> IndexPlan:
    """The index for n vectors of dimension dim within memory_budget_bytes (see module doc)."""
    if n < 0 or dim <= 0 or memory_budget_bytes <= 0:
        raise ValueError(f"invalid index sizing: n={n}, dim={dim}, budget={memory_budget_bytes}")
    flat_bytes = 4 * dim
    if n <= exhaustive_threshold and n * flat_bytes <= memory_budget_bytes:
        return IndexPlan("Flat", True, 0, 0, flat_bytes, f"{n} <= {exhaustive_threshold} vectors: exact")
    nlist = _nlist_for(n)
    probe = nprobe if nprobe is not None else max(MIN_NPROBE, nlist // 32)
    probe = min(probe, nlist)
    options = [(f"IVF{nlist},Flat", flat_bytes), (f"IVF{nlist},SQ8", dim)]
    if compact:
        options = options[1:]
    options += [(f"IVF{nlist},PQ{m}", m) for m in (64, 32, 16, 8) if dim % m == 0 and m < dim]
    for factory, code_bytes in options:
        per_vector = code_bytes + IVF_OVERHEAD_BYTES
        if n * per_vector <= memory_budget_bytes:
            return IndexPlan(
                factory, False, nlist, probe, per_vector,
                f"{n} vectors > {exhaustive_threshold}: inverted file; {per_vector} B/vector fits "
                f"the budget of {memory_budget_bytes} B",
            )
    raise ValueError(
        f"{n} vectors of dimension {dim} do not fit {memory_budget_bytes} bytes even as "
        f"{options[-1][1]}-byte codes: raise the budget or add shards"
    )


def choose_lifted_index(
    n: int,
    dim: int,
    memory_budget_bytes: int,
    *,
    exhaustive_threshold: int = EXHAUSTIVE_THRESHOLD,
    scan_bytes: int | None = LIFTED_SCAN_BYTES,
    nprobe: int | None = None,
) -> IndexPlan:
    """The index for n lifted vectors (``core.lift``: a few per model, dim a multiple of 16).

    1. n <= ``exhaustive_threshold`` and the raw vectors fit: ``Flat``, exact;
    2. otherwise ``SQ8``, an exhaustive scan of 8-bit codes (no partition, scores rounded to the
       codes) while they fit the budget. A lifted vector's covariance part points in
       model-specific directions, which an inverted file's clusters do not capture: on a
       synthetic 20k collection an IVF probing 1/32 of its lists lost a quarter of the exact top
       10, and on the million-model collection ``IVF4096,SQ8`` at nprobe 512 of a 500k-model
       shard kept 0.12 of the MGF top 10 (docs/SERVING.md). The scan costs about 40 ns a code
       of 528 dimensions on one core: 8 ms for 200,000 codes (a 50k shard), about 80 ms for
       2,000,000 (a 500k shard); more shards or replicas, or faiss-gpu, buy it back.
       ``scan_bytes`` (default: no limit) caps the scan: above it ``IVF{nlist},SQ8`` with
       nprobe = nlist / 8, for an operator who takes the recall loss for speed.
    """
    if n < 0 or dim <= 0 or memory_budget_bytes <= 0:
        raise ValueError(f"invalid index sizing: n={n}, dim={dim}, budget={memory_budget_bytes}")
    if n <= exhaustive_threshold and n * 4 * dim <= memory_budget_bytes:
        return IndexPlan("Flat", True, 0, 0, 4 * dim, f"{n} <= {exhaustive_threshold} lifted vectors: exact")
    if n * dim <= memory_budget_bytes and (scan_bytes is None or n * dim <= scan_bytes):
        return IndexPlan("SQ8", True, 0, 0, dim, f"{n} lifted vectors: an exhaustive scan of {n * dim} B of 8-bit codes")
    nlist = _nlist_for(n)
    probe = min(nlist, nprobe if nprobe is not None else max(8, nlist // 8))
    per_vector = dim + IVF_OVERHEAD_BYTES
    if n * per_vector > memory_budget_bytes:
        raise ValueError(f"{n} lifted vectors of dimension {dim} do not fit {memory_budget_bytes} bytes as 8-bit codes")
    return IndexPlan(f"IVF{nlist},SQ8", False, nlist, probe, per_vector,
                     f"{n * dim} B of codes > the scan cap {scan_bytes} B: inverted file, 8-bit codes")


def build_index(plan: IndexPlan, vectors: np.ndarray, seed: int = 0) -> faiss.Index:
    """A trained index holding ``vectors`` (rows labelled 0..n-1), inner-product metric."""
    import faiss  # here: the gateway reads the first stages' defaults (serving.first_stage) and builds no index

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:  # an inverted file, or scalar-quantised codes (their ranges)
        rng = np.random.default_rng(seed)
        size = plan.training_size(vectors.shape[0]) or min(vectors.shape[0], TRAINING_POINTS_FLAT_CODES)
        sample = vectors[np.sort(rng.choice(vectors.shape[0], size, replace=False))]
        index.train(sample)
    if not plan.exhaustive:
        faiss.extract_index_ivf(index).nprobe = plan.nprobe
    index.add(vectors)
    return index
