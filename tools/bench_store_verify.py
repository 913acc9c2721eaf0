"""What do checking and copying a store cost: `verify --quick`, `verify` (every file and row
checksum), the row checks a CLI search adds, `snapshot` and `restore`.

Builds (once, resumable) a store of ``--models`` models with the stand-in statistics of
tools/bench_store_open.py (real shapes: d = 512, rank 16), then times each operation in this
process, the median of ``--repeats`` runs.

    python tools/bench_store_verify.py [--models 5000] [--store DIR] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from bench_store_open import build  # tools/ is this script's directory

from modelverse.core.stats import DEFAULT_RANK
from modelverse.store.directory import DirectoryStore
from modelverse.store.pack import CHECKED_COLUMNS
from modelverse.store.snapshot import restore_store, snapshot_store
from modelverse.store.verify import verify_store


def timed(repeats: int, run: Callable[[], object], after: Callable[[], None] = lambda: None) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
        after()
    return float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--rank", type=int, default=DEFAULT_RANK)
    parser.add_argument("--store", type=Path, default=Path(".modelverse/bench-store-verify"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/store_verify.json"))
    args = parser.parse_args()

    store = build(args.store, args.models, args.dim, args.rank)
    assert len(store) == args.models and verify_store(args.store).findings == []
    scratch = Path(tempfile.mkdtemp(dir=args.store.parent, prefix=".bench-verify-"))
    try:
        store = DirectoryStore.open(args.store)
        results = {
            "verify_quick_s": timed(args.repeats, lambda: verify_store(args.store, deep=False)),
            "verify_deep_s": timed(args.repeats, lambda: verify_store(args.store)),
            "collection_unchecked_s": timed(args.repeats, lambda: store.collection(check_columns=())),
            "collection_check_means_s": timed(args.repeats, lambda: store.collection(check_columns=("means", "scalars"))),
            "collection_check_all_s": timed(args.repeats, lambda: store.collection(check_columns=CHECKED_COLUMNS)),
            "snapshot_s": timed(args.repeats, lambda: snapshot_store(args.store, scratch / "snap"),
                                lambda: shutil.rmtree(scratch / "snap")),
        }
        locked = []
        for _ in range(args.repeats):
            locked.append(snapshot_store(args.store, scratch / "snap").locked_seconds)
            shutil.rmtree(scratch / "snap")
        results["snapshot_writers_wait_s"] = float(np.median(locked))
        snapshot_store(args.store, scratch / "snap")
        results["restore_s"] = timed(args.repeats, lambda: restore_store(scratch / "snap", scratch / "restored"),
                                     lambda: shutil.rmtree(scratch / "restored"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"{'operation':<34} | {'seconds':>8} | {'us / model':>10}")
    for name, seconds in results.items():
        print(f"{name:<34} | {seconds:>8.3f} | {seconds / args.models * 1e6:>10.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "store_verify",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} ({os.cpu_count()} cpus), {platform.python_implementation()} {platform.python_version()}",
        "models": args.models, "dim": args.dim, "rank": args.rank, "repeats": args.repeats,
        "median_seconds": results,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
