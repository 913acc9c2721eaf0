"""`modelverse jobs` (follow indexing jobs) and the fleet half of `modelverse index --broker`.

For ``modelverse index``: ``add_fleet_arguments(parser)`` adds the sampling and broker options,
``plan_from_args(args)`` turns them into a SamplePlan, ``submit_index(args)`` queues the models
of ``--zoo bundled`` / ``--manifest FILE`` on ``--broker`` and prints the job ids, and
``index_here(args)`` runs the same tasks in this process into ``--store``; ``run_index`` picks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from modelverse.cli.output import print_json, print_table
from modelverse.errors import InvalidInputError, NotFoundError, UnavailableError
from modelverse.fleet.adaptive import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_ROUND_SAMPLES,
    DEFAULT_SAMPLES,
    DEFAULT_TOLERANCE,
)
from modelverse.fleet.config import DEFAULT_CHUNK_SIZE, FleetConfig, read_job_secret
from modelverse.fleet.jobs import JobRecord, JobState
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.requests import (
    ModelRequest,
    bundled_requests,
    read_manifest,
    request_for_model_dir,
)
from modelverse.store.directory import DirectoryStore
from modelverse.store.errors import StoreError


class FleetUnreachableError(UnavailableError, StoreError):
    """The broker or the Redis store does not answer; printed as one line."""


@contextmanager
def _reaching(url: str) -> Iterator[None]:
    import redis
    from kombu.exceptions import OperationalError

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OperationalError) as exc:
        raise FleetUnreachableError(f"cannot reach Redis at {url} ({exc})") from exc


BAR_WIDTH = 20


# -- modelverse index: sampling options and the submit path ----------------------------------


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by embedded and fleet indexing (``--broker`` selects the fleet)."""
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="submit to the fleet on this Redis broker and return (default: index in this process)")
    parser.add_argument("--job-secret-file", default=None, metavar="FILE",
                        help="with --broker: sign the jobs with this shared secret, as the workers' "
                        "(default: $MODELVERSE_JOB_SECRET_FILE or $MODELVERSE_JOB_SECRET)")
    parser.add_argument("--encoder", default=os.environ.get("MODELVERSE_ENCODER", "bundled"),
                        help="encoder spec (default: $MODELVERSE_ENCODER or bundled)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                        help="samples per model; with --adaptive the ceiling (default: %(default)s, the paper's N)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="N",
                        help="samples per chunk task (default: %(default)s)")
    parser.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=True,
                        help="stop sampling a model once its statistics converge (default: on)")
    parser.add_argument("--min-samples", type=int, default=DEFAULT_MIN_SAMPLES, metavar="N",
                        help="adaptive floor (default: %(default)s)")
    parser.add_argument("--round-samples", type=int, default=DEFAULT_ROUND_SAMPLES, metavar="N",
                        help="samples added per adaptive round (default: %(default)s)")
    parser.add_argument("--device", default=None,
                        help="torch device for indexing in this process, e.g. cuda:0 or cpu (default: "
                        "$MODELVERSE_DEVICE, else cuda when present); fleet workers take their own --device")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="NATS",
                        help="adaptive: stop once the standard error of the score a query like the model's "
                        "own samples gets is at most this (default: %(default)s; docs/FLEET.md)")


def plan_from_args(args: argparse.Namespace) -> SamplePlan:
    if not args.adaptive:
        return SamplePlan(args.samples, args.chunk_size)
    return SamplePlan(
        args.samples,
        args.chunk_size,
        min_samples=min(args.min_samples, args.samples),
        round_samples=args.round_samples,
        tolerance=args.tolerance,
    )


def requests_from_args(args: argparse.Namespace) -> tuple[list[ModelRequest], str]:
    """The models to index and the encoder spec (a manifest may name its own encoder)."""
    if getattr(args, "manifest", None):
        requests, encoder = read_manifest(args.manifest)
        return requests, encoder or args.encoder
    if getattr(args, "zoo", None) == "bundled":
        return bundled_requests(), args.encoder
    if getattr(args, "model_dir", None):
        return [model_dir_request(args)], args.encoder
    raise InvalidInputError("name the models to index: --zoo bundled, --manifest FILE or --model-dir DIR")


def model_dir_request(args: argparse.Namespace) -> ModelRequest:
    """`--model-dir DIR` and the flags that override its card."""
    options = {}
    for item in args.option:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise InvalidInputError(f"--option {item[:80]!r}: expected KEY=VALUE")
        options[key] = value
    if args.half:
        options["dtype"] = "float16"
    overrides = {"id": args.id, "name": args.name, "description": args.description, "family": args.family,
                 "license": args.license, "creator": args.creator,
                 "tags": [t.strip() for t in args.tags.split(",") if t.strip()] if args.tags else None}
    return request_for_model_dir(args.model_dir, overrides, options)


