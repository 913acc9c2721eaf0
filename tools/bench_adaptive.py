"""Adaptive sample count on the bundled zoo: samples saved, and the retrieval quality it keeps.

    python tools/bench_adaptive.py --cache /work/qcache                  # ceiling 10,000
    python tools/bench_adaptive.py --cache /work/qcache --ceiling 2000 --tolerance 1.0,1.5,2.0

No sampling: the quality benchmark's feature cache (``evaluation.sample_features``, filled by
tools/bench_quality.py) holds every model's chunks exactly as the fleet draws them (chunk i at
stats version 1), so replaying the fleet's rule (``fleet.adaptive.replay``) over the cached chunk
stream gives the fleet's stopping point for that chunk size (tests/test_adaptive.py checks this
against ``fleet.embedded.index_embedded``).

For each tolerance: every model's samples used (against the fixed ceiling) and the standard
error of a typical query's score when it stopped. Quality: the default method of each modality
(text and sketch: 1st + 2nd moment; image and image set: Gaussian; both on the compressed second
order the store serves) and the first moment, top-1 and mAP@10 over the quality benchmark's queries,
with every model summarised (a) from the fixed ceiling, (b) from its adaptive samples and, as the
benchmark's own sampling noise, (c, d) from two disjoint halves of the ceiling's chunks: two fixed
runs with different seeds. ``--full`` also runs the whole quality benchmark (every method, Monte
Carlo included) at the fixed ceiling and the adaptive counts.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCORERS = {  # modality -> (the modality's default method (query.parts.default_method), the first moment)
    "text": ("mgf", "first_moment"),
    "image": ("gaussian", "first_moment"),
    "sketch": ("mgf", "first_moment"),
    "image_set": ("gaussian", "first_moment"),
}
MODALITIES = tuple(DEFAULT_SCORERS)
PAPER_N = 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from modelverse.fleet.adaptive import (
        DEFAULT_MIN_SAMPLES,
        DEFAULT_ROUND_SAMPLES,
        DEFAULT_TOLERANCE,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=REPO / ".modelverse" / "quality-cache",
                        help="the quality benchmark's feature cache (default: %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=500, help="the cache's samples per chunk")
    parser.add_argument("--encoder", default="bundled")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--models", default="all", help="comma-separated zoo ids, or 'all'")
    parser.add_argument("--ceiling", type=int, default=10_000, help="the fixed N compared against, and the ceiling")
    parser.add_argument("--min-samples", type=int, default=DEFAULT_MIN_SAMPLES, help="floor")
    parser.add_argument("--round-samples", type=int, default=DEFAULT_ROUND_SAMPLES)
    parser.add_argument("--tolerance", default=str(DEFAULT_TOLERANCE),
                        help="nats, comma-separated: the first is the rule reported per model, all are compared")
    parser.add_argument("--no-noise", action="store_true", help="skip the two half-ceiling runs")
    parser.add_argument("--full", action="store_true", help="also the whole quality benchmark (slow)")
    parser.add_argument("--per-group", type=int, default=10, help="pictures per query group")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks" / "adaptive-zoo.json")
    return parser.parse_args(argv)


# -- replay -----------------------------------------------------------------------------------


# The first criterion (fleet.adaptive's module doc: "Why not the change between rounds"), kept
# here for the comparison only: the largest change of 64 random unit probes' 1st + 2nd moment
# scores at the paper's tau since the previous round.
FORMER_PROBES = 64
FORMER_PROBE_SEED = 20231211


def former_probe_set(dim: int) -> np.ndarray:
    probes = np.random.default_rng(FORMER_PROBE_SEED).standard_normal((FORMER_PROBES, dim))
    return probes / np.linalg.norm(probes, axis=1, keepdims=True)


def former_probe_scores(moments, probes: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    from modelverse.fleet.adaptive import CRITERION_TAU

    first = probes @ moments.mean
    second = np.einsum("pi,ij,pj->p", probes, moments.covariance(), probes)
    return CRITERION_TAU * first + 0.5 * CRITERION_TAU**2 * second


def former_rule_changes(cache, model_id: str, chunks: int, step: int) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]
    """The first criterion's value after every ``step`` chunks: (samples, change in nats)."""
    from modelverse.core.moments import PartialMoments

    merged, previous, out = None, None, []
    for index in range(chunks):
        part = PartialMoments.from_samples(np.load(cache.chunk_path(model_id, index)))
        merged = part if merged is None else merged.merge(part)
        if (index + 1) % step == 0:
            scores = former_probe_scores(merged, former_probe_set(merged.dim))
            if previous is not None:
                out.append((merged.count, float(np.max(np.abs(scores - previous)))))
            previous = scores
    return out


