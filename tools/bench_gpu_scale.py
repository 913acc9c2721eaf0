"""Ten million models on one GPU: generation, exhaustive exact scoring, first-stage search and the
two-stage fidelity curve, with the zoo-calibrated profile of ``tools/scale_stats.py``.

    PYTHONPATH=services python3 tools/bench_gpu_scale.py --models 10000000 \\
        --profile docs/benchmarks/zoo-profile.json --device cuda --out gpu-10m.json

What runs (``modelverse.bench.scale_gpu`` holds the generator and the scores):

1. Queries: ``--queries`` models drawn from the first batch, one sample each from the model's
   Gaussian (as tools/bench_serving.py makes them), L2-normalised.
2. One pass over the collection in batches: generate, score every model exactly for every query
   (FIRST_MOMENT, MGF, GAUSSIAN, float64), keep the scores (float32, Q x N per method), and keep
   the first-stage vectors a serving node would hold: normalised means and the lifted MGF and
   GAUSSIAN vectors (``modelverse.core.lift``), float16.
3. First-stage search timing: inner products of a query batch with every resident vector and a
   top-k (an exact flat scan, what faiss's GpuIndexFlatIP does), at batch sizes 1 and Q.
4. Fidelity: for each method and first stage, the top C candidates of the first stage re-ranked
   by the exact score; the fraction of top-10 positions equal to the exhaustive top 10, on the
   whole collection and on its first ``--prefixes`` models (1M: the CPU cluster's size). MGF
   lifts of other (columns, alpha) are scored in float32 during the pass to compare them.

faiss-gpu is not used: its wheels (faiss-gpu-cu12, faiss-gpu, faiss-cuda) link CUDA 12's cuBLAS and
runtime, which the lent machine's image (CUDA 13) lacks and which are larger than what a call can
carry (docs/benchmarks/SERVING-LOG.md, the 10M GPU runs).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from modelverse.bench.scale_gpu import (
    Layout,
    exact_scores,
    gemm_path,
    generate_batch,
    inner_products,
    lift_gaussian,
    lift_mgf,
    lifted_first_stage,
    normalized_means,
    sample_queries,
)
from modelverse.bench.scale_stats import load_profile

METHODS = ("first_moment", "mgf", "gaussian")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_queries(profile, layout: Layout, count: int, batch: int, seed: int) -> torch.Tensor:
    return sample_queries(generate_batch(profile, layout, 0, batch, seed), count, seed + 1)


def timed_search(vectors: torch.Tensor, copies: int, queries: torch.Tensor, k: int, repeats: int,
                 device: torch.device) -> dict:
    """Median and best milliseconds of first-stage scoring + top-k for one query batch."""
    times = []
    for i in range(repeats + 2):
        sync(device)
        started = time.perf_counter()
        scores = lifted_first_stage(vectors, copies, queries) if copies else inner_products(queries, vectors)
        torch.topk(scores, k, dim=1)
        sync(device)
        if i >= 2:  # two warm-ups
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    median = times[len(times) // 2]
    return {"batch": int(queries.shape[0]), "median_ms": round(median, 3), "best_ms": round(times[0], 3),
            "queries_per_second": round(queries.shape[0] / median * 1000, 1)}


def agreement(first_stage: torch.Tensor, exact: torch.Tensor, grid: list[int], prefixes: list[int]) -> dict:
    """Fraction of top-10 positions equal to the exhaustive top 10, per collection size (the first
    ``prefix`` models) and candidate count."""
    out = {}
    for prefix in prefixes:
        stage, scores = first_stage[:, :prefix], exact[:, :prefix]
        truth = torch.topk(scores, 10, dim=1).indices
        curve = {}
        for c in (c for c in grid if c <= prefix):
            candidates = torch.topk(stage, c, dim=1).indices
            top = torch.gather(candidates, 1, torch.topk(torch.gather(scores, 1, candidates), 10, dim=1).indices)
            curve[c] = round(float((top == truth).double().mean()), 4)
        out[prefix] = curve
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000_000)
    parser.add_argument("--profile", type=Path, required=True, help="a profile JSON (tools/scale_stats.py --save-profile)")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--batch", type=int, default=65536, help="models generated and scored at once")
    parser.add_argument("--tau", type=float, default=100.0)
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--columns", type=int, default=2, help="MGF lift: columns kept by direction")
    parser.add_argument("--alpha", type=float, default=0.1, help="MGF lift: tangent point")
    parser.add_argument("--grid", default="100,200,400,800,1600,3200,6400", help="candidate counts")
    parser.add_argument("--prefixes", default="1000000", help="also measure fidelity on the first N models")
    parser.add_argument("--lift-variants", default="1:0.1,2:0.05,2:0.2,3:0.1,3:0.2,4:0.1",
                        help="MGF lifts COLUMNS:ALPHA whose first-stage scores are kept for the fidelity curve "
                             "(scored in float32 during the pass, not resident)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    profile = load_profile(args.profile)
    n, d = args.models, profile.dim
    grid = [c for c in map(int, args.grid.split(",")) if c <= n]
    prefixes = sorted({p for p in map(int, args.prefixes.split(",")) if p < n} | {n})
    variants = [(int(t), float(a)) for t, a in (v.split(":") for v in args.lift_variants.split(",") if v)]
    started_all = time.perf_counter()
    layout = Layout.draw(profile, n, args.clusters, args.seed, device)
    queries = make_queries(profile, layout, args.queries, min(args.batch, n), args.seed)
    q_count = queries.shape[0]
    copies = 2 ** args.columns

    # Resident first-stage vectors (float16) and the exact scores of every model (float32).
    means16 = torch.empty(n, d, dtype=torch.float16, device=device)
    mgf16 = torch.empty(n * copies, d + 1, dtype=torch.float16, device=device)
    gauss16 = torch.empty(n, d + 1, dtype=torch.float16, device=device)
    exact = {m: torch.empty(q_count, n, dtype=torch.float32, device=device) for m in METHODS}
    variant_scores = {v: torch.empty(q_count, n, dtype=torch.float32, device=device) for v in variants}
    seconds = {"generate": 0.0, "score": 0.0, "lift": 0.0}
    lifted_range = {"mgf_abs_max": 0.0, "gaussian_abs_max": 0.0}
    # The lifted constant column is shifted by one collection-wide offset (the first batch's median)
    # before float16 rounding: a common shift changes no ranking and keeps the rounding step small.
    offsets: dict[str, float] = {}

    def store16(name: str, lifted: torch.Tensor) -> torch.Tensor:
        if name not in offsets:
            offsets[name] = float(lifted[:, d].median())
        lifted[:, d] -= offsets[name]
        key = f"{name}_abs_max"
        lifted_range[key] = max(lifted_range[key], float(lifted.abs().max()))
        return lifted.half()
    for start in range(0, n, args.batch):
        count = min(args.batch, n - start)
        sync(device)
        t0 = time.perf_counter()
        batch = generate_batch(profile, layout, start, count, args.seed)
        sync(device)
        t1 = time.perf_counter()
        scores = exact_scores(batch, queries, args.tau, args.eps)
        for m in METHODS:
            exact[m][:, start:start + count] = scores[m]
        sync(device)
        t2 = time.perf_counter()
        means16[start:start + count] = normalized_means(batch).half()
        mgf16[start * copies:(start + count) * copies] = store16("mgf", lift_mgf(batch, args.tau, args.columns, args.alpha))
        gauss16[start:start + count] = store16("gaussian", lift_gaussian(batch, args.eps))
        for (t, a), kept in variant_scores.items():
            kept[:, start:start + count] = lifted_first_stage(lift_mgf(batch, args.tau, t, a), 2**t, queries)
        sync(device)
        t3 = time.perf_counter()
        seconds["generate"] += t1 - t0
        seconds["score"] += t2 - t1
        seconds["lift"] += t3 - t2
        done = start + count
        print(f"\r{done}/{n} models, {done / (time.perf_counter() - started_all):,.0f} models/s", end="",
              file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if lifted_range["gaussian_abs_max"] > 65504 or lifted_range["mgf_abs_max"] > 65504:
        print("warning: lifted values exceed float16's range", file=sys.stderr)

    first_stages = {"cosine": (means16, 0), "lifted_mgf": (mgf16, copies), "lifted_gaussian": (gauss16, 1)}
    timings = {}
    for name, (vectors, c) in first_stages.items():
        timings[name] = [timed_search(vectors, c, queries[:1], max(grid), 20, device),
                         timed_search(vectors, c, queries, max(grid), 5, device)]
        print(f"{name}: {timings[name]}", file=sys.stderr, flush=True)

    def first_stage_scores(name: str) -> torch.Tensor:
        vectors, c = first_stages[name]
        return lifted_first_stage(vectors, c, queries) if c else inner_products(queries, vectors)

    fidelity = {}
    for method, stage_names in {"first_moment": ["cosine"], "gaussian": ["cosine", "lifted_gaussian"],
                                "mgf": ["cosine", "lifted_mgf"]}.items():
        for stage in stage_names:
            fidelity[f"{method} <- {stage}"] = agreement(first_stage_scores(stage), exact[method], grid, prefixes)
            print(f"{method} <- {stage}: {fidelity[f'{method} <- {stage}']}", file=sys.stderr, flush=True)
    for (t, a), kept in variant_scores.items():
        name = f"mgf <- lifted_mgf float32 columns={t} alpha={a}"
        fidelity[name] = agreement(kept, exact["mgf"], grid, prefixes)
        print(f"{name}: {fidelity[name]}", file=sys.stderr, flush=True)

    resident = {"means_fp16": means16.nbytes, "lifted_mgf_fp16": mgf16.nbytes, "lifted_gaussian_fp16": gauss16.nbytes,
                "exact_scores_fp32": sum(t.nbytes for t in exact.values())}
    result = {
        "models": n, "dim": d, "rank": profile.rank, "queries": q_count, "tau": args.tau, "eps": args.eps,
        "lift": {"columns": args.columns, "alpha": args.alpha, **{k: round(v, 1) for k, v in lifted_range.items()},
                 "constant_offsets": offsets},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "batch": args.batch, "float16_gemm": gemm_path(device),
        "pass_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "models_per_second": {"generate": round(n / seconds["generate"]),
                              "exact_score_all_queries": round(n / seconds["score"])},
        "first_stage_search": timings,
        "positions_agreeing": fidelity,
        "resident_bytes": resident,
        "peak_device_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "total_seconds": round(time.perf_counter() - started_all, 1),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("models", "device", "pass_seconds", "models_per_second", "total_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
