"""Second-order first stages at 100k models: the shared-basis quadratic lift against today's.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python tools/bench_quadratic_lift.py --store /tmp/scale-100k \
        --profile random --method mgf --tau 100 --out docs/benchmarks/quadratic-lift-100k.json

One store, one method and tau per run (each run adds its entry to the JSON, keyed by profile,
method, tau and query kind). ``--profile structured`` replaces every model's covariance
directions by ones drawn from a spectrum the collection shares (modelverse.bench.quadratic_lift
.structured_factors: the zoo's measured shared-basis energy), keeping each model's eigenvalues.
Stages: ``--stages 32,64,64:256`` = the lift on a basis of 32 and of 64 directions, and on 64
compressed to 256 principal directions; the baselines (today's tangent lift for MGF, the cosine
and the isotropic lift for GAUSSIAN) always run. What is measured: modelverse.bench.quadratic_lift.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from modelverse.bench import quadratic_lift as bench  # noqa: E402
from modelverse.bench.queries import make_queries, make_text_queries  # noqa: E402
from modelverse.core import quadratic_lift as ql  # noqa: E402
from modelverse.core.types import Method  # noqa: E402


def parse_stages(text: str) -> list[tuple[int, int | None]]:
    out = []
    for item in filter(None, text.split(",")):
        k, _, columns = item.partition(":")
        out.append((int(k), int(columns) if columns else None))
    return out


def image_queries(arrays: bench.StoreArrays, count: int, seed: int) -> np.ndarray:
    """Draws from the models' own Gaussians (modelverse.bench.queries.make_queries)."""
    from modelverse.core.collection import Collection
    from modelverse.core.second_order import CompressedCovariances

    second = CompressedCovariances(arrays.diag, arrays.factor, arrays.woodbury, arrays.logdet,
                                   np.zeros(len(arrays)), arrays.eps)
    collection = Collection(ids=arrays.ids, means=arrays.means, compressed=second)
    return make_queries(collection, count, seed)[0]


