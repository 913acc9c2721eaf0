"""The dense half of a shard's metadata search: each model's metadata embedded by all-MiniLM-L6-v2
(core.sentence_encoder), matched with the query text's embedding (sent by the gateway) by cosine.

A paraphrase shares no word with the metadata, so BM25 scores it 0; its embedding still lies near
the metadata's ("a kitten" and "cat faces": cosine 0.31 against 0.12 for "the numeral seven").

Rows follow the text index's documents. A document with no name, description, tags or creator
(bulk-written benchmark stores hold ids only) is not embedded: its row is zero and it scores 0,
as a document sharing no word scores 0 in BM25. The best matches come from a FAISS index over the
embedded rows: every row scored (a NumPy product) up to EXHAUSTIVE_THRESHOLD rows, above it an
inverted file of 8-bit codes (``semantic_plan``); the candidates' scores are always the exact
cosines of the float32 rows. A scan reads 1.5 KiB a row, so it is memory-bound: the inverted file
takes over early (tools/bench_semantic_index.py measures both, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

from modelverse.errors import InvalidInputError
from modelverse.core.sentence_encoder import DIM
from modelverse.serving.index_choice import IVF_OVERHEAD_BYTES, MIN_POINTS_PER_CENTROID, IndexPlan, build_index

EXHAUSTIVE_THRESHOLD = 4096  # rows scored exhaustively per query up to this (tools/bench_semantic_index.py)
NPROBE = 16  # inverted lists scanned (tools/bench_semantic_index.py: recall against the exact top 10)


def semantic_plan(rows: int, nprobe: int = NPROBE) -> IndexPlan:
    """The inverted file over ``rows`` embeddings: about sqrt(rows) lists (a power of two; at
    least 39 training points each), 8-bit codes (the float32 rows are kept for exact cosines).
    Fewer lists than the first-moment index's 8 sqrt(n): a shard trains k-means on its rows at
    every start (a million rows: 1,024 lists, trained on 65,536 rows)."""
    nlist = 2 ** round(math.log2(max(math.sqrt(rows), 16)))
    nlist = int(max(16, min(nlist, rows // MIN_POINTS_PER_CENTROID)))
    return IndexPlan(f"IVF{nlist},SQ8", False, nlist, min(nprobe, nlist), DIM + IVF_OVERHEAD_BYTES,
                     f"{rows} embeddings > {EXHAUSTIVE_THRESHOLD}: inverted file, 8-bit codes")


def query_embedding(data: bytes, dim: int) -> np.ndarray | None:
    """RecallRequest.query_embedding_f32 as a unit vector; None when empty (no dense match)."""
    if not data:
        return None
    if len(data) != 4 * dim:
        raise InvalidInputError(f"query_embedding_f32 holds {len(data)} bytes; a {dim}-d float32 embedding is {4 * dim}")
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    norm = float(np.linalg.norm(vector)) if np.isfinite(vector).all() else float("nan")
    if not np.isfinite(norm) or norm == 0.0:
        raise InvalidInputError("query_embedding_f32 must be finite and not zero")
    return vector / np.float32(norm)


@dataclass(frozen=True)
class SemanticIndex:
    vectors: np.ndarray  # (documents, dim) float32, unit rows; zero for a document not embedded
    embedded: np.ndarray  # (m,) int64: the documents embedded, ascending (FAISS label i -> embedded[i])
    index: faiss.Index | None  # over the embedded rows; None when they are scored exhaustively
    plan: IndexPlan | None

    @classmethod
    def build(cls, vectors: np.ndarray, embedded: np.ndarray, exhaustive_threshold: int = EXHAUSTIVE_THRESHOLD,
              nprobe: int = NPROBE, previous: SemanticIndex | None = None) -> SemanticIndex:
        """``previous``: the index this one replaces; when its plan is the same, its trained lists
        and codes are reused (k-means is most of the build: a sync that adds a model costs only
        the filling)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        embedded = np.asarray(embedded, dtype=np.int64)
        if embedded.size <= exhaustive_threshold:
            return cls(vectors, embedded, None, None)
        plan = semantic_plan(int(embedded.size), nprobe)
        if previous is not None and previous.index is not None and previous.plan == plan:
            index = faiss.clone_index(previous.index)
            index.reset()  # the trained quantiser and code ranges stay
            index.add(vectors[embedded])
        else:
            index = build_index(plan, vectors[embedded])
        return cls(vectors, embedded, index, plan)

    @classmethod
    def empty(cls, documents: int, dim: int) -> SemanticIndex:
        return cls(np.zeros((documents, dim), dtype=np.float32), np.zeros(0, dtype=np.int64), None, None)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def scores(self, query: np.ndarray, documents: np.ndarray) -> np.ndarray:
        """Cosine of the query with each of these documents (-1 or not embedded: 0), float32."""
        documents = np.asarray(documents, dtype=np.int64)
        found = documents >= 0
        out = np.zeros(documents.shape, dtype=np.float32)
        out[found] = self.vectors[documents[found]] @ query
        return out

    def top(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k embedded documents of highest cosine (among ``allowed`` when given): (documents,
        cosines), best first, ties by document."""
        if k <= 0 or self.embedded.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if allowed is None and self.index is not None:
            q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
            _, labels = self.index.search(q, min(k, self.embedded.size))
            chosen = self.embedded[labels[0][labels[0] >= 0]]
        else:
            chosen = self.embedded if allowed is None else np.intersect1d(self.embedded, allowed)
        # exact cosines, whatever found them (every row embedded: no copy of the matrix)
        values = self.vectors @ query if chosen.size == len(self.vectors) else self.vectors[chosen] @ query
        if chosen.size > k:
            keep = np.argpartition(-values, k - 1)[:k]
            chosen, values = chosen[keep], values[keep]
        order = np.lexsort((chosen, -values))
        return chosen[order], values[order].astype(np.float32)
