"""Overload and hung-node benchmark of the serving cluster (processes on loopback).

    .venv/bin/python tools/bench_overload.py --out docs/benchmarks/overload.json

Part 1, overload: open-loop searches at a fixed offered rate (each with its own deadline) at a
gateway with a small admission pool (--workers, --queue); per rate: offered, answered, shed
(RESOURCE_EXHAUSTED), DEADLINE_EXCEEDED, other errors, latency quantiles of the answered and of
the shed. Part 2, hung nodes: closed-loop searches on 2 shards x 2 replicas while healthy, with
one replica of shard 0 SIGSTOPped, and with both replicas of shard 0 SIGSTOPped; per phase:
answered, partial, errors, latency quantiles, and the gateway's hedged and failover attempts.

Vector queries (GAUSSIAN, every candidate reranked) on a synthetic store; no encoder.
Prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
import platform
import socket
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

from modelverse.client import connect_aio
from modelverse.core.moments import l2_normalize_rows
from modelverse.core.stats import stats_from_features
from modelverse.serving.loopback_cluster import Cluster, ClusterSpec
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata
from modelverse.synthetic import SyntheticZoo
from modelverse.v1 import search_pb2, search_pb2_grpc

DIM, RANK = 64, 8


def build_store(root: Path, count: int) -> list[np.ndarray]:
    """A store of ``count`` synthetic models; returns one query vector per model (its mean)."""
    zoo = SyntheticZoo(dim=DIM, latent_dim=24, seed=0)
    store = DirectoryStore.create(root, StoreConfig(dim=DIM, rank=RANK))
    items, queries = [], []
    for i, model in enumerate(zoo.models(count)):
        features = l2_normalize_rows(model.sample_features(200, seed=i))
        items.append((ModelMetadata(model.id), stats_from_features(features, rank=RANK, keep_covariance=False)))
        queries.append(features[:8].mean(axis=0).astype(np.float32))
    store.put_many(items)
    return queries


def request_for(vector: np.ndarray) -> search_pb2.SearchRequest:
    return search_pb2.SearchRequest(parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=vector.tolist()))],
                                    method=search_pb2.GAUSSIAN, top_k=10, candidates_per_shard=1000)


def quantiles(values: list[float]) -> dict:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1)}


class Outcomes:
    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = {}
        self.partial = 0

    def add(self, code: str, seconds: float, partial: bool = False) -> None:
        self.codes[code] += 1
        self.latency.setdefault(code, []).append(seconds)
        self.partial += partial

    def summary(self) -> dict:
        total = sum(self.codes.values())
        return {
            "requests": total, "answered": self.codes["OK"], "partial": self.partial,
            "shed": self.codes["RESOURCE_EXHAUSTED"], "deadline_exceeded": self.codes["DEADLINE_EXCEEDED"],
            "other_errors": {c: n for c, n in self.codes.items() if c not in ("OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")},
            "answered_latency": quantiles(self.latency.get("OK", [])),
            "shed_latency": quantiles(self.latency.get("RESOURCE_EXHAUSTED", [])),
        }


async def one(stub: search_pb2_grpc.SearchServiceStub, request: search_pb2.SearchRequest, deadline: float,
              outcomes: Outcomes) -> None:
    started = time.perf_counter()
    try:
        answer = await stub.Search(request, timeout=deadline)
    except grpc.aio.AioRpcError as exc:
        outcomes.add(exc.code().name, time.perf_counter() - started)
    else:
        outcomes.add("OK", time.perf_counter() - started, answer.partial)


async def open_loop(address: str, key: str, requests: list, rate: float, seconds: float, deadline: float) -> Outcomes:
    outcomes = Outcomes()
    async with connect_aio(address, key) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(stub, requests[i % len(requests)], deadline, outcomes)))
        await asyncio.gather(*tasks)
    return outcomes


async def closed_loop(address: str, key: str, requests: list, clients: int, seconds: float, deadline: float) -> Outcomes:
    outcomes = Outcomes()
    async with connect_aio(address, key) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        end = time.perf_counter() + seconds

        async def client(c: int) -> None:
            i = c
            while time.perf_counter() < end:
                await one(stub, requests[i % len(requests)], deadline, outcomes)
                i += clients

        await asyncio.gather(*(client(c) for c in range(clients)))
    return outcomes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def attempts(metrics_port: int) -> dict[str, float]:
    """The gateway's shard attempts by why they were started (first, hedge, failover)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    found: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("modelverse_shard_attempts_total{"):
            labels, number = line.rsplit(" ", 1)
            why = labels.split('why="', 1)[1].split('"', 1)[0]
            found[why] += float(number)
    return dict(found)


