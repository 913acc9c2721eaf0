"""What the dense metadata match costs at scale: per query on one thread, at shard start, in memory.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python tools/bench_semantic_index.py --rows 100000,500000,1000000

Per query a shard does what ``serving/shard/query_context.py`` does for a METADATA / HYBRID
text query: its best ``--k`` dense matches (``SemanticIndex.top``: an exhaustive scan up to
EXHAUSTIVE_THRESHOLD rows, else the inverted file of 8-bit codes, their cosines recomputed from
the float32 rows) and the cosines of its content candidates (``SemanticIndex.scores``, 3,200
for MGF plus the text matches). The gateway embeds the query text once (``SentenceEncoder``).

The rows are synthetic: unit vectors around ``--clusters`` random topic centres (a row's cosine
with its centre about 0.6, as sentences on one topic), queries drawn the same way; recall is
against the exact top 10 of the same rows. Real metadata embeddings are clustered by topic too,
but how tightly is not known here: the recall of an inverted file on them may differ. Shard
start: training and filling the inverted file, and embedding the metadata once (measured on the
bundled zoo's texts; the on-disk cache spares it at later starts). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="100000,500000,1000000", help="embedded models per shard, comma-separated")
    parser.add_argument("--nprobe", default="8,16,32,64", help="inverted lists scanned, comma-separated")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--exact-queries", type=int, default=20, help="queries timed for the exhaustive scan")
    parser.add_argument("--k", type=int, default=200, help="dense matches a shard adds (TEXT_CANDIDATES)")
    parser.add_argument("--candidates", type=int, default=3400, help="candidates whose cosines a shard computes")
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks" / "semantic_index.json")
    return parser.parse_args(argv)


def clustered(rows: int, centres: np.ndarray, rng: np.random.Generator, spread: float = 0.045) -> np.ndarray:
    """Unit rows near random centres: noise of ``spread`` per dimension gives a cosine of about
    0.6 with the centre at d = 384 (1 / sqrt(1 + 384 spread^2))."""
    out = np.empty((rows, centres.shape[1]), dtype=np.float32)
    for start in range(0, rows, 65536):
        stop = min(rows, start + 65536)
        block = centres[rng.integers(0, len(centres), stop - start)]
        block = block + rng.normal(0.0, spread, block.shape).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed(function, repeats: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = []
    for i in range(repeats):
        tick = time.perf_counter()
        function(i)
        out.append(time.perf_counter() - tick)
    return np.array(out) * 1000


def encoder_costs() -> dict[str, float]:
    """The gateway's query embedding (p50 ms) and the metadata embedding rate (texts / s)."""
    from modelverse.core.sentence_encoder import sentence_encoder
    from modelverse.core.text_index import MetadataDocument
    from modelverse.zoo import bundled_manifest

    encoder = sentence_encoder()
    entries = bundled_manifest()
    queries = [e.query_text for e in entries]
    encoder.encode_fresh(queries[:2])
    query_ms = timed(lambda i: encoder.encode_fresh([queries[i % len(queries)]]), 100)
    texts = [MetadataDocument(e.id, e.metadata.name, e.metadata.description, e.tags, e.metadata.creator).text()
             for e in entries] * 10
    tick = time.perf_counter()
    encoder.encode_fresh(texts)
    rate = len(texts) / (time.perf_counter() - tick)
    return {"query_embed_ms_p50": round(float(np.percentile(query_ms, 50)), 2),
            "query_embed_ms_p99": round(float(np.percentile(query_ms, 99)), 2),
            "metadata_texts_per_s": round(rate, 1), "metadata_texts": len(texts)}


def measure(rows: int, args: argparse.Namespace, nprobes: list[int]) -> list[dict[str, object]]:
    import faiss

    from modelverse.serving.shard.semantic_index import SemanticIndex, semantic_plan

    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(args.clusters, 384)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(rows, centres, rng)
    queries = clustered(args.queries, centres, rng)
    every = np.arange(rows)
    exhaustive = SemanticIndex.build(vectors, every, exhaustive_threshold=rows)
    truth = [set(np.argpartition(-(vectors @ q), 10)[:10].tolist()) for q in queries]
    candidates = [rng.choice(rows, args.candidates, replace=False) for _ in range(args.queries)]
    scores_ms = timed(lambda i: exhaustive.scores(queries[i], candidates[i]), args.queries)
    scan_ms = timed(lambda i: exhaustive.top(queries[i], args.k), args.exact_queries)
    base = {"rows": rows, "vectors_mib": round(vectors.nbytes / 2**20, 1),
            "candidate_cosines_ms_p50": round(float(np.percentile(scores_ms, 50)), 3)}
    out: list[dict[str, object]] = [{**base, "index": "exhaustive scan", "nprobe": None, "build_s": 0.0,
                                     "codes_mib": 0.0, "recall10": 1.0,
                                     "top_ms_p50": round(float(np.percentile(scan_ms, 50)), 2),
                                     "top_ms_p99": round(float(np.percentile(scan_ms, 99)), 2)}]
    tick = time.perf_counter()
    ivf = SemanticIndex.build(vectors, every, exhaustive_threshold=0)
    build_s = time.perf_counter() - tick
    assert ivf.index is not None and ivf.plan is not None
    plan = semantic_plan(rows)
    for nprobe in nprobes:
        faiss.extract_index_ivf(ivf.index).nprobe = min(nprobe, plan.nlist)
        ivf.top(queries[0], args.k)
        top_ms = timed(lambda i: ivf.top(queries[i], args.k), args.queries)
        recall = np.mean([len(truth[i] & set(ivf.top(q, 10)[0].tolist())) / 10 for i, q in enumerate(queries)])
        out.append({**base, "index": plan.factory, "nprobe": nprobe, "build_s": round(build_s, 1),
                    "codes_mib": round(rows * plan.bytes_per_vector / 2**20, 1), "recall10": round(float(recall), 3),
                    "top_ms_p50": round(float(np.percentile(top_ms, 50)), 2),
                    "top_ms_p99": round(float(np.percentile(top_ms, 99)), 2)})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(1)
    nprobes = [int(p) for p in args.nprobe.split(",")]
    encoder = encoder_costs()
    results: list[dict[str, object]] = []
    for rows in (int(r) for r in args.rows.split(",")):
        results += measure(rows, args, nprobes)
        print(f"measured {rows:,} rows", file=sys.stderr)
    print(f"query embedding (gateway, once per text query): p50 {encoder['query_embed_ms_p50']} ms, "
          f"p99 {encoder['query_embed_ms_p99']} ms; metadata embedding: {encoder['metadata_texts_per_s']} texts/s")
    print("| rows / shard | best matches by | nprobe | recall@10 | top-k p50 (ms) | p99 (ms) | candidates' "
          "cosines p50 (ms) | build (s) | float32 rows (MiB) | codes (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rows']:,} | {r['index']} | {r['nprobe'] or ''} | {r['recall10']} | {r['top_ms_p50']} | "
              f"{r['top_ms_p99']} | {r['candidate_cosines_ms_p50']} | {r['build_s']} | {r['vectors_mib']} | "
              f"{r['codes_mib']} |")
    report = {"benchmark": "semantic_index", "date": date.today().isoformat(),
              "command": "python tools/bench_semantic_index.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{platform.machine()}, 2-core VM (shared), one thread", "queries": args.queries,
              "k": args.k, "candidates": args.candidates, "clusters": args.clusters, "encoder": encoder,
              "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
