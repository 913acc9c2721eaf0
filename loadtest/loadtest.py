"""A bounded load generator for the gRPC search API (asyncio, grpc.aio).

    .venv/bin/python loadtest/loadtest.py --target 127.0.0.1:50051 --queries Q.npz \
        --concurrency 8 --duration 20 --max-requests 5000 --out result.json \
        --api-key-file .modelverse/cluster/read.key

The key (read role) also comes from $MODELVERSE_API_KEY; add --tls-ca RUN_DIR/ca.pem for a
cluster started with --tls.

Queries come from an .npz with ``vectors`` (n x d float32) and, optionally, ``model_ids``; each
request draws its kind from ``--mix`` (e.g. ``vector=0.9,model_id=0.1``) and a query of that kind
at random. The run stops at ``--duration`` seconds or ``--max-requests`` requests, whichever
comes first. It prints, per kind and overall: requests, QPS, p50/p95/p99 latency and errors
by status code, and writes the same as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import grpc
import numpy as np

from modelverse.client import add_client_arguments, client_tls_from_args, connect_aio, resolve_api_key
from modelverse.v1 import search_pb2, search_pb2_grpc


@dataclass
class KindStats:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: Counter = field(default_factory=Counter)

    def summary(self, seconds: float) -> dict:
        lat = np.array(self.latencies) * 1000
        pct = (lambda p: round(float(np.percentile(lat, p)), 3)) if lat.size else (lambda p: None)
        total = lat.size + sum(self.errors.values())
        return {"requests": total, "ok": int(lat.size), "qps": round(total / seconds, 1) if seconds else 0.0,
                "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99), "mean_ms": round(float(lat.mean()), 3) if lat.size else None,
                "errors": dict(self.errors)}


def build_requests(queries: dict, kind: str, top_k: int, method: int, candidates: int) -> list[search_pb2.SearchRequest]:
    if kind == "vector":
        return [search_pb2.SearchRequest(parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=v.tolist()))],
                                         top_k=top_k, method=method, candidates_per_shard=candidates)
                for v in queries["vectors"]]
    if kind == "model_id":
        return [search_pb2.SearchRequest(parts=[search_pb2.QueryPart(model_id=str(m))], top_k=top_k,
                                         candidates_per_shard=candidates) for m in queries["model_ids"]]
    raise SystemExit(f"unknown query kind {kind!r} (vector, model_id)")


async def run(args: argparse.Namespace) -> dict:
    data = np.load(args.queries)
    queries = {k: data[k] for k in data.files}
    mix = {k: float(w) for k, w in (item.split("=") for item in args.mix.split(","))}
    method = search_pb2.Method.Value(args.method.upper())
    pools = {k: build_requests(queries, k, args.top_k, method, args.candidates) for k in mix}
    kinds, weights = list(mix), list(mix.values())
    stats: dict[str, KindStats] = defaultdict(KindStats)
    rng = random.Random(args.seed)
    issued = 0
    deadline = time.monotonic() + args.duration
    key = resolve_api_key(args.api_key, args.api_key_file)
    async with connect_aio(args.target, key, client_tls_from_args(args)) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)

        async def client() -> None:
            nonlocal issued
            while issued < args.max_requests and time.monotonic() < deadline:
                issued += 1
                kind = rng.choices(kinds, weights)[0]
                request = rng.choice(pools[kind])
                started = time.perf_counter()
                try:
                    await stub.Search(request, timeout=args.timeout)
                    stats[kind].latencies.append(time.perf_counter() - started)
                except grpc.aio.AioRpcError as exc:
                    stats[kind].errors[exc.code().name] += 1

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        seconds = time.monotonic() - started
    overall = KindStats()
    for s in stats.values():
        overall.latencies += s.latencies
        overall.errors.update(s.errors)
    return {"target": args.target, "concurrency": args.concurrency, "seconds": round(seconds, 2),
            "method": args.method, "top_k": args.top_k, "candidates_per_shard": args.candidates,
            "overall": overall.summary(seconds), "kinds": {k: s.summary(seconds) for k, s in stats.items()}}


def print_table(result: dict) -> None:
    print(f"{'kind':10} {'requests':>9} {'qps':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  errors")
    for kind, s in [*result["kinds"].items(), ("overall", result["overall"])]:
        print(f"{kind:10} {s['requests']:9d} {s['qps']:8.1f} {s['p50_ms'] or 0:8.2f} {s['p95_ms'] or 0:8.2f} "
              f"{s['p99_ms'] or 0:8.2f}  {s['errors'] or '-'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="gateway address host:port")
    parser.add_argument("--queries", required=True, help=".npz with vectors (and model_ids)")
    parser.add_argument("--mix", default="vector=1", help="kind=weight,... over vector, model_id")
    parser.add_argument("--method", default="method_unspecified", help="first_moment, mgf, gaussian (vector kind)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=0, help="candidates per shard (0: the gateway's default)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="stop after this many seconds")
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request deadline, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    add_client_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    print_table(result)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0 if not result["overall"]["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
