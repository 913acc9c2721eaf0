"""Indexing fleet benchmark: images/s per worker per model, 1 -> 2 worker scaling, and what
adaptive sampling saves and costs.

    nice .venv/bin/python tools/bench_fleet.py --toy                  # tests' small conv models
    nice .venv/bin/python tools/bench_fleet.py --zoo bundled --encoder bundled

Prints tables and writes JSON to docs/benchmarks/fleet-<models>.json. Timings are on whatever
this machine is doing besides; the JSON records the CPU count and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from modelverse.bench import toy_models
from modelverse.cli.output import print_table
from modelverse.core.collection import Collection
from modelverse.core.moments import l2_normalize_rows
from modelverse.core.params import PAPER_SCORING
from modelverse.core.reference import ExactSearch
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK, ModelStats
from modelverse.core.types import Method
from modelverse.fleet.adaptive import DEFAULT_TOLERANCE
from modelverse.fleet.config import FleetConfig
from modelverse.fleet.embedded import run_job
from modelverse.fleet.job_records import JobSpec, JobState
from modelverse.fleet.local_fleet import RedisServer, start_worker, wait_until
from modelverse.fleet.plan import SamplePlan, chunk_seed
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.requests import ModelRequest, bundled_requests, read_manifest
from modelverse.fleet.resolve import Runtime
from modelverse.fleet.fleet_state import LocalState
from modelverse.fleet.submit import submit_jobs
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata

QUERY_VERSION = 0  # stats versions start at 1, so query seeds never collide with chunk seeds


def toy_requests(count: int) -> list[ModelRequest]:
    return [
        ModelRequest(ModelMetadata(id=f"toy/conv-{i}"), f"{toy_models.GENERATOR_SPEC}?seed={i}&resolution=32")
        for i in range(count)
    ]


# -- 1. images per second per worker process, per model -----------------------------------------


def throughput(requests: Sequence[ModelRequest], encoder: str, chunk: int, repeats: int) -> list[dict[str, Any]]:
    runtime = Runtime(torch_threads=1)
    enc = runtime.encoder(encoder)
    rows = []
    for request in requests:
        try:
            generator = runtime.generator(request.generator)
            enc.encode_pixels(generator.sample(min(chunk, 16), 0))  # warm-up: lazy init, allocator
        except Exception as exc:  # noqa: BLE001  (a broken model is a row of the table, not the end)
            print(f"{request.model_id}: cannot be benchmarked: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
            rows.append({"model_id": request.model_id, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
            continue
        sample_s = encode_s = 0.0
        for r in range(repeats):
            t0 = time.perf_counter()
            images = generator.sample(chunk, chunk_seed(request.model_id, 1, r))
            t1 = time.perf_counter()
            enc.encode_pixels(images)
            t2 = time.perf_counter()
            sample_s, encode_s = sample_s + t1 - t0, encode_s + t2 - t1
        n = chunk * repeats
        rows.append({
            "model_id": request.model_id,
            "resolution": generator.resolution,
            "images": n,
            "images_per_s": n / (sample_s + encode_s),
            "sampling_images_per_s": n / sample_s,
            "encoding_images_per_s": n / encode_s,
        })
    return rows


# -- 2. scaling from one worker to two ------------------------------------------------------------


def scaling(requests: Sequence[ModelRequest], encoder: str, samples: int, chunk: int,
            workers: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        config = FleetConfig(broker_url=server.url, visibility_timeout_s=600)
        store = RedisFleetState.from_url(server.url)
        try:
            for count in workers:
                procs = [start_worker(config, f"bench{count}-{i}", Path(tmp) / "logs")
                         for i in range(count)]
                try:
                    for proc in procs:
                        proc.wait_ready()
                    # Warm every process (imports, encoder load) so the timing is the steady state.
                    warm = submit_jobs(config, [ModelRequest(r.metadata, r.generator) for r in requests[:1]] * 1,
                                       encoder, SamplePlan(chunk * count * 2, chunk))
                    wait_until(lambda warm=warm: all(store.get_job(j.job_id).state.finished for j in warm), 1800, "warm-up")
                    start = time.perf_counter()
                    records = submit_jobs(config, requests, encoder, SamplePlan(samples, chunk))
                    wait_until(lambda records=records: all(store.get_job(j.job_id).state.finished for j in records), 3600,
                               "the scaling run", interval_s=0.2)
                    wall = time.perf_counter() - start
                    done = [store.get_job(j.job_id) for j in records]
                    failed = [r.error for r in done if r is not None and r.state is JobState.FAILED]
                    if failed:
                        raise RuntimeError(f"scaling run failed: {failed[0]}")
                finally:
                    for proc in procs:
                        proc.stop()
                total = samples * len(requests)
                rows.append({"workers": count, "models": len(requests), "images": total, "wall_s": wall,
                             "images_per_s": total / wall})
        finally:
            server.stop()
    base = rows[0]["images_per_s"] / rows[0]["workers"]
    for row in rows:
        row["speedup_vs_one"] = row["images_per_s"] / rows[0]["images_per_s"]
        row["efficiency"] = row["images_per_s"] / (base * row["workers"])
    return rows


# -- 3. adaptive sampling: samples saved, statistics and retrieval change -------------------------


QuerySet = list[tuple[str, np.ndarray, frozenset[str]]]  # (kind, normalised vector, ground truth ids)


def sample_queries(runtime: Runtime, requests: Sequence[ModelRequest], encoder: str, per_model: int) -> QuerySet:
    """Fresh samples of each model (seeds no chunk uses) as image queries for that model."""
    enc = runtime.encoder(encoder)
    out: QuerySet = []
    for request in requests:
        images = runtime.generator(request.generator).sample(per_model, chunk_seed(request.model_id, QUERY_VERSION, 0))
        out += [("image", v, frozenset({request.model_id})) for v in l2_normalize_rows(enc.encode_pixels(images))]
    return out


def zoo_queries(runtime: Runtime, requests: Sequence[ModelRequest], encoder: str, per_model: int) -> QuerySet:
    """The zoo's benchmark queries: each model's query text, and held-out real images of the
    class it was trained on (ground truth: every model trained on that class)."""
    from modelverse import zoo

    enc = runtime.encoder(encoder)
    wanted = {r.model_id for r in requests}
    entries = [e for e in zoo.bundled_manifest() if e.id in wanted]
    out: QuerySet = []
    texts = l2_normalize_rows(enc.encode_texts([e.query_text for e in entries]))
    out += [("text", v, frozenset({e.id})) for e, v in zip(entries, texts)]
    by_class: dict[tuple[str, str], set[str]] = {}
    for e in entries:
        if e.data is not None:
            by_class.setdefault((e.data["dataset"], e.data["class"]), set()).add(e.id)
    for (dataset, name), ids in by_class.items():
        images = zoo.heldout_images(dataset, name, limit=per_model)
        out += [("image", v, frozenset(ids)) for v in l2_normalize_rows(enc.encode_pixels(images))]
    return out


METHODS = {"text": (Method.FIRST_MOMENT, Method.MGF), "image": (Method.FIRST_MOMENT, Method.GAUSSIAN)}


def _retrieval(stats: dict[str, ModelStats], queries: QuerySet) -> dict[str, float]:
    ids = np.array(sorted(stats))
    search = ExactSearch(Collection.from_stats(list(ids), [stats[i] for i in ids]), PAPER_SCORING)
    hits: dict[str, list[tuple[bool, bool]]] = {}
    for kind, q, truth in queries:
        for method in METHODS[kind]:
            order = ids[np.argsort(-search.score_vector(q, method), kind="stable")]
            hits.setdefault(f"{kind}/{method.value}", []).append((order[0] in truth, bool(set(order[:5]) & truth)))
    out = {}
    for key, rows in hits.items():
        out[f"{key} top1"] = float(np.mean([r[0] for r in rows]))
        out[f"{key} top5"] = float(np.mean([r[1] for r in rows]))
    return out


def adaptive(requests: Sequence[ModelRequest], encoder: str, plan: SamplePlan, queries_per_model: int,
             from_zoo: bool) -> dict[str, Any]:
    assert plan.adaptive
    fixed_plan = SamplePlan(plan.max_samples, plan.chunk_size)
    runtime = Runtime(torch_threads=1)
    shared: dict[str, Any] = {}
    rows, full, adapted = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        fixed_state = LocalState(f"{tmp}/fixed", keep_partials=True, partials=shared)
        adaptive_state = LocalState(f"{tmp}/adaptive", keep_partials=True, partials=shared)
        for request in requests:
            def spec(p: SamplePlan, request: ModelRequest = request) -> JobSpec:
                return JobSpec.new(request.metadata, request.generator, encoder, 1, p, DEFAULT_RANK, DEFAULT_EPS)
            t0 = time.perf_counter()
            fixed_record = run_job(fixed_state, spec(fixed_plan), runtime)
            t1 = time.perf_counter()
            record = run_job(adaptive_state, spec(plan), runtime)  # reuses the fixed run's chunks
            if fixed_record.state is not JobState.DONE or record.state is not JobState.DONE:
                raise RuntimeError(f"{request.model_id}: {fixed_record.error or record.error}")
            f = DirectoryStore.open(f"{tmp}/fixed").get_stats(request.model_id)
            a = DirectoryStore.open(f"{tmp}/adaptive").get_stats(request.model_id)
            full[request.model_id], adapted[request.model_id] = f, a
            cos = float(a.mean @ f.mean / np.linalg.norm(a.mean) / np.linalg.norm(f.mean))
            rows.append({
                "model_id": request.model_id,
                "samples_fixed": fixed_plan.max_samples,
                "samples_adaptive": record.samples_used,
                "saved": 1 - record.samples_used / fixed_plan.max_samples,
                "standard_error_at_stop": record.converged_change,
                "mean_cosine_to_fixed": cos,
                "covariance_rel_error": float(np.linalg.norm(a.covariance - f.covariance) / np.linalg.norm(f.covariance)),
                "fixed_run_s": t1 - t0,
            })
        make_queries = zoo_queries if from_zoo else sample_queries
        queries = make_queries(runtime, requests, encoder, queries_per_model)
    used = sum(r["samples_adaptive"] for r in rows)
    return {
        "plan": plan.to_dict(),
        "models": rows,
        "total_samples_fixed": fixed_plan.max_samples * len(rows),
        "total_samples_adaptive": used,
        "total_saved": 1 - used / (fixed_plan.max_samples * len(rows)),
        "queries_per_model": queries_per_model,
        "queries": len(queries),
        "retrieval_fixed": _retrieval(full, queries),
        "retrieval_adaptive": _retrieval(adapted, queries),
    }


def synthetic_convergence(models: int, dim: int, round_samples: int, rounds: int, tolerance: float) -> list[dict[str, Any]]:
    """Where the criterion (``fleet.adaptive``: the standard error of a typical query's score)
    stops on synthetic CLIP-like features (modelverse.synthetic), which are cheap enough to draw
    50,000 samples of. No floor here: the first round end at or under ``tolerance``."""
    from modelverse.core.moments import PartialMoments
    from modelverse.fleet.adaptive import score_standard_error
    from modelverse.synthetic import SyntheticZoo

    rows = []
    for model in SyntheticZoo(dim=dim).models(models):
        merged, errors, stop = None, [], None
        for r in range(rounds):
            part = PartialMoments.from_samples(l2_normalize_rows(model.sample_features(round_samples, seed=r)))
            merged = part if merged is None else merged.merge(part)
            errors.append(score_standard_error(merged))
            if stop is None and errors[-1] <= tolerance:
                stop = merged.count
        rows.append({"model_id": model.id, "converged_at": stop, "standard_errors": errors})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--toy", type=int, nargs="?", const=10, metavar="N", help="N random conv models from tests/")
    which.add_argument("--zoo", choices=["bundled"])
    which.add_argument("--manifest", metavar="FILE")
    which.add_argument("--synthetic", action="store_true",
                       help="only the adaptive criterion on synthetic 512-d features (no models, no encoder)")
    parser.add_argument("--encoder", default=None, help="encoder spec (default: bundled; --toy: the tests' conv encoder)")
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--throughput-repeats", type=int, default=4, help="chunks timed per model")
    parser.add_argument("--scaling-samples", type=int, default=2000, help="samples per model in the scaling run")
    parser.add_argument("--scaling-models", type=int, default=4)
    parser.add_argument("--max-samples", type=int, default=20_000, help="fixed N / adaptive ceiling")
    parser.add_argument("--min-samples", type=int, default=2000)
    parser.add_argument("--round-samples", type=int, default=2000)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--queries-per-model", type=int, default=20)
    parser.add_argument("--adaptive-models", action="append", default=[], metavar="TEXT",
                        help="only models whose id contains TEXT in the adaptive study (repeatable)")
    parser.add_argument("--throughput-models", action="append", default=[], metavar="TEXT",
                        help="only models whose id contains TEXT in the throughput table (repeatable)")
    parser.add_argument("--skip", action="append", default=[], choices=["throughput", "scaling", "adaptive"])
    parser.add_argument("--out", default=None, help="JSON output (default: docs/benchmarks/fleet-<models>.json)")
    args = parser.parse_args(argv)

    if args.synthetic:
        rows = synthetic_convergence(5, 512, args.round_samples, args.max_samples // args.round_samples, args.tolerance)
        print(f"synthetic d=512: first N where a typical query's score has standard error <= {args.tolerance} nats "
              f"(rounds of {args.round_samples})")
        print_table(["model", "converged at", "standard error per round"],
                    [[r["model_id"], r["converged_at"], " ".join(f"{e:.3f}" for e in r["standard_errors"][:14])] for r in rows])
        out = Path(args.out) if args.out else ROOT / "docs" / "benchmarks" / "fleet-synthetic.json"
        out.write_text(json.dumps({"round_samples": args.round_samples, "tolerance": args.tolerance,
                                   "max_samples": args.max_samples, "models": rows}, indent=1) + "\n")
        print(f"wrote {out}")
        return 0

    if args.toy:
        requests, encoder, label = toy_requests(args.toy), args.encoder or toy_models.ENCODER_SPEC, "toy"
    elif args.zoo:
        requests, encoder, label = bundled_requests(), args.encoder or "bundled", "zoo"
    else:
        requests, named = read_manifest(args.manifest)
        encoder, label = args.encoder or named or "bundled", Path(args.manifest).stem

    result: dict[str, Any] = {
        "models": label, "encoder": encoder, "cpus": os.cpu_count(), "load_average": os.getloadavg(),
        "chunk_size": args.chunk_size, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = Path(args.out) if args.out else ROOT / "docs" / "benchmarks" / f"fleet-{label}.json"

    def save() -> None:  # after every section, so a long run keeps what it measured
        out.write_text(json.dumps(result, indent=1) + "\n")

    if "throughput" not in args.skip:
        timed = [r for r in requests if not args.throughput_models or any(k in r.model_id for k in args.throughput_models)]
        rows = throughput(timed, encoder, args.chunk_size, args.throughput_repeats)
        result["throughput"] = rows
        save()
        print("\nimages/s per worker process (1 torch thread), sampling + encoding")
        print_table(["model", "res", "images/s", "sampling/s", "encoding/s"],
                    [[r["model_id"], r.get("resolution"), r.get("images_per_s", "error"), r.get("sampling_images_per_s"),
                      r.get("encoding_images_per_s")] for r in rows])
    if "scaling" not in args.skip:
        rows = scaling(requests[: args.scaling_models], encoder, args.scaling_samples, args.chunk_size, [1, 2])
        result["scaling"] = rows
        save()
        print("\nfleet throughput (real Celery workers on a private redis-server)")
        print_table(["workers", "models", "images", "wall s", "images/s", "speed-up", "efficiency"],
                    [[r["workers"], r["models"], r["images"], r["wall_s"], r["images_per_s"], r["speedup_vs_one"],
                      r["efficiency"]] for r in rows])
    if "adaptive" not in args.skip:
        plan = SamplePlan(args.max_samples, args.chunk_size, args.min_samples, args.round_samples, args.tolerance)
        chosen = [r for r in requests if not args.adaptive_models or any(k in r.model_id for k in args.adaptive_models)]
        res = adaptive(chosen, encoder, plan, args.queries_per_model, from_zoo=bool(args.zoo))
        result["adaptive"] = res
        save()
        print(f"\nadaptive sampling (floor {plan.min_samples}, ceiling {plan.max_samples}, tolerance {plan.tolerance})")
        print_table(["model", "fixed", "adaptive", "saved", "se at stop", "cos(mean)", "cov rel err"],
                    [[r["model_id"], r["samples_fixed"], r["samples_adaptive"], r["saved"], r["standard_error_at_stop"],
                      r["mean_cosine_to_fixed"], r["covariance_rel_error"]] for r in res["models"]])
        print(f"total: {res['total_samples_adaptive']} of {res['total_samples_fixed']} samples "
              f"({res['total_saved']:.1%} saved)")
        print_table(["retrieval", "fixed", "adaptive"],
                    [[key, value, res["retrieval_adaptive"][key]] for key, value in res["retrieval_fixed"].items()])
    save()
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