# -- quality of one collection with the default scorers ----------------------------------------


def collection_from_chunks(cache, chunks: Mapping[str, range]):  # type: ignore[no-untyped-def]
    """Statistics of each model from the given chunks (merged in chunk order), no raw samples."""
    from functools import reduce

    from modelverse.core.collection import Collection
    from modelverse.core.moments import PartialMoments
    from modelverse.core.stats import summarize

    ids = list(chunks)
    stats = []
    for model_id in ids:
        parts = [PartialMoments.from_samples(np.load(cache.chunk_path(model_id, i))) for i in chunks[model_id]]
        stats.append(summarize(reduce(PartialMoments.merge, parts), keep_covariance=False))
    return Collection.from_stats(ids, stats)


def per_query_metrics(collection, encoded, suite) -> dict[str, dict[str, list[dict[str, float]]]]:  # type: ignore[no-untyped-def]
    """modality -> method -> one metrics dict per query (as quality.evaluate computes them)."""
    from modelverse.core.params import PAPER_SCORING
    from modelverse.core.ranking import top_k
    from modelverse.core.reference import ExactSearch
    from modelverse.core.types import Method
    from modelverse.evaluation.retrieval_metrics import query_metrics, relevant_by_tags

    search = ExactSearch(collection, PAPER_SCORING)  # the adaptive study scores at the paper's tau
    ids = collection.ids
    all_tags = set().union(*suite.tags.values())
    out: dict[str, dict[str, list[dict[str, float]]]] = {}
    for modality in MODALITIES:
        out[modality] = {}
        for method in DEFAULT_SCORERS[modality]:
            rows = []
            for query in encoded[modality]:
                values = np.mean([search.score_vector(v, Method(method)) for v in query.vectors], axis=0)
                ranking = [hit.id for hit in top_k(ids, values, len(ids))]
                relevant = relevant_by_tags(query.ground_truth, suite.tags, all_tags)
                rows.append(query_metrics(ranking, query.ground_truth, relevant))
            out[modality][method] = rows
    return out


def headline(metrics: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, dict[str, float]]:
    """'modality/method' -> mean top-1 and mAP@10."""
    return {
        f"{modality}/{method}": {key: float(np.mean([r[key] for r in rows])) for key in ("top1", "map10")}
        for modality, methods in metrics.items()
        for method, rows in methods.items()
    }