def check_oracle(arrays: bench.StoreArrays, forms: ql.QuadraticForms, method: Method, tau: float,
                 queries: np.ndarray, exact: np.ndarray) -> float:
    """Top-10 agreement of the vectorised exact scores with core.reference.ExactSearch (the oracle)."""
    from modelverse.core.collection import Collection
    from modelverse.core.params import ScoringParams
    from modelverse.core.reference import ExactSearch
    from modelverse.core.second_order import CompressedCovariances
    from modelverse.core.types import QueryPart

    second = CompressedCovariances(arrays.diag, arrays.factor, arrays.woodbury, arrays.logdet,
                                   np.zeros(len(arrays)), arrays.eps)
    oracle = ExactSearch(Collection(ids=arrays.ids, means=arrays.means, compressed=second),
                         ScoringParams(tau=tau, eps=arrays.eps))
    same = []
    for i, q in enumerate(queries):
        hits = [h.id for h in oracle.search([QueryPart(q)], method, bench.TOP)]
        ours = arrays.ids[np.argsort(-exact[i], kind="stable")[: bench.TOP]]
        same.append(np.mean(np.asarray(hits) == ours))
    return float(np.mean(same))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--profile", choices=("random", "structured"), default="random",
                        help="random: the store's factors as written; structured: directions from a shared spectrum")
    parser.add_argument("--method", choices=("mgf", "gaussian"), default="mgf")
    parser.add_argument("--tau", type=float, default=None, help="MGF temperature (default: the store's)")
    parser.add_argument("--models", type=int, default=None, help="only the store's first N models (a quick run)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--kind", choices=("text", "image"), default="text")
    parser.add_argument("--stages", default="32,64,64:256,64:512")
    parser.add_argument("--diagonal-weight", type=float, default=0.1,
                        help="weight of the diagonal block in the compression's principal directions")
    parser.add_argument("--timing-queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oracle-queries", type=int, default=3, help="queries checked against ExactSearch")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    method = Method(args.method)
    arrays, store_tau = bench.load_arrays(args.store)
    tau = store_tau if args.tau is None else args.tau
    if args.models:
        arrays = arrays.head(args.models)
    if args.profile == "structured":
        # Drawn once per store and seed (about a minute at 100k), kept beside the store.
        cache = args.store.with_name(f"{args.store.name}-structured-{args.seed}-{len(arrays)}.npy")
        if not cache.exists():
            np.save(cache, bench.structured_factors(arrays.factor, args.seed))
        arrays = bench.with_factor(arrays, np.load(cache, mmap_mode="r"))  # page cache, not anonymous memory
    queries = (make_text_queries(arrays.means, args.queries, args.seed + 1) if args.kind == "text"
               else image_queries(arrays, args.queries, args.seed + 1))
    forms = bench.forms_of(arrays, method, tau)
    t0 = time.perf_counter()
    exact = forms.scores_many(queries)
    exact_ms = 1000 * (time.perf_counter() - t0) / len(queries)
    oracle = check_oracle(arrays, forms, method, tau, queries[: args.oracle_queries], exact) if args.oracle_queries else None
    winners = np.argmax(exact, axis=1)
    # The share of each model's low-rank energy a basis keeps, fitted on other models (out of sample).
    half = min(len(arrays), 40000) // 2
    energy = {k: round(float(np.median(ql.kept_energy(forms.factor[:half],
                                                      ql.fit_basis(forms.factor, k, np.arange(half, 2 * half))))), 3)
              for k in (16, 32, 64, 128)}
    print(f"{len(arrays)} models, {args.profile}, {method.value}, tau {tau:g}, {len(queries)} {args.kind} queries; "
          f"exact {exact_ms:.0f} ms/query; oracle agreement {oracle}; kept energy {energy}", file=sys.stderr)
    stages = []
    if method is Method.MGF:
        stages.append(bench.tangent_stage(arrays, queries, tau))
    else:
        stages.extend(bench.gaussian_baselines(arrays, queries))
    for k, columns in parse_stages(args.stages):
        stages.append(bench.quadratic_stage(forms, queries, k, columns, args.seed, args.diagonal_weight))
        print(f"  fitted {stages[-1].name} in {stages[-1].fit_seconds:.0f} s", file=sys.stderr)
    grid = tuple(n for n in bench.GRID if n < len(arrays))  # a quick run of a few thousand models
    rerank_ms = {n: bench.time_rerank(arrays, method, tau, queries[: args.timing_queries], n) for n in grid}
    results = []
    for stage in stages:
        row = {"stage": stage.name, "notes": stage.notes, "bytes_per_model": stage.bytes_per_model,
               **bench.evaluate(stage, exact, grid)}
        if stage.search is not None:
            row["agreement_8bit"] = bench.faiss_agreement(stage, exact, grid)
            row["scan_ms"] = bench.time_search(stage, args.timing_queries, 1000)
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
        stage.estimate = stage.upper = None  # free (Q, M) arrays as we go
    top1 = np.bincount(winners, minlength=len(arrays))
    entry = {
        "key": f"{args.profile}/{method.value}/tau={tau:g}/{args.kind}",
        "store": str(args.store), "models": len(arrays), "profile": args.profile, "method": method.value,
        "tau": tau, "queries": len(queries), "kind": args.kind,
        "kept_energy_median": energy,
        "exact_ms_per_query": round(exact_ms, 1), "oracle_top10_agreement": oracle,
        "answer_concentration": {"distinct_top1": int((top1 > 0).sum()), "most_top1": int(top1.max()),
                                 "distinct_in_top10": int(np.unique(np.argsort(-exact, axis=1)[:, :10]).size)},
        "rerank_ms": rerank_ms, "stages": results,
        "machine": f"{platform.node()} {os.cpu_count()} cores (shared), one thread",
        "date": date.today().isoformat(), "seconds": round(time.perf_counter() - started),
        "command": " ".join(sys.argv),
    }
    print(table(entry))
    if args.out:
        data = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
        data["runs"] = [r for r in data["runs"] if r["key"] != entry["key"]] + [entry]
        args.out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


def table(entry: dict) -> str:
    grid = [int(n) for n in entry["rerank_ms"]]
    lines = [f"### {entry['key']} ({entry['models']} models, {entry['queries']} queries)", "",
             "| stage | B/model | scan ms | " + " | ".join(f"agree@{n}" for n in grid)
             + f" | recall@{grid[0]} | certified@{grid[-1]} | cert. median |",
             "|---" * (6 + len(grid)) + "|"]
    for row in entry["stages"]:
        agree = row.get("agreement_8bit", row["agreement"])
        cert = row.get("certified_within", {})
        lines.append(f"| {row['stage']} | {row['bytes_per_model']} | {row.get('scan_ms', '')} | "
                     + " | ".join(str(agree[n]) for n in grid)
                     + f" | {row['recall'][grid[0]]} | {cert.get(grid[-1], '')} | {row.get('certificate_size', {}).get('median', '')} |")
    lines.append("")
    lines.append("rerank ms: " + ", ".join(f"{n}: {v}" for n, v in entry["rerank_ms"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
