"""Serving benchmark at scale: latency, throughput, two-stage fidelity, memory, build time,
and the paper's one-model-at-a-time full-covariance scoring timed beside ours.

    .venv/bin/python tools/scale_stats.py --out /tmp/scale-100k --models 100000
    .venv/bin/python tools/bench_serving.py --store /tmp/scale-100k --out docs/benchmarks/serving-100k.json

Vector queries only (encoder time excluded): each query is one synthetic "image feature" of a
random model, z = mu + W e + sqrt(D) n (e, n standard normal), L2-normalised.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os

# One BLAS thread: a few processes share two cores, and OpenBLAS's spinning threads turn a
# 512 x 512 factorisation from 0.13 s into seconds under contention. Set before numpy loads.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from modelverse.bench.agreement import two_stage_curve
from modelverse.bench.queries import make_queries, vector_request
from modelverse.core.collection import Collection
from modelverse.core.params import PAPER_SCORING, ScoringParams
from modelverse.core.reference import ExactSearch
from modelverse.core.types import Method, QueryPart
from modelverse.serving.loopback_cluster import Cluster, ClusterSpec
from modelverse.serving.index_choice import choose_index, choose_lifted_index
from modelverse.core.lift import LiftSpec
from modelverse.serving.shard.state import DEFAULT_MEMORY_BUDGET
from modelverse.store.directory import DirectoryStore
from modelverse.v1 import search_pb2, search_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"first_moment": search_pb2.FIRST_MOMENT, "gaussian": search_pb2.GAUSSIAN, "mgf": search_pb2.MGF}


def load_loadtest():
    spec = importlib.util.spec_from_file_location("loadtest", ROOT / "loadtest" / "loadtest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadtest"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def rss_mib(pid: int) -> dict:
    """Resident memory: anonymous (the process's own) and file-backed (mapped pack and index
    pages, shared with the page cache and every other process mapping them)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = round(int(line.split()[1]) / 1024, 1)
    return fields


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads (/proc/PID/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class CpuMeter:
    """CPU milliseconds per query of each serving process and of this client, over a block of
    queries: utime + stime before and after (10 ms ticks, so a block needs hundreds of
    queries). Measured while the cluster serves nothing else."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.pids = {**processes, "client": os.getpid()}

    def start(self) -> CpuMeter:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.wall = time.perf_counter()
        return self

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.wall
        self.used = {name: cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}

    def __enter__(self) -> CpuMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def per_query(self, queries: int) -> dict:
        ms = {name: round(1000 * used / queries, 3) for name, used in self.used.items()}
        ms["total"] = round(sum(ms.values()), 3)
        return {"queries": queries, "wall_seconds": round(self.wall, 2), "cpu_ms_per_query": ms,
                "cpu_bound_qps": round(1000 * (os.cpu_count() or 1) / ms["total"], 1) if ms["total"] else None}


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"n": int(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def single_client_latency(stub, queries: np.ndarray, method: int, requests: int, meter: CpuMeter | None = None,
                          warmup: int = 0) -> dict:
    """Latency percentiles of ``requests`` sequential queries after ``warmup`` untimed ones (a
    cluster started on saved indexes pages its columns in during its first queries; their
    latencies are reported apart, as ``warmup``); with a meter, the CPU per query of every
    process over the timed requests too (``cpu``)."""
    warm = max(5, warmup)  # at least the first few: connections and caches
    requests_ = [vector_request(queries[i % len(queries)], method, 10) for i in range(warm + requests)]
    times = []
    for i, request in enumerate(requests_):
        if i == warm and meter is not None:
            meter.start()
        started = time.perf_counter()
        stub.Search(request, timeout=10)
        times.append(time.perf_counter() - started)
    result = percentiles(times[warm:])
    if warmup:
        result["warmup"] = percentiles(times[:warm])
    if meter is not None and requests > 0:
        meter.stop()
        result["cpu"] = meter.per_query(requests)
    return result


def lifted_bytes_per_model(models_per_shard: int, dim: int) -> int:
    """Bytes per model of the shards' lifted MGF index (default spec, the shard's index rule)."""
    spec = LiftSpec("mgf", tau=PAPER_SCORING.tau)  # tau shapes the vectors, not their size
    plan = choose_lifted_index(models_per_shard * spec.copies, spec.dim(dim), DEFAULT_MEMORY_BUDGET)
    return spec.copies * plan.bytes_per_vector


def first_moment_index_bytes(models_per_shard: int, dim: int) -> int:
    """Bytes per model of a shard's first-moment index (the shard's default rule)."""
    return choose_index(models_per_shard, dim, DEFAULT_MEMORY_BUDGET, compact=True).bytes_per_vector


def agreement_curve(stub, collection: Collection, queries: np.ndarray, method: Method, grid: list[int], params: ScoringParams,
                    exact: list[list[str]] | None = None) -> dict:
    """Fraction of top-10 positions where the two-stage answer equals the exhaustive exact one
    (``ExactSearch.search_many``: every model scored, one pass over the pack for all queries;
    ``exact``: those answers from an earlier run on the same store and queries)."""
    started = time.perf_counter()
    if exact is None:
        exact = [[h.id for h in hits] for hits in ExactSearch(collection, params).search_many(
            [[QueryPart(q.astype(np.float64))] for q in queries], method, 10)]
    exhaustive_seconds = time.perf_counter() - started
    curve = two_stage_curve(stub, queries, exact, METHODS[method.value], grid)
    print(f"agreement {method.value} per candidates/shard: {curve}", file=sys.stderr, flush=True)
    return {"method": method.value, "queries": len(queries), "tau": params.tau, "eps": params.eps, "positions_agreeing": curve,
            "exhaustive_seconds_all_queries": round(exhaustive_seconds, 1), "exact_top10": exact}


def paper_style_comparison(collection: Collection, params: ScoringParams, q: np.ndarray, models: int, measured: int) -> dict:
    """Gaussian log-density of one query against ``models`` models: the paper's way (a Python loop,
    one full float64 covariance at a time, scipy's logpdf) against ours (batched, compressed)."""
    from scipy.stats import multivariate_normal

    rows = np.flatnonzero(collection.live_mask())[:models]
    sub = Collection(collection.ids[rows], np.asarray(collection.means[rows]), collection.compressed.take(rows))
    search = ExactSearch(sub, params)
    q64 = q.astype(np.float64)
    ours = []
    for _ in range(3):
        started = time.perf_counter()
        ours_scores = search.score_parts([QueryPart(q64)], Method.GAUSSIAN)
        ours.append(time.perf_counter() - started)
    paper_seconds = 0.0
    eps = sub.compressed.eps
    max_rel = 0.0
    for m in range(measured):  # the full covariance is what the paper keeps: build it untimed
        w = sub.compressed.factor[m].astype(np.float64)
        cov = np.diag(sub.compressed.diag[m].astype(np.float64) + eps) + w @ w.T
        mean = sub.means[m].astype(np.float64)
        started = time.perf_counter()
        score = multivariate_normal.logpdf(q64, mean, cov)
        paper_seconds += time.perf_counter() - started
        max_rel = max(max_rel, abs(score - ours_scores[m]) / max(1.0, abs(score)))
    per_model = paper_seconds / measured
    return {"models": int(len(rows)), "ours_seconds": round(min(ours), 4),
            "paper_seconds_per_model": round(per_model, 6), "paper_models_timed": measured,
            "paper_seconds_for_all": round(per_model * len(rows), 2),
            "speedup": round(per_model * len(rows) / min(ours), 1), "max_relative_score_difference": max_rel}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--nprobe", type=int, default=None)
    parser.add_argument("--second-order-probe-factor", type=int, default=None, help="the shards' (default: theirs)")
    parser.add_argument("--lifted-nprobe", type=int, default=None, help="the shards' (default: theirs)")
    parser.add_argument("--lift-alpha", type=float, default=None, help="the shards' MGF tangent point (default: theirs)")
    parser.add_argument("--candidates", type=int, default=None,
                        help="candidates per shard for every method (default: the gateway's per-method default)")
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--latency-methods", default="first_moment,gaussian,mgf")
    parser.add_argument("--warmup-requests", type=int, default=300,
                        help="untimed queries per method before the single-client timing (reported as 'warmup')")
    parser.add_argument("--qps-seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--load-methods", default="method_unspecified,gaussian",
                        help="methods load-tested one after the other (method_unspecified: a vector query's default, FIRST_MOMENT)")
    parser.add_argument("--agreement-queries", type=int, default=30)
    parser.add_argument("--grid", default="10,25,50,100,200,400")
    parser.add_argument("--paper-models", type=int, default=10_000)
    parser.add_argument("--paper-measured", type=int, default=1000, help="models of the paper loop actually timed")
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--agreement-methods", default="first_moment,gaussian,mgf")
    parser.add_argument("--exact-from", type=Path, default=None,
                        help="a previous JSON output on the same store: reuse its exhaustive top 10s (same queries)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    store = DirectoryStore.open(args.store)
    collection = store.collection()
    n = int(collection.live_mask().sum())
    queries, _ = make_queries(collection, 200, seed=1)
    pack_row_bytes = sum(a.dtype.itemsize * int(np.prod(a.shape[1:])) for a in store.pack().arrays.values())
    result: dict = {"models": n, "dim": collection.dim, "rank": collection.compressed.rank, "shards": args.shards,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "bytes_per_model": {"pack_row": pack_row_bytes, "first_moment_f32": 4 * collection.dim,
                                        "index_vector": first_moment_index_bytes(n // args.shards, collection.dim),
                                        "lifted_mgf_index": lifted_bytes_per_model(n // args.shards, collection.dim)}}
    sizes = result["bytes_per_model"]
    sizes["total"] = sizes["pack_row"] + sizes["index_vector"] + sizes["lifted_mgf_index"]
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="bench-serving-"))
    shard = {"nprobe": args.nprobe, "second_order_probe_factor": args.second_order_probe_factor,
             "lifted_nprobe": args.lifted_nprobe, "lift_alpha": args.lift_alpha}
    spec = ClusterSpec(store=args.store.resolve(), run_dir=run_dir, shards=args.shards, startup_timeout=1800,
                       shard={k: v for k, v in shard.items() if v is not None},
                       gateway={} if args.candidates is None else {"candidates": args.candidates})
    started = time.perf_counter()
    with Cluster(spec) as cluster:
        result["cluster_start_seconds"] = round(time.perf_counter() - started, 1)
        builds = []
        for replicas in cluster.shard_processes:
            for line in replicas[0].log_file.read_text().splitlines():
                entry = json.loads(line)
                if entry.get("msg") == "index built":
                    builds.append({k: entry[k] for k in ("shard", "models", "first_stage", "index_type", "seconds") if k in entry})
        result["index_builds"] = builds
        stub = search_pb2_grpc.SearchServiceStub(cluster.channel(cluster.gateway, cluster.read_key))
        pids = {p.name: p.popen.pid for p in cluster.processes() if p.popen is not None}
        result["latency_single_client"] = {
            name: single_client_latency(stub, queries, METHODS[name], args.latency_requests, CpuMeter(pids),
                                        args.warmup_requests)
            for name in filter(None, args.latency_methods.split(","))
        }
        print("latency", json.dumps(result["latency_single_client"]), file=sys.stderr)
        loadtest = load_loadtest()
        result["load"] = {}
        with tempfile.TemporaryDirectory() as tmp:
            qfile = Path(tmp) / "queries.npz"
            np.savez(qfile, vectors=queries, model_ids=collection.ids[np.flatnonzero(collection.live_mask())[:200]])
            for method in filter(None, args.load_methods.split(",")):
                load_args = loadtest.parse_args(["--target", cluster.gateway.address, "--queries", str(qfile),
                                                 "--api-key", cluster.read_key,
                                                 "--method", method, "--concurrency", str(args.concurrency),
                                                 "--duration", str(args.qps_seconds)])
                with CpuMeter(pids) as meter:
                    result["load"][method] = asyncio.run(loadtest.run(load_args))
                result["load"][method]["cpu"] = meter.per_query(result["load"][method]["overall"]["requests"])
                print(f"load test, method {method}:")
                loadtest.print_table(result["load"][method])
        result["rss_mib"] = {p.name: rss_mib(p.popen.pid) for p in cluster.processes()}
        grid = [int(k) for k in args.grid.split(",")]
        agreement_queries = queries[: args.agreement_queries]
        truth = {a["method"]: a["exact_top10"] for a in json.loads(args.exact_from.read_text())["agreement"]
                 if len(a.get("exact_top10", [])) == len(agreement_queries)} if args.exact_from else {}
        result["agreement"] = [] if args.skip_agreement else [
            agreement_curve(stub, collection, agreement_queries, m, grid, store.config.scoring, truth.get(m.value))
            for m in (Method(name) for name in args.agreement_methods.split(","))]
        print("agreement", json.dumps(result["agreement"]), file=sys.stderr)
    if not args.skip_paper:
        result["paper_style"] = paper_style_comparison(collection, store.config.scoring, queries[0], args.paper_models, args.paper_measured)
    print_summary(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


def print_summary(r: dict) -> None:
    print(f"\n{r['models']} models, d={r['dim']}, r={r['rank']}, {r['shards']} shards")
    for name, lat in r["latency_single_client"].items():
        print(f"single client {name:13} p50 {lat['p50_ms']:7.2f} ms  p95 {lat['p95_ms']:7.2f}  p99 {lat['p99_ms']:7.2f}")
        if "warmup" in lat:
            w = lat["warmup"]
            print(f"  first {w['n']} queries (warm-up, untimed above): p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f}")
        if "cpu" in lat:
            print(f"  CPU ms per query: {lat['cpu']['cpu_ms_per_query']}")
    for method, load in r["load"].items():
        o = load["overall"]
        print(f"load ({method}, {load['concurrency']} clients): {o['qps']} QPS, p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, "
              f"errors {o['errors'] or 0}")
        if "cpu" in load:
            print(f"  CPU ms per query: {load['cpu']['cpu_ms_per_query']}")
    for a in r["agreement"]:
        print(f"top-10 agreement ({a['method']}) by candidates/shard: {a['positions_agreeing']}")
    print(f"bytes per model: {r['bytes_per_model']}")
    print(f"index builds: {r['index_builds']}")
    print(f"RSS MiB: {r['rss_mib']}")
    if "paper_style" in r:
        p = r["paper_style"]
        print(f"paper-style loop on {p['models']} models: {p['paper_seconds_for_all']} s (timed {p['paper_models_timed']}), "
              f"ours {p['ours_seconds']} s, ratio {p['speedup']}x, max rel diff {p['max_relative_score_difference']:.2e}")


if __name__ == "__main__":
    sys.exit(main())
