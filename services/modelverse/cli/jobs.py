"""`modelverse jobs`: follow the fleet's indexing jobs (a table, --watch, --json, --metrics)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from modelverse.cli.fleet_access import FleetUnreachableError, reaching
from modelverse.cli.output import print_json, print_table, progress_bar
from modelverse.errors import NotFoundError
from modelverse.fleet.config import FleetConfig
from modelverse.fleet.job_records import JobRecord, JobState


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
    from modelverse.fleet.redis_state import RedisFleetState

    config = FleetConfig.from_env(broker_url=args.broker)
    url = args.broker or config.redis_store_url
    store = RedisFleetState.from_url(url, config.store_prefix, retries=1)
    with reaching(url):
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
    from modelverse.fleet.redis_state import RedisFleetState

    config = FleetConfig.from_env(broker_url=broker_url)
    store_url = broker_url or config.redis_store_url
    registry = CollectorRegistry()
    registry.register(FleetCollector(RedisFleetState.from_url(store_url, config.store_prefix, retries=1),
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
