"""What access control and TLS cost per call: the same local cluster (1 shard, gateway, admin as
processes) with no access control, with API keys, and with API keys over TLS.

    python tools/bench_auth.py [--calls 2000] [--out docs/benchmarks/auth.json]

One client calls the gateway sequentially (GetModel, the cheapest RPC, where a fixed per-call
cost shows most; and a first-moment vector Search), after a warm-up. Also the key check alone
(KeyRing.role_of: file stat throttled to once a second, one SHA-256, a constant-time compare).
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from modelverse.core.stats import stats_from_features
from modelverse.security.keys import KeyRing, KeysFile, Role
from modelverse.serving.loopback_cluster import Cluster, ClusterSpec
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import search_pb2, search_pb2_grpc

VARIANTS = {"no access control": dict(auth=False, tls=False), "API key": dict(auth=True, tls=False),
            "API key + TLS": dict(auth=True, tls=True)}


def make_store(root: Path, models: int = 50, dim: int = 64) -> list[str]:
    rng = np.random.default_rng(0)
    store = DirectoryStore.create(root, StoreConfig(dim=dim, rank=8))
    ids = [f"bench/m{i}" for i in range(models)]
    store.put_many([(ModelMetadata(m), stats_from_features(rng.standard_normal((100, dim)) + rng.standard_normal(dim),
                                                           rank=8, keep_covariance=False)) for m in ids])
    return ids


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def timed(call, calls: int, warmup: int = 100) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


def key_check_cost(root: Path, checks: int = 20000) -> dict[str, float]:
    keys = KeysFile.load(root / "keys.json", missing_ok=True)
    key = keys.create(Role.READ)
    for _ in range(99):
        keys.create(Role.READ)
    keys.save()
    ring = KeyRing(root / "keys.json")
    started = time.perf_counter()
    for _ in range(checks):
        ring.role_of(key)
    return {"keys_in_file": 100, "us_per_check": round(1e6 * (time.perf_counter() - started) / checks, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/auth.json"))
    args = parser.parse_args()
    result: dict = {"date": date.today().isoformat(), "calls": args.calls,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "variants": {}}
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        root = Path(tmp)
        ids = make_store(root / "store")
        vector = np.random.default_rng(1).standard_normal(64).astype(np.float32).tolist()
        search = search_pb2.SearchRequest(parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=vector))],
                                          method=search_pb2.FIRST_MOMENT, top_k=10)
        for name, options in VARIANTS.items():
            spec = ClusterSpec(store=root / "store", run_dir=root / f"run-{len(result['variants'])}", shards=1, **options)
            with Cluster(spec) as cluster:
                with cluster.channel(cluster.gateway, cluster.read_key if spec.auth else None) as channel:
                    stub = search_pb2_grpc.SearchServiceStub(channel)
                    get = search_pb2.GetModelRequest(id=ids[7])
                    result["variants"][name] = {
                        "GetModel": timed(lambda stub=stub, get=get: stub.GetModel(get, timeout=10), args.calls),
                        "Search": timed(lambda stub=stub: stub.Search(search, timeout=10), args.calls),
                    }
        result["key_check"] = key_check_cost(root)
    print(f"{'variant':20} {'GetModel p50':>13} {'p99':>8} {'Search p50':>11} {'p99':>8}   (ms, {args.calls} calls each)")
    for name, v in result["variants"].items():
        print(f"{name:20} {v['GetModel']['p50_ms']:13.3f} {v['GetModel']['p99_ms']:8.3f} "
              f"{v['Search']['p50_ms']:11.3f} {v['Search']['p99_ms']:8.3f}")
    print(f"key check alone: {result['key_check']['us_per_check']} us (100 keys in the file)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