def submit_index(args: argparse.Namespace) -> int:
    """`modelverse index --broker URL ...`: queue one job per model and print their ids."""
    from modelverse.fleet.submit import submit_jobs

    requests, encoder = requests_from_args(args)
    config = FleetConfig.from_env(broker_url=args.broker)
    if getattr(args, "job_secret_file", None):
        config = replace(config, job_secret=read_job_secret(args.job_secret_file), job_secret_file=args.job_secret_file)
    if not config.job_secret:
        print("modelverse index: warning: no job secret (--job-secret-file): workers that have one refuse these "
              "jobs", file=sys.stderr)
    with _reaching(config.broker_url):
        records = submit_jobs(
            config,
            requests,
            encoder,
            plan_from_args(args),
            rank=getattr(args, "rank", None),
            eps=getattr(args, "eps", None),
            keep_covariance=not getattr(args, "no_covariance", False),
        )
    if getattr(args, "json", False):
        print_json([{"job_id": r.job_id, "model_id": r.spec.model_id, "stats_version": r.spec.stats_version}
                    for r in records])
    else:
        for record in records:
            print(f"{record.job_id}  {record.spec.model_id}  (stats version {record.spec.stats_version})")
        print(f"submitted {len(records)} job(s) to {config.broker_url}; follow them with `modelverse jobs --watch`")
    return 0


def index_here(args: argparse.Namespace) -> int:
    """`modelverse index --store DIR ...` without --broker: the fleet's tasks in this process.

    Reads ``args.store`` besides the options of ``add_fleet_arguments``; prints one line per
    model; exit status 1 when a model failed (the others are indexed all the same).
    """
    from modelverse.fleet.embedded import index_embedded

    requests, encoder = requests_from_args(args)
    requests = _skip_indexed(args, requests)
    device = torch_device(getattr(args, "device", None))
    interactive = sys.stdout.isatty() and not getattr(args, "json", False)

    def progress(record: JobRecord) -> None:
        if interactive and not record.state.finished:
            done, planned = len(record.chunks_done), record.chunks_planned
            print(f"\r{record.spec.model_id}: {progress_bar(done, planned)} {record.samples_done} samples",
                  end="", flush=True)

    records = []
    for position, request in enumerate(requests, start=1):
        [record] = index_embedded(
            args.store, [request], encoder, plan_from_args(args), device=device,
            rank=getattr(args, "rank", None), eps=getattr(args, "eps", None),
            keep_covariance=not getattr(args, "no_covariance", False), progress=progress,
        )
        records.append(record)
        if interactive:
            print("\r\x1b[K", end="")
        if not getattr(args, "json", False):
            rate = record.samples_per_second()
            outcome = (f"{record.samples_used} samples, stats version {record.spec.stats_version}"
                       + ("" if rate is None else f", {rate:.0f} samples/s")
                       if record.state is JobState.DONE else f"FAILED: {record.error}")
            print(f"[{position}/{len(requests)}] {request.model_id}: {outcome}", flush=True)
    failed = [r for r in records if r.state is JobState.FAILED]
    if getattr(args, "json", False):
        print_json([r.summary() for r in records])
    else:
        print(f"indexed {len(records) - len(failed)} of {len(records)} model(s) into {args.store}")
    for record in failed:
        print(f"modelverse index: {record.spec.model_id} failed: {record.error}", file=sys.stderr)
    return 1 if failed else 0


def torch_device(given: str | None) -> str:
    """--device, else $MODELVERSE_DEVICE, else cuda when torch sees a GPU, else cpu."""
    if given or os.environ.get("MODELVERSE_DEVICE"):
        return given or os.environ["MODELVERSE_DEVICE"]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _skip_indexed(args: argparse.Namespace, requests: list[ModelRequest]) -> list[ModelRequest]:
    """Resuming: models already in the store are left as they are unless --reindex."""
    if getattr(args, "reindex", False) or not DirectoryStore.exists(args.store):
        return requests
    have = set(DirectoryStore.open(args.store).ids())
    todo = [r for r in requests if r.model_id not in have]
    if len(todo) < len(requests) and not getattr(args, "json", False):
        print(f"{len(requests) - len(todo)} of {len(requests)} model(s) already in {args.store}: skipped "
              "(--reindex to index them again)", flush=True)
    return todo


def run_index(args: argparse.Namespace) -> int:
    """The whole of `modelverse index`: the fleet with --broker, this process otherwise."""
    return submit_index(args) if args.broker else index_here(args)


