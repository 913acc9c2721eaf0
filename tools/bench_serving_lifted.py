"""A second-order method through the serving path (MGF by default, or GAUSSIAN): its lifted
first stage against the first-moment one, top-10 agreement with the exhaustive exact ranking by
candidates per shard.

    .venv/bin/python tools/scale_stats.py --out /tmp/scale-100k --models 100000
    .venv/bin/python tools/bench_serving_lifted.py --store /tmp/scale-100k --index-dir /tmp/scale-100k-index \
        --queries 50 --out docs/benchmarks/serving-100k-mgf.json

Real gRPC: S shards (ShardState + ShardServicer, in this process) and a gateway on loopback,
queries as in tools/bench_serving.py (one synthetic image feature of a random model each). For
each first stage (``first_moment``: the shards built with no lifted index, MGF recalls from the
cosine of the means as before; ``lifted``: shards with the method's lifted index) and each nprobe of the lifted
inverted file, the fraction of the exhaustive top-10 positions the two-stage answer holds,
against the candidates per shard; and the shard-side recall time (FAISS + rerank, one shard,
in-process, p50 over the queries). The indexes are saved under --index-dir and reused.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from modelverse.bench.agreement import two_stage_curve  # noqa: E402
from modelverse.bench.queries import make_queries  # noqa: E402
from modelverse.core.lift import DEFAULT_ALPHA, DEFAULT_COLUMNS  # noqa: E402
from modelverse.core.reference import ExactSearch  # noqa: E402
from modelverse.core.types import Method, QueryPart  # noqa: E402
from modelverse.serving.inprocess import serve_states  # noqa: E402
from modelverse.serving.shard.state import ShardConfig, ShardState  # noqa: E402
from modelverse.store.directory import DirectoryStore  # noqa: E402
from modelverse.v1 import search_pb2  # noqa: E402

faiss.omp_set_num_threads(1)


def set_lifted_nprobe(states: list[ShardState], method: Method, nprobe: int) -> None:
    for state in states:
        index = state.lifted[method]
        if not index.plan.exhaustive:
            index.plan = replace(index.plan, nprobe=min(nprobe, index.plan.nlist))


def recall_ms(state: ShardState, queries: np.ndarray, candidates: int, method: Method) -> float:
    seconds = []
    for q in queries:
        parts = [QueryPart(q.astype(np.float64))]
        started = time.perf_counter()
        state.recall(method, candidates, parts=parts)
        seconds.append(time.perf_counter() - started)
    return round(1000 * float(np.median(seconds)), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--index-dir", required=True, type=Path, help="indexes saved here and reused")
    parser.add_argument("--method", choices=("mgf", "gaussian"), default="mgf")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--grid", default="10,25,50,100,200,400,800")
    parser.add_argument("--nprobe", default="", help="lifted nprobe values to sweep (comma-separated; default: the shard's)")
    parser.add_argument("--lift-columns", type=int, default=DEFAULT_COLUMNS)
    parser.add_argument("--lift-alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--skip-first-moment", action="store_true")
    parser.add_argument("--timing-candidates", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    grid = [int(k) for k in args.grid.split(",")]
    method = Method(args.method)
    store = DirectoryStore.open(args.store)
    collection = store.collection()
    queries, _ = make_queries(collection, args.queries, seed=1)
    started = time.perf_counter()
    truths = [[h.id for h in ExactSearch(collection, store.config.scoring).search([QueryPart(q.astype(np.float64))], method, 10)]
              for q in queries]
    exhaustive = (time.perf_counter() - started) / len(queries)
    print(f"exhaustive {method.value}: {exhaustive:.2f} s per query", file=sys.stderr)
    result: dict = {"store": str(args.store), "method": method.value, "models": int(collection.live_mask().sum()), "shards": args.shards,
                    "queries": args.queries, "machine": platform.node(), "cpus": os.cpu_count(),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "exhaustive_seconds_per_query": round(exhaustive, 2), "curves": {}}
    configurations = [("first_moment", ())] if not args.skip_first_moment else []
    configurations.append((f"lifted t={args.lift_columns} alpha={args.lift_alpha}" if method is Method.MGF else "lifted",
                           (method.value,)))
    for name, lifted in configurations:
        started = time.perf_counter()
        states = [ShardState(ShardConfig(store=args.store, shard=s, shards=args.shards,
                                         index_dir=args.index_dir / f"shard-{s}-of-{args.shards}", lifted=lifted,
                                         lift_columns=args.lift_columns, lift_alpha=args.lift_alpha))
                  for s in range(args.shards)]
        opened = time.perf_counter() - started
        cluster = serve_states(states)
        stub = cluster.gateway
        settings = [None] if not lifted or not args.nprobe else [int(p) for p in args.nprobe.split(",")]
        for nprobe in settings:
            if nprobe is not None:
                set_lifted_nprobe(states, method, nprobe)
            index = states[0].lifted[method] if lifted else states[0].index
            label = name if nprobe is None else f"{name} nprobe {nprobe}"
            entry = {"index": index.plan.factory, "nprobe": index.plan.nprobe, "copies": index.copies,
                     "lift": None if index.lift is None else index.lift.__dict__,
                     "bytes_per_model": index.copies * index.plan.bytes_per_vector,
                     "open_or_build_seconds": round(opened, 1),
                     "positions_agreeing": two_stage_curve(
                         stub, queries, truths, search_pb2.MGF if method is Method.MGF else search_pb2.GAUSSIAN, grid),
                     f"shard_recall_ms_p50_at_{args.timing_candidates}": recall_ms(
                         states[0], queries, args.timing_candidates, method)}
            result["curves"][label] = entry
            print(label, json.dumps(entry), file=sys.stderr, flush=True)
        cluster.close()
    print(f"{'first stage':34s} " + " ".join(f"{k:>6d}" for k in grid) + "   recall ms")
    for label, entry in result["curves"].items():
        row = " ".join(f"{entry['positions_agreeing'][k]:6.3f}" for k in grid)
        print(f"{label:34s} {row}   {entry[f'shard_recall_ms_p50_at_{args.timing_candidates}']}")
    if args.out:
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        if previous.get("store") == result["store"] and previous.get("method", "mgf") == method.value:  # runs with other settings add their curves
            result["curves"] = {**previous.get("curves", {}), **result["curves"]}
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
