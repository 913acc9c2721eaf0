"""Exhaustive second-order search with the statistics resident on one GPU: every model scored
for every query (MGF, GAUSSIAN), no first stage, so no candidate count and no fidelity loss.

    PYTHONPATH=services python3 tools/bench_gpu_exhaustive.py --models 5000000 \\
        --profile docs/benchmarks/zoo-profile.json --out gpu-exhaustive-5m.json

The statistics are the zoo-profiled synthetic collection of ``modelverse.bench.scale_gpu``, held as a
store keeps them: means float32, diagonal and W float16, the Woodbury factor float32 (about
20.5 KB a model; 5M models are 102 GB). Scores run in float32 (``scale_gpu.resident_scores``).
Their top 10 is compared with the float64 reference (``scale_gpu.exact_scores``) on the same stored
values, and the time of one query and of a batch of concurrent queries is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from modelverse.bench.scale_gpu import (
    Layout,
    Resident,
    exact_scores,
    gemm_path,
    resident_scores,
    sample_queries,
)
from modelverse.bench.scale_stats import load_profile

METHODS = ("mgf", "gaussian")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=5_000_000)
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--batch", type=int, default=65536, help="models generated at once")
    parser.add_argument("--chunk", type=int, default=1 << 18, help="models scored at once")
    parser.add_argument("--tau", type=float, default=100.0)
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    profile = load_profile(args.profile)
    n = args.models

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    started = time.perf_counter()
    layout = Layout.draw(profile, n, 1000, args.seed, device)
    res = Resident.generate(profile, layout, n, args.batch, args.seed, args.eps)
    sync()
    generate_seconds = time.perf_counter() - started
    resident_bytes = sum(t.nbytes for t in (res.means, res.diag, res.columns, res.woodbury, res.logdet))
    print(f"{n} models resident: {resident_bytes / 1e9:.1f} GB in {generate_seconds:.1f} s", file=sys.stderr, flush=True)

    queries = sample_queries(res.batch(0, n), args.queries, args.seed + 1)

    reference = {m: torch.empty(args.queries, n, dtype=torch.float64, device=device) for m in METHODS}
    for start in range(0, n, args.batch):
        stop = min(start + args.batch, n)
        scores = exact_scores(res.batch(start, stop), queries, args.tau, args.eps)
        for m in METHODS:
            reference[m][:, start:stop] = scores[m]
    truth = {m: torch.topk(reference[m], 10, dim=1).indices for m in METHODS}
    del reference

    result: dict = {"models": n, "dim": profile.dim, "rank": profile.rank, "queries": args.queries, "tau": args.tau,
                    "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "float16_gemm": gemm_path(device), "chunk": args.chunk,
                    "resident_bytes": resident_bytes, "resident_bytes_per_model": round(resident_bytes / n, 1),
                    "generate_seconds": round(generate_seconds, 1), "methods": {}}
    for m in METHODS:
        timings = {}
        for batch in (1, args.queries):
            times = []
            for i in range(args.repeats + 1):
                sync()
                t0 = time.perf_counter()
                scores = resident_scores(res, queries[:batch], m, args.tau, args.eps, args.chunk)
                top = torch.topk(scores, 10, dim=1).indices
                sync()
                if i:  # one warm-up
                    times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            timings[batch] = {"median_ms": round(times[len(times) // 2], 2), "best_ms": round(times[0], 2),
                              "queries_per_second": round(batch / times[len(times) // 2] * 1000, 1)}
        agree = float((top == truth[m]).double().mean())  # the last run scored every query
        result["methods"][m] = {"search": timings, "positions_agreeing_with_float64": round(agree, 4)}
        print(f"{m}: {timings}, agreement with float64 {agree:.4f}", file=sys.stderr, flush=True)
    result["peak_device_bytes"] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["methods"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
