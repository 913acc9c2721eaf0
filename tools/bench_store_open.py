"""How long does opening a store of many models take, and what does it cost on disk?

Builds (once, resumable) a directory store of ``--models`` models with compressed statistics
only, then times, in fresh processes, what a search process does at start-up: open the store,
map the pack, read the ids, and touch every first moment.

    python tools/bench_store_open.py [--models 100000] [--store DIR] [--out FILE.json]

The statistics are cheap stand-ins with the real shapes (d = 512, rank 16, fp16 factors): the
timing depends on shapes and counts, not on values, and 100,000 eigendecompositions would take
an hour here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modelverse.core.compression import STORAGE_DTYPE, CompressedCovariance, woodbury_factors
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK, ModelStats
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata

BATCH = 2000
OPEN_PROBE = """
import sys, time, numpy as np
t0 = time.perf_counter()
from modelverse.store.directory import DirectoryStore
t1 = time.perf_counter()
store = DirectoryStore.open(sys.argv[1])
pack = store.pack()
ids = store.ids()
t2 = time.perf_counter()
total = float(np.asarray(pack.arrays["means"], dtype=np.float64).sum())  # touch every first moment
t3 = time.perf_counter()
print(f"{t1 - t0} {t2 - t1} {t3 - t2} {len(ids)}")
"""


def stand_in_stats(rng: np.random.Generator, dim: int, rank: int) -> ModelStats:
    factor = (rng.standard_normal((dim, rank)) * 0.02).astype(STORAGE_DTYPE)
    diag = rng.uniform(1e-4, 1e-3, dim).astype(STORAGE_DTYPE)
    woodbury, logdet = woodbury_factors(diag, factor, DEFAULT_EPS)
    mean = rng.standard_normal(dim)
    mean *= 0.8 / np.linalg.norm(mean)
    trace = float(diag.astype(np.float64).sum() + np.square(factor.astype(np.float64)).sum())
    compressed = CompressedCovariance(diag, factor, DEFAULT_EPS, woodbury, logdet, trace)
    return ModelStats(count=2000, mean=mean, compressed=compressed)


def build(store_dir: Path, models: int, dim: int, rank: int) -> DirectoryStore:
    store = DirectoryStore.open_or_create(store_dir, StoreConfig(dim=dim, rank=rank))
    have = len(store)
    rng = np.random.default_rng(have)
    with tqdm(total=models, initial=have, desc="building store", unit="model") as bar:
        for start in range(have, models, BATCH):
            count = min(BATCH, models - start)
            store.put_many(
                [
                    (ModelMetadata(id=f"bench/model-{i:07d}", name=f"model {i}"), stand_in_stats(rng, dim, rank))
                    for i in range(start, start + count)
                ]
            )
            bar.update(count)
    return store


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--rank", type=int, default=DEFAULT_RANK)
    parser.add_argument("--store", type=Path, default=Path(".modelverse/bench-store-open"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/store_open.json"))
    args = parser.parse_args()

    started = time.perf_counter()
    store = build(args.store, args.models, args.dim, args.rank)
    build_seconds = time.perf_counter() - started
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", OPEN_PROBE, str(args.store)], check=True, capture_output=True, text=True)
        imports, open_s, touch_s, count = out.stdout.split()
        runs.append({"import_s": float(imports), "open_s": float(open_s), "touch_means_s": float(touch_s)})
        assert int(count) == args.models, f"store holds {count} models, expected {args.models}"
    pack_bytes = disk_bytes(args.store / "pack")
    total_bytes = disk_bytes(args.store)
    median = {key: float(np.median([r[key] for r in runs])) for key in runs[0]}

    print(f"{'models':>8} | {'open + ids (s)':>14} | {'touch means (s)':>15} | {'pack B/model':>12} | {'store B/model':>13}")
    print(f"{len(store):>8} | {median['open_s']:>14.3f} | {median['touch_means_s']:>15.3f} | "
          f"{pack_bytes / args.models:>12.0f} | {total_bytes / args.models:>13.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "store_open",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} ({os.cpu_count()} cpus), {platform.python_implementation()} {platform.python_version()}",
        "models": args.models, "dim": args.dim, "rank": args.rank,
        "build_seconds_this_run": build_seconds,
        "median": median, "runs": runs,
        "pack_bytes_per_model": pack_bytes / args.models,
        "store_bytes_per_model": total_bytes / args.models,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
