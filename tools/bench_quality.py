"""The paper's retrieval-quality benchmark on the bundled zoo; regenerates its tables.

    python tools/bench_quality.py                        # N = 500, 2,000, 10,000 (hours on a CPU)
    python tools/bench_quality.py --samples 500 --models digits-vae-one,fashion-vae-bag,...

Steps: (1) sample and encode every model's first max(N) samples with the fleet's seeds into a
resumable feature cache (``--cache``; rerun after an interruption and it goes on); (2) build the
queries (quality_queries: held-out pictures, their line drawings, image sets, descriptions, and
the models themselves); (3) at every N, summarise each model from its first N samples and rank
the whole zoo for every query with the exact reference search, for every method, full and
compressed second order, and the metadata-only baseline; (4) write the JSON (``--json``), the
full tables (``--tables``) and the headline table in docs/BENCHMARKS.md (``--benchmarks``).

Precision: ``--precision bf16`` (the default here) encodes samples and queries alike under
bfloat16 autocast, 2.6x faster on this CPU than float32 at a feature cosine >= 0.999
(docs/ENCODERS.md); ``--precision fp32`` is the serving default.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", default="500,2000,10000", help="sample counts N, comma-separated")
    parser.add_argument("--chunk-size", type=int, default=500, help="samples per chunk (every N a multiple)")
    parser.add_argument("--models", default="all", help="comma-separated zoo ids, or 'all'")
    parser.add_argument("--cache", type=Path, default=REPO / ".modelverse" / "quality-cache")
    parser.add_argument("--encoder", default="bundled")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--processes", type=int, default=2, help="sampling processes (one core each)")
    parser.add_argument("--per-group", type=int, default=10, help="pictures per query group")
    parser.add_argument("--tau", type=float, default=None,
                        help="temperature of the Monte Carlo and 1st + 2nd moment scores (default: the encoder's "
                             "own, exp(logit_scale): 100 for CLIP, 23.2 for the bundled encoder)")
    parser.add_argument("--compare-tau", type=float, default=100.0,
                        help="also score text and image queries at this tau, at the largest N (the paper's 100)")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks" / "quality.json")
    parser.add_argument("--tables", type=Path, default=REPO / "docs" / "QUALITY.md",
                        help="file whose generated section gets every table")
    parser.add_argument("--benchmarks", default=str(REPO / "docs" / "BENCHMARKS.md"),
                        help="file whose generated section gets the headline table ('' to skip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from modelverse.encoders import encoder_id, load_encoder
    from modelverse.core.params import ScoringParams
    from modelverse.core.stats import DEFAULT_EPS, DEFAULT_TAU
    from modelverse.evaluation.quality import collection_at, encode_suite, evaluate, evaluate_temperatures
    from modelverse.evaluation.quality_queries import build_suite
    from modelverse.evaluation.quality_report import full_tables, headline_table, replace_section, temperature_table
    from modelverse.evaluation.sample_features import FeatureCache, fill
    from modelverse.zoo import bundled_manifest

    samples = sorted({int(n) for n in args.samples.split(",")})
    entries = bundled_manifest()
    if args.models != "all":
        wanted = args.models.split(",")
        unknown = sorted(set(wanted) - {e.id for e in entries})
        if unknown:
            print(f"error: not in the bundled zoo: {', '.join(unknown)}", file=sys.stderr)
            return 2
        entries = [e for e in entries if e.id in wanted]
    ids = [e.id for e in entries]
    encoder = load_encoder(args.encoder, precision=args.precision)
    cache = FeatureCache(args.cache, encoder_id(encoder), args.precision, args.chunk_size)
    tau = args.tau or getattr(encoder, "temperature", None) or DEFAULT_TAU
    for n in samples:
        cache.chunks_for(n)  # every N must be whole chunks: fail before hours of sampling

    started = time.perf_counter()
    made = fill(cache, ids, samples, encoder_spec=args.encoder, processes=args.processes)
    sampling_s = time.perf_counter() - started
    print(f"feature cache ready ({made} chunks made in {sampling_s:.0f} s): {cache.directory}", file=sys.stderr)

    suite = build_suite(entries, per_group=args.per_group)
    encoded = encode_suite(suite, encoder)
    rows: list[dict[str, object]] = []
    temperature_rows: list[dict[str, object]] = []
    for n in samples:
        tick = time.perf_counter()
        collection = collection_at(cache, ids, n)
        found = evaluate(collection, encoded, suite, params=ScoringParams(tau=tau, eps=DEFAULT_EPS))
        rows += [{"samples": n, "tau": tau, **row} for row in found]
        if n == samples[-1]:
            compared = evaluate_temperatures(collection, encoded, suite, sorted({tau, args.compare_tau}), eps=DEFAULT_EPS)
            temperature_rows = [{"samples": n, **row} for row in compared]
        print(f"N = {n:,}: {len(found)} rows in {time.perf_counter() - tick:.0f} s", file=sys.stderr)
        del collection

    counts = {modality: len(queries) for modality, queries in encoded.items()}
    counts["model"] = sum(1 for m in ids if suite.similar_model_truth(m))
    report = {
        "benchmark": "quality",
        "date": date.today().isoformat(),
        "command": "python tools/bench_quality.py " + " ".join((argv if argv is not None else sys.argv[1:])),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {torch.get_num_threads()} torch thread(s)",
        "encoder": encoder_id(encoder),
        "precision": args.precision,
        "tau": tau,
        "models": ids,
        "samples": samples,
        "chunk_size": args.chunk_size,
        "queries": counts,
        "rows": rows,
        "temperature_rows": temperature_rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")

    source = (f"`{report['command']}` ({report['date']}, encoder `{report['encoder']}`, {args.precision}, "
              f"tau = {tau:.1f}; JSON: `{args.json.name}`)")
    headline = headline_table(rows, samples)
    print(headline)
    replace_section(args.tables, "quality-tables",
                    f"Made by {source}.\n\n" + full_tables(rows, samples)
                    + f"\n### The temperature tau, N = {samples[-1]:,}\n\n" + temperature_table(temperature_rows),
                    "## Tables (generated)")
    if args.benchmarks:
        replace_section(Path(args.benchmarks), "quality-headline",
                        f"top-1 / mAP@10; made by {source}.\n\n{headline}", "## Retrieval quality on the bundled zoo")
    print(f"wrote {args.json}, {args.tables}" + (f", {args.benchmarks}" if args.benchmarks else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