def per_model_quality(metrics, encoded, model_id: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Mean top-1 / mAP@10 over the queries whose ground truth holds ``model_id``, each with its
    modality's default method."""
    rows = [
        row
        for modality in MODALITIES
        for query, row in zip(encoded[modality], metrics[modality][DEFAULT_SCORERS[modality][0]])
        if model_id in query.ground_truth
    ]
    if not rows:
        return {"queries": 0}
    return {"queries": len(rows), **{k: float(np.mean([r[k] for r in rows])) for k in ("top1", "map10")}}


def noise_band(a, b, key: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Two standard errors of the mean per-query difference between two independent runs."""
    modality, method = key.split("/")
    band = {}
    for k in ("top1", "map10"):
        diffs = np.array([x[k] - y[k] for x, y in zip(a[modality][method], b[modality][method])])
        band[k] = float(2 * diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
    return band


def top1_flips(a, b) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Queries whose top-1 hit changed between two runs, per modality and method."""
    return {
        f"{modality}/{method}": int(sum(x["top1"] != y["top1"] for x, y in zip(a[modality][method], b[modality][method])))
        for modality in MODALITIES
        for method in DEFAULT_SCORERS[modality]
    }


# -- main -------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    from modelverse.cli.output import print_table

    print_table(headers, rows)
    print()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from modelverse.core.params import PAPER_SCORING
    from modelverse.encoders import encoder_id, load_encoder
    from modelverse.evaluation.quality import collection_at, encode_suite, evaluate
    from modelverse.evaluation.quality_queries import build_suite
    from modelverse.evaluation.sample_features import FeatureCache
    from modelverse.fleet.adaptive import score_standard_error
    from modelverse.fleet.plan import SamplePlan
    from modelverse.zoo import bundled_manifest

    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    tolerances = [float(t) for t in args.tolerance.split(",")]
    entries = bundled_manifest()
    if args.models != "all":
        wanted = args.models.split(",")
        entries = [e for e in entries if e.id in wanted]
        if len(entries) != len(set(wanted)):
            print("error: not every model is in the bundled zoo", file=sys.stderr)
            return 2
    ids = [e.id for e in entries]
    encoder = load_encoder(args.encoder, precision=args.precision)
    cache = FeatureCache(args.cache, encoder_id(encoder), args.precision, args.chunk_size)
    total_chunks = cache.chunks_for(args.ceiling)
    missing = {m: cache.missing(m, args.ceiling) for m in ids}
    missing = {m: chunks for m, chunks in missing.items() if chunks}
    if missing:
        print(f"error: {len(missing)} models lack chunks for N = {args.ceiling:,} in {cache.directory} "
              f"(e.g. {next(iter(missing))}: {len(next(iter(missing.values())))} chunks); fill it with "
              "tools/bench_quality.py", file=sys.stderr)
        return 2

    # 1. Replays: the fleet's stopping point for every model and tolerance.
    started = time.perf_counter()
    plans = {t: SamplePlan(args.ceiling, args.chunk_size, min_samples=min(args.min_samples, args.ceiling),
                           round_samples=args.round_samples, tolerance=t) for t in tolerances}
    replays = {t: {m: cache.replay_adaptive(m, plan) for m in ids} for t, plan in plans.items()}
    fixed_se = {m: score_standard_error(cache.moments(m, args.ceiling)) for m in ids}
    step = max(1, args.round_samples // args.chunk_size)
    former = {m: former_rule_changes(cache, m, total_chunks, step) for m in ids}
    say(f"replayed {len(ids)} models x {len(tolerances)} tolerances in {time.perf_counter() - started:.0f} s")

    # 2. Quality with the default scorers: fixed ceiling, adaptive, and two disjoint fixed halves.
    suite = build_suite(entries, per_group=args.per_group)
    encoded = encode_suite(suite, encoder)
    runs: dict[str, dict[str, range]] = {"fixed": {m: range(total_chunks) for m in ids}}
    for t in tolerances:
        runs[f"adaptive {t:g}"] = {m: range(replays[t][m].chunks) for m in ids}
    if not args.no_noise:
        half = total_chunks // 2
        runs["half A"] = {m: range(half) for m in ids}
        runs["half B"] = {m: range(half, 2 * half) for m in ids}
    metrics = {}
    for name, chunks in runs.items():
        tick = time.perf_counter()
        metrics[name] = per_query_metrics(collection_from_chunks(cache, chunks), encoded, suite)
        say(f"{name}: scored {sum(len(q) for q in encoded.values())} queries in {time.perf_counter() - tick:.0f} s")
    heads = {name: headline(m) for name, m in metrics.items()}

    # 3. Tables.
    rule = tolerances[0]
    main_name = f"adaptive {rule:g}"
    chosen = replays[rule]
    print(f"Adaptive rule: standard error of a typical query's score <= {rule:g} nats, floor "
          f"{args.min_samples:,}, rounds of {args.round_samples:,}, ceiling {args.ceiling:,}, chunks of "
          f"{args.chunk_size}\n")
    model_rows = []
    for m in ids:
        fixed_q = per_model_quality(metrics["fixed"], encoded, m)
        adaptive_q = per_model_quality(metrics[main_name], encoded, m)
        r = chosen[m]
        model_rows.append({
            "model_id": m, "samples_fixed": args.ceiling, "samples_adaptive": r.samples,
            "converged": r.converged, "se_at_stop": r.rounds[-1].standard_error if r.rounds else fixed_se[m],
            "se_fixed": fixed_se[m], "queries": fixed_q["queries"],
            "quality_fixed": fixed_q, "quality_adaptive": adaptive_q,
            "samples_by_tolerance": {f"{t:g}": replays[t][m].samples for t in tolerances},
        })

    def change(row: dict[str, object], key: str) -> str:
        f, a = row["quality_fixed"], row["quality_adaptive"]  # type: ignore[assignment]
        if not f.get("queries"):  # type: ignore[union-attr]
            return "-"
        return f"{f[key]:.2f} -> {a[key]:.2f}"  # type: ignore[index]

    _table(["model", "fixed", "adaptive", "saved", "se stop", "se fixed", "queries", "top-1", "mAP@10"],
           [[r["model_id"], f"{args.ceiling:,}", f"{r['samples_adaptive']:,}",
             f"{1 - r['samples_adaptive'] / args.ceiling:.0%}", f"{r['se_at_stop']:.2f}", f"{r['se_fixed']:.2f}",
             r["queries"], change(r, "top1"), change(r, "map10")] for r in model_rows])

    fixed_total = args.ceiling * len(ids)
    totals = {}
    for t in tolerances:
        used = sum(replays[t][m].samples for m in ids)
        totals[f"{t:g}"] = {"samples_fixed": fixed_total, "samples_adaptive": used, "saved": fixed_total - used,
                            "fraction_saved": 1 - used / fixed_total,
                            "models_at_ceiling": sum(replays[t][m].samples >= args.ceiling for m in ids)}
        # The paper's N as the ceiling, extrapolated: se falls like 1/sqrt(n), so a model needs
        # about ceiling * (se at the ceiling / t)^2 samples, rounded up to a round's end.
        need = {m: args.ceiling * (fixed_se[m] / t) ** 2 for m in ids}
        ends = {m: args.min_samples + max(0, int(np.ceil((need[m] - args.min_samples) / args.round_samples)))
                * args.round_samples for m in ids}
        paper = sum(min(PAPER_N, ends[m]) for m in ids)
        totals[f"{t:g}"]["extrapolated_paper_n"] = {
            "ceiling": PAPER_N, "samples_adaptive": paper, "fraction_saved": 1 - paper / (PAPER_N * len(ids)),
            "models_at_ceiling": sum(ends[m] >= PAPER_N for m in ids)}
    _table(["tolerance (nats)", "samples", "saved", "fraction saved", "models at ceiling",
            f"extrapolated to a {PAPER_N:,} ceiling: saved"],
           [[t, f"{v['samples_adaptive']:,} of {fixed_total:,}", f"{v['saved']:,}",
             f"{v['fraction_saved']:.1%}", v["models_at_ceiling"],
             f"{v['extrapolated_paper_n']['fraction_saved']:.1%} ({v['extrapolated_paper_n']['models_at_ceiling']} at it)"]
            for t, v in totals.items()])

    former_limit = 0.05
    former_rows = {m: {"changes": [[n, c] for n, c in former[m]],
                       "first_below": next((n for n, c in former[m] if c <= former_limit and n >= args.min_samples), None)}
                   for m in ids}
    below = [m for m in ids if former_rows[m]["first_below"] is not None]
    last = [former[m][-1][1] for m in ids if former[m]]
    print(f"The first criterion (probe score change <= {former_limit} nats between rounds of {args.round_samples:,}): "
          f"{len(below)} of {len(ids)} models met it by {args.ceiling:,} samples"
          + (" (" + ", ".join(f"{m} at {former_rows[m]['first_below']:,}" for m in below) + ")" if below else "")
          + (f"; the last round's change was {min(last):.3f}-{max(last):.3f} nats (median {np.median(last):.3f})"
             if last else "") + "\n")

    names = list(runs)
    quality_rows = []
    for key in heads["fixed"]:
        row: dict[str, object] = {"queries": key, "count": len(encoded[key.split("/")[0]])}
        for name in names:
            row[name] = heads[name][key]
        if not args.no_noise:
            row["noise"] = {k: abs(heads["half A"][key][k] - heads["half B"][key][k]) for k in ("top1", "map10")}
            row["noise_band"] = noise_band(metrics["half A"], metrics["half B"], key)
        quality_rows.append(row)
    _table(["queries", "method", *names, *(["|A - B|", "noise band"] if not args.no_noise else [])],
           [[f"{r['queries'].split('/')[0]} ({r['count']})", r["queries"].split("/")[1],  # type: ignore[union-attr]
             *(f"{r[n]['top1']:.3f} / {r[n]['map10']:.3f}" for n in names),  # type: ignore[index]
             *([f"{r['noise']['top1']:.3f} / {r['noise']['map10']:.3f}",  # type: ignore[index]
                f"{r['noise_band']['top1']:.3f} / {r['noise_band']['map10']:.3f}"] if not args.no_noise else [])]  # type: ignore[index]
            for r in quality_rows])
    flips = {name: top1_flips(metrics["fixed"], metrics[name]) for name in names if name != "fixed"}
    if not args.no_noise:
        flips["half A vs half B"] = top1_flips(metrics["half A"], metrics["half B"])
    _table(["queries whose top-1 hit changed", *flips], [[k, *(f[k] for f in flips.values())] for k in flips[names[1]]])

    # "Within noise": no headline cell moves further from the fixed run than the noise band (two
    # standard errors of the mean per-query difference between the two independent half runs)
    # or than those two runs actually differ.
    exceeds: dict[str, list[str]] = {}
    if not args.no_noise:
        for t in tolerances:
            name = f"adaptive {t:g}"
            exceeds[name] = [
                f"{r['queries']} {k}: {r[name][k] - r['fixed'][k]:+.3f} (noise {r['noise_band'][k]:.3f})"  # type: ignore[index]
                for r in quality_rows for k in ("top1", "map10")
                if abs(r[name][k] - r["fixed"][k]) > max(r["noise"][k], r["noise_band"][k]) + 1e-12  # type: ignore[index, operator]
            ]
            print(f"{name}: " + ("within noise in every cell" if not exceeds[name] else
                                 "outside noise: " + "; ".join(exceeds[name])))
        print()

    full_rows: dict[str, list[dict[str, object]]] = {}
    if args.full:
        for name, samples in (("fixed", args.ceiling), (main_name, {m: chosen[m].samples for m in ids})):
            tick = time.perf_counter()
            full_rows[name] = evaluate(collection_at(cache, ids, samples), encoded, suite, params=PAPER_SCORING)
            say(f"full benchmark, {name}: {time.perf_counter() - tick:.0f} s")

    report = {
        "benchmark": "adaptive-zoo",
        "date": date.today().isoformat(),
        "command": "python tools/bench_adaptive.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, 2-core VM",
        "encoder": encoder_id(encoder),
        "precision": args.precision,
        "chunk_size": args.chunk_size,
        "rule": {"criterion": "standard error of a typical query's 1st+2nd moment score (nats)",
                 "tolerance": rule, "min_samples": args.min_samples, "round_samples": args.round_samples,
                 "ceiling": args.ceiling, "tau": 100.0},
        "tolerances": tolerances,
        "totals": totals,
        "models": model_rows,
        "former_rule": {"tolerance": former_limit, "round_samples": args.round_samples, "probes": 64,
                        "models": former_rows},
        "quality": quality_rows,
        "top1_flips": flips,
        "outside_noise": exceeds,
        "runs": {name: {m: [c.start, c.stop] for m, c in chunks.items()} for name, chunks in runs.items()},
        **({"full_benchmark": full_rows} if full_rows else {}),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