# -- modelverse jobs ------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jobs", help="show indexing jobs of the fleet")
    parser.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="only these jobs (default: the most recent)")
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="the fleet's Redis (default: $MODELVERSE_REDIS_STORE, $MODELVERSE_BROKER or local)")
    parser.add_argument("--limit", type=int, default=50, metavar="N", help="most recent N jobs (default: %(default)s)")
    parser.add_argument("--watch", action="store_true", help="refresh until every shown job finished")
    parser.add_argument("--interval", type=float, default=2.0, metavar="S", help="--watch refresh period")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--metrics", action="store_true",
                        help="print the fleet's Prometheus metrics (jobs by state, queue depth, chunks done, "
                        "worker heartbeats) in the text format and exit")
    parser.set_defaults(handler=run_jobs)


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S") if timestamp else ""


def _state(record: JobRecord, now: float, stall_after_s: float) -> str:
    """The state, flagged when an unfinished job made no progress for longer than a chunk may
    take: no worker is serving it (all down?) or its chunk waits for redelivery."""
    idle = record.idle_seconds(now)
    return f"{record.state.value} (idle {idle:.0f}s)" if idle > stall_after_s else record.state.value


def _row(record: JobRecord, now: float, stall_after_s: float) -> list[object]:
    done, planned = len(record.chunks_done), record.chunks_planned
    rate = record.samples_per_second(now)
    return [
        record.job_id[:12],
        record.spec.model_id,
        _state(record, now, stall_after_s),
        f"{progress_bar(done, planned)} {done}/{planned}",
        f"{record.samples_done}",
        "" if rate is None else f"{rate:.0f}",
        record.spec.stats_version,
        _when(record.finished_at),
        record.error,
    ]


def _load(args: argparse.Namespace) -> list[JobRecord]:
    from modelverse.store.redis_store import RedisStore

    config = FleetConfig.from_env(broker_url=args.broker)
    url = args.broker or config.redis_store_url
    store = RedisStore.from_url(url, config.store_prefix, retries=1)
    with _reaching(url):
        if args.job_ids:
            records = [store.get_job(job_id) for job_id in args.job_ids]
            missing = [j for j, r in zip(args.job_ids, records) if r is None]
            if missing:
                raise NotFoundError(f"no job {missing[0]!r} in {store!r}")
            return [r for r in records if r is not None]
        return store.jobs(limit=max(args.limit, 1))


def _show(records: list[JobRecord], as_json: bool, stall_after_s: float) -> None:
    now = time.time()
    if as_json:
        print_json([r.summary(now) for r in records])
        return
    print_table(["job", "model", "state", "chunks", "samples", "samples/s", "version", "finished", "error"],
                [_row(r, now, stall_after_s) for r in records])
    counts = {state: sum(r.state is state for r in records) for state in JobState}
    summary = ", ".join(f"{n} {state.value}" for state, n in counts.items() if n) or "no jobs"
    done = sum(len(r.chunks_done) for r in records)
    planned = sum(r.chunks_planned for r in records)
    running = [r.samples_per_second(now) for r in records if r.state is JobState.RUNNING]
    rate = sum(x for x in running if x is not None)
    print(f"{summary}; chunks {progress_bar(done, planned)} {done}/{planned}"
          + (f"; {rate:.0f} samples/s now" if running else ""))


def fleet_metrics_text(broker_url: str | None) -> str:
    """The fleet's metrics in Prometheus's text format, read from its Redis now."""
    import redis
    from prometheus_client import CollectorRegistry, generate_latest

    from modelverse.fleet.fleet_metrics import FleetCollector
    from modelverse.store.redis_store import RedisStore

    config = FleetConfig.from_env(broker_url=broker_url)
    store_url = broker_url or config.redis_store_url
    registry = CollectorRegistry()
    registry.register(FleetCollector(RedisStore.from_url(store_url, config.store_prefix, retries=1),
                                     redis.Redis.from_url(config.broker_url, socket_timeout=5)))
    return generate_latest(registry).decode()


def run_jobs(args: argparse.Namespace) -> int:
    if args.metrics:
        text = fleet_metrics_text(args.broker)
        if "modelverse_fleet_redis_up 1.0" not in text:
            raise FleetUnreachableError(f"cannot read the fleet's Redis at {args.broker or FleetConfig.from_env().redis_store_url}")
        print(text, end="")
        return 0
    stall_after_s = float(FleetConfig.from_env().visibility_timeout_s)
    records = _load(args)
    if not args.watch:
        _show(records, args.json, stall_after_s)
        return 0
    while True:
        if sys.stdout.isatty() and not args.json:
            sys.stdout.write("\x1b[2J\x1b[H")  # clear the screen between refreshes
        _show(records, args.json, stall_after_s)
        sys.stdout.flush()
        if all(r.state.finished for r in records):
            return 1 if any(r.state is JobState.FAILED for r in records) else 0
        time.sleep(args.interval)
        records = _load(args)
