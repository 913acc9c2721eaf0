"""What the metadata text index costs at scale (issue 17): build time, memory and the time a
METADATA / HYBRID text query adds on a shard.

    python tools/bench_text_index.py --models 1000000 --shards 1

The corpus is synthetic but shaped like hub metadata: a name of 2-3 words, a description of
10-25 words and 3-6 tags drawn from a Zipf-distributed vocabulary (frequent words such as
"photo" in most documents, rare ones in few), and a creator. Per query the shard does what
``serving/shard/query_context.py`` does: its best BM25 matches (``TEXT_CANDIDATES``) and the BM25
scores of its content candidates (3,200 for MGF). Queries are 2-5 words from the same
vocabulary. Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1_000_000, help="models in the collection")
    parser.add_argument("--shards", type=int, default=1, help="the index one shard of this many holds")
    parser.add_argument("--vocabulary", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--content-candidates", type=int, default=3200)
    parser.add_argument("--text-candidates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks" / "text_index.json")
    return parser.parse_args(argv)


def corpus(count: int, vocabulary: int, rng: np.random.Generator):
    from modelverse.core.text_index import MetadataDocument

    words = np.array([f"w{i}" for i in range(vocabulary)])
    weights = 1.0 / np.arange(1, vocabulary + 1)
    weights /= weights.sum()
    lengths = rng.integers(10, 26, count)
    draws = words[rng.choice(vocabulary, size=int(lengths.sum()) + 8 * count, p=weights)]
    at = 0
    for i in range(count):
        n = int(lengths[i])
        name, description, tags = draws[at:at + 2], draws[at + 2:at + 2 + n], draws[at + 2 + n:at + 7 + n]
        at += 8 + n
        yield MetadataDocument(f"model-{i:07d}", " ".join(name), " ".join(description), tuple(tags), f"creator{i % 5000}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from modelverse.core.text_index import TextIndex

    rng = np.random.default_rng(args.seed)
    per_shard = args.models // args.shards
    documents = list(corpus(per_shard, args.vocabulary, rng))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    index = TextIndex(documents)
    build_s = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    timings = []
    for _ in range(args.queries):
        query = " ".join(f"w{int(w)}" for w in rng.zipf(1.3, rng.integers(2, 6)) % args.vocabulary)
        content = rng.choice(len(index), args.content_candidates, replace=False)
        tick = time.perf_counter()
        top, _ = index.top(query, args.text_candidates)
        # the shard looks its candidates up by row (QueryContext.text_scores): one gather
        index.scores(query)[np.concatenate([content, rng.choice(len(index), len(top))])]
        timings.append(time.perf_counter() - tick)
    ms = np.array(timings) * 1000
    row = {"models": args.models, "shards": args.shards, "models_per_shard": per_shard,
           "build_s": round(build_s, 1), "rss_growth_mib": round((rss_after - rss_before) / 1024, 1),
           "query_ms_p50": round(float(np.percentile(ms, 50)), 2), "query_ms_p99": round(float(np.percentile(ms, 99)), 2)}
    print("| models | shards | models / shard | build (s) | RSS growth (MiB) | per query p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.models:,} | {args.shards} | {per_shard:,} | {row['build_s']} | {row['rss_growth_mib']} | "
          f"{row['query_ms_p50']} | {row['query_ms_p99']} |")
    report = {"benchmark": "text_index", "date": date.today().isoformat(),
              "command": "python tools/bench_text_index.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{platform.machine()}, 2-core VM (shared)", "queries": args.queries,
              "content_candidates": args.content_candidates, "text_candidates": args.text_candidates, **row}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
