"""How far is the compressed second order (diagonal + rank r) from the full covariance?

For ranks 8, 16, 32, 64 it ranks a collection with each second-order score using the full and
the compressed covariances, and reports the overlap of the two top-10 lists (|A & B| / 10,
averaged over queries), how often the top-1 agrees, and the bytes per model.

    python tools/bench_compression.py [--models 120] [--samples 2000] [--out FILE.json]

Statistics come from ``modelverse.synthetic`` until the bundled zoo of real models exists.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modelverse.core import scores
from modelverse.core.collection import Collection
from modelverse.core.compression import compress_covariance
from modelverse.core.moments import l2_normalize_rows
from modelverse.core.second_order import CompressedCovariances
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_TAU, stats_from_features
from modelverse.synthetic import SyntheticZoo

RANKS = (8, 16, 32, 64)
TOP = 10


def top_ids(values: np.ndarray, k: int = TOP) -> list[int]:
    return [int(i) for i in np.argsort(-values, kind="stable")[:k]]


def overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    ta, tb = top_ids(a), top_ids(b)
    return len(set(ta) & set(tb)) / TOP, ta[0] == tb[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=120)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--image-queries", type=int, default=40)
    parser.add_argument("--text-queries", type=int, default=40)
    parser.add_argument("--model-queries", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/compression.json"))
    args = parser.parse_args()

    zoo = SyntheticZoo(dim=args.dim)
    models = zoo.models(args.models)
    stats = []
    for i, model in enumerate(tqdm(models, desc="summarising", unit="model")):
        stats.append(stats_from_features(model.sample_features(args.samples, seed=i), rank=RANKS[0]))
    ids = [m.id for m in models]
    collection = Collection.from_stats(ids, stats)
    full = collection.full
    means = collection.means
    rng = np.random.default_rng(123)

    # Image-like queries: fresh samples of random models. Text-like: a tag's concept direction
    # with the common image direction and noise (a caption lands near, not on, the images).
    image_queries = [
        l2_normalize_rows(models[int(rng.integers(len(models)))].sample_features(1, seed=10**6 + j))[0]
        for j in range(args.image_queries)
    ]
    text_queries = []
    for _ in range(args.text_queries):
        tag = zoo.tags[int(rng.integers(len(zoo.tags)))]
        v = zoo.concepts[tag] + 0.9 * zoo.common + 0.5 * rng.standard_normal(args.dim) / np.sqrt(args.dim)
        text_queries.append(scores.normalize_query(v))
    model_queries = rng.choice(len(models), size=min(args.model_queries, len(models)), replace=False)

    started = time.perf_counter()
    full_gaussian = [scores.gaussian(q, means, full, DEFAULT_EPS) for q in tqdm(image_queries, desc="full gaussian")]
    full_mgf = [scores.mgf(q, means, full, DEFAULT_TAU) for q in text_queries]
    full_frechet = [
        scores.frechet_full(means[m], full.covariances[m], means, full) for m in tqdm(model_queries, desc="full frechet")
    ]
    full_seconds = time.perf_counter() - started

    rows = []
    for rank in RANKS:
        compressed = CompressedCovariances.stack(
            [compress_covariance(s.covariance, rank=rank, eps=DEFAULT_EPS) for s in stats]
        )
        result = {"rank": rank}
        for name, full_scores, compute in (
            ("gaussian", full_gaussian, lambda q: scores.gaussian(q, means, compressed, DEFAULT_EPS)),
            ("mgf", full_mgf, lambda q: scores.mgf(q, means, compressed, DEFAULT_TAU)),
        ):
            queries = image_queries if name == "gaussian" else text_queries
            pairs = [overlap(f, compute(q)) for f, q in zip(full_scores, queries)]
            result[f"{name}_top10_overlap"] = float(np.mean([p[0] for p in pairs]))
            result[f"{name}_top1_agreement"] = float(np.mean([p[1] for p in pairs]))
        pairs = []
        for m, f in zip(model_queries, full_frechet):
            c = scores.frechet_compressed(means[m], compressed.take(np.array([m])), means, compressed)
            pairs.append(overlap(np.delete(f, m), np.delete(c, m)))  # the query itself left out
        result["frechet_top10_overlap"] = float(np.mean([p[0] for p in pairs]))
        result["frechet_top1_agreement"] = float(np.mean([p[1] for p in pairs]))
        item = compressed.item(0)
        result["second_order_bytes"] = item.nbytes
        result["bytes_per_model"] = item.nbytes + args.dim * 4 + 8  # + fp32 first moment + count
        rows.append(result)

    full_bytes = args.dim * args.dim * 4 + args.dim * 4
    header = ["rank", "bytes/model", "gaussian top10", "gaussian top1", "mgf top10", "mgf top1", "frechet top10", "frechet top1"]
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(v) for v in [
            r["rank"], r["bytes_per_model"], f"{r['gaussian_top10_overlap']:.3f}", f"{r['gaussian_top1_agreement']:.3f}",
            f"{r['mgf_top10_overlap']:.3f}", f"{r['mgf_top1_agreement']:.3f}",
            f"{r['frechet_top10_overlap']:.3f}", f"{r['frechet_top1_agreement']:.3f}",
        ]))
    print(f"full covariance, fp32: {full_bytes} bytes/model; full scoring took {full_seconds:.1f} s")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "compression_fidelity",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} ({__import__('os').cpu_count()} cpus)".strip(),
        "statistics": "modelverse.synthetic (until the bundled zoo exists)",
        "models": args.models, "samples_per_model": args.samples, "dim": args.dim,
        "queries": {"image": args.image_queries, "text": args.text_queries, "model": len(model_queries)},
        "full_bytes_per_model": full_bytes,
        "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
