"""Retrieval quality for the queries users write (issue 17): regenerates its tables.

    python tools/bench_unseen.py                 # N = 100 samples per model (the demo store's)

Steps: (1) sample and encode every zoo model's first N samples with the fleet's seeds into the
resumable feature cache of tools/bench_quality.py (``--cache``); (2) build the unseen-style
queries (evaluation/unseen_queries.py: paraphrases that avoid the manifest's words, drawings
made by code in five styles and numerals, restyled and unseen photos, no-match queries);
(3) rank the whole zoo for every query with the exact reference search under its modality's
default method, and with each variant below; (4) write the JSON (``--json``), the tables into
docs/QUALITY.md (``--tables``) and the headline into docs/BENCHMARKS.md (``--benchmarks``).

Variants: ``content`` (the search as it was), ``metadata`` (a keyword search of the names,
descriptions and tags), and those added by issue 17 (hybrid text, sketch preparation,
confidence), each in its own table row.
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
    parser.add_argument("--samples", type=int, default=100, help="samples per model N (default: the demo store's)")
    parser.add_argument("--chunk-size", type=int, default=100, help="samples per chunk (N a multiple of it)")
    parser.add_argument("--cache", type=Path, default=REPO / ".modelverse" / "quality-cache")
    parser.add_argument("--encoder", default="bundled")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--processes", type=int, default=1, help="sampling processes (one core each)")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks" / "unseen.json")
    parser.add_argument("--tables", type=Path, default=REPO / "docs" / "QUALITY.md",
                        help="file whose generated 'unseen-tables' section gets the tables")
    parser.add_argument("--benchmarks", default=str(REPO / "docs" / "BENCHMARKS.md"),
                        help="file whose generated section gets the headline table ('' to skip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from modelverse.core.params import ScoringParams
    from modelverse.core.stats import DEFAULT_EPS, DEFAULT_TAU
    from modelverse.encoders import encoder_id, load_encoder
    from modelverse.evaluation.quality import collection_at
    from modelverse.evaluation.quality_report import replace_section
    from modelverse.evaluation.sample_features import FeatureCache, fill
    from modelverse.evaluation.unseen_queries import build_unseen_suite
    from modelverse.evaluation.unseen_report import evaluate_unseen, headline_table, tables
    from modelverse.zoo import bundled_manifest

    entries = bundled_manifest()
    ids = [e.id for e in entries]
    encoder = load_encoder(args.encoder, precision=args.precision)
    cache = FeatureCache(args.cache, encoder_id(encoder), args.precision, args.chunk_size)
    cache.chunks_for(args.samples)
    made = fill(cache, ids, [args.samples], encoder_spec=args.encoder, processes=args.processes)
    print(f"feature cache ready ({made} chunks made): {cache.directory}", file=sys.stderr)
    tau = getattr(encoder, "temperature", None) or DEFAULT_TAU
    params = ScoringParams(tau=tau, eps=DEFAULT_EPS)

    started = time.perf_counter()
    collection = collection_at(cache, ids, args.samples)
    suite = build_unseen_suite(entries)
    result = evaluate_unseen(collection, suite, encoder, entries, params)
    print(f"{len(suite)} queries scored in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    report = {
        "benchmark": "unseen",
        "date": date.today().isoformat(),
        "command": "python tools/bench_unseen.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "encoder": encoder_id(encoder),
        "precision": args.precision,
        "tau": tau,
        "samples": args.samples,
        **result,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    source = (f"`{report['command'].strip()}` ({report['date']}, encoder `{report['encoder']}`, {args.precision}, "
              f"N = {args.samples}, tau = {tau:.1f}; JSON: `{args.json.name}`)")
    body = tables(result)
    print(body)
    replace_section(args.tables, "unseen-tables", f"Made by {source}.\n\n{body}",
                    "## Unseen-style queries: tables (generated)")
    if args.benchmarks:
        replace_section(Path(args.benchmarks), "unseen-headline", f"Made by {source}.\n\n{headline_table(result)}",
                        "## Retrieval quality for the queries users write (unseen-style set)")
    print(f"wrote {args.json}, {args.tables}" + (f", {args.benchmarks}" if args.benchmarks else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