def overload_part(args: argparse.Namespace, root: Path, requests: list) -> list[dict]:
    spec = ClusterSpec(store=root / "store", run_dir=root / "run-overload", shards=2, replicas=1,
                       gateway={"workers": args.workers, "queue": args.queue})
    rows = []
    with Cluster(spec) as running:
        asyncio.run(closed_loop(running.gateway.address, running.read_key, requests, 2, 2.0, args.deadline))  # warm
        for rate in args.rates:
            outcomes = asyncio.run(open_loop(running.gateway.address, running.read_key, requests, rate,
                                             args.seconds, args.deadline))
            rows.append({"offered_qps": rate, "seconds": args.seconds, **outcomes.summary(),
                         "answered_qps": round(outcomes.codes["OK"] / args.seconds, 1)})
            time.sleep(1.0)  # let the queue drain between rates
    return rows


def hung_part(args: argparse.Namespace, root: Path, requests: list) -> list[dict]:
    port = free_port()
    spec = ClusterSpec(store=root / "store", run_dir=root / "run-hung", shards=2, replicas=2, gateway={"metrics_port": port})
    rows = []
    with Cluster(spec) as running:
        asyncio.run(closed_loop(running.gateway.address, running.read_key, requests, 2, 2.0, args.deadline))  # warm
        phases = [("healthy", []), ("one replica of shard 0 stopped", [(0, 0)]),
                  ("both replicas of shard 0 stopped", [(0, 0), (0, 1)])]
        for name, stopped in phases:
            for shard, replica in stopped:
                running.pause_shard(shard, replica)
            before = attempts(port)
            try:
                outcomes = asyncio.run(closed_loop(running.gateway.address, running.read_key, requests,
                                                   args.clients, args.seconds, args.hung_deadline))
            finally:
                for shard, replica in stopped:
                    running.resume_shard(shard, replica)
            after = attempts(port)
            rows.append({"phase": name, "clients": args.clients, "deadline_s": args.hung_deadline,
                         "seconds": args.seconds, **outcomes.summary(),
                         "attempts": {k: after.get(k, 0) - before.get(k, 0) for k in after}})
            time.sleep(2.5)  # the resumed replicas' suspicion (2 s) ends
    return rows


def print_tables(result: dict) -> None:
    print(f"\nOverload: gateway --workers {result['workers']} --queue {result['queue']}, deadline {result['deadline_s']} s")
    print(f"{'offered':>8} {'answered':>9} {'ans/s':>7} {'shed':>6} {'DEADLINE':>9} {'other':>6} "
          f"{'ok p50':>8} {'ok p99':>8} {'shed p99':>9}")
    for r in result["overload"]:
        print(f"{r['offered_qps']:>8} {r['answered']:>9} {r['answered_qps']:>7} {r['shed']:>6} {r['deadline_exceeded']:>9} "
              f"{sum(r['other_errors'].values()):>6} {r['answered_latency']['p50_ms']!s:>8} "
              f"{r['answered_latency']['p99_ms']!s:>8} {r['shed_latency']['p99_ms']!s:>9}")
    print(f"\nHung nodes: 2 shards x 2 replicas, {result['hung'][0]['clients']} clients, deadline {result['hung_deadline_s']} s")
    print(f"{'phase':<34} {'requests':>8} {'answered':>9} {'partial':>8} {'errors':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'hedges':>7} {'failovers':>9}")
    for r in result["hung"]:
        errors = r["shed"] + r["deadline_exceeded"] + sum(r["other_errors"].values())
        print(f"{r['phase']:<34} {r['requests']:>8} {r['answered']:>9} {r['partial']:>8} {errors:>7} "
              f"{r['answered_latency']['p50_ms']!s:>7} {r['answered_latency']['p99_ms']!s:>7} "
              f"{r['attempts'].get('hedge', 0):>7.0f} {r['attempts'].get('failover', 0):>9.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[25, 50, 100, 200, 400])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--deadline", type=float, default=0.5, help="seconds, each search of part 1")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4, help="concurrent searches of part 2")
    parser.add_argument("--hung-deadline", type=float, default=1.0, help="seconds, each search of part 2")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        root = Path(tmp)
        requests = [request_for(v) for v in build_store(root / "store", args.models)]
        result = {
            "machine": f"{platform.node()} ({os.cpu_count()} cores)", "date": time.strftime("%Y-%m-%d"),
            "models": args.models, "method": "GAUSSIAN", "candidates_per_shard": 1000,
            "workers": args.workers, "queue": args.queue, "deadline_s": args.deadline,
            "hung_deadline_s": args.hung_deadline,
            "overload": overload_part(args, root, requests),
            "hung": hung_part(args, root, requests),
        }
    print_tables(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
