"""Where a shard's time goes: FAISS first stage, reading the candidates' rows, scoring them.

    .venv/bin/python tools/bench_serving_stages.py --store /tmp/mv-scale/store-100k \
        --index-dir /tmp/mv-scale/run-100k/index/shard-0-of-2-r0 --shard 0 --shards 2

Runs one shard's ShardState in this process (no gRPC) on synthetic image queries and prints
p50/p99 of each stage.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from modelverse.bench.queries import make_queries  # noqa: E402
from modelverse.core.reference import ExactSearch  # noqa: E402
from modelverse.core.types import Method, QueryPart, SecondOrderForm  # noqa: E402
from modelverse.serving.first_stage import first_moment_query  # noqa: E402
from modelverse.serving.rerank import candidates_collection  # noqa: E402
from modelverse.serving.shard.state import ShardConfig, ShardState  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--index-dir", required=True, type=Path)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()
    started = time.perf_counter()
    state = ShardState(ShardConfig(store=args.store, shard=args.shard, shards=args.shards, index_dir=args.index_dir))
    opened = time.perf_counter() - started
    snap = state.snapshot
    dim = state.store.config.dim
    queries, _ = make_queries(snap.collection, args.queries, seed=5)
    stages: dict[str, list[float]] = {"faiss": [], "read_rows": [], "score_gaussian": [], "recall_total": []}
    for q in queries.astype(np.float64):
        parts = [QueryPart(q)]
        t0 = time.perf_counter()
        found = state.index.search(first_moment_query(dim, parts, None).astype(np.float32), args.candidates)
        t1 = time.perf_counter()
        rows = np.array([snap.row_of[m] for m in found.ids])
        candidates = candidates_collection(snap.collection, rows, Method.GAUSSIAN)
        t2 = time.perf_counter()
        ExactSearch(candidates, state.store.config.scoring).score_parts(parts, Method.GAUSSIAN, SecondOrderForm.COMPRESSED)
        t3 = time.perf_counter()
        state.recall(Method.GAUSSIAN, args.candidates, parts=parts)
        t4 = time.perf_counter()
        for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[name].append(seconds)
    summary = {name: {"p50_ms": round(float(np.percentile(np.array(v[5:]) * 1000, 50)), 2),
                      "p99_ms": round(float(np.percentile(np.array(v[5:]) * 1000, 99)), 2)} for name, v in stages.items()}
    print(json.dumps({"models": state.models(), "index": state.index.plan.factory, "open_seconds": round(opened, 2),
                      "candidates": args.candidates, "stages": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
