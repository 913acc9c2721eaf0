"""`modelverse worker`: run one indexing worker (a Celery worker) against a Redis broker."""

from __future__ import annotations

import argparse
import logging
import os
import socket

from modelverse.cli.device import torch_device
from modelverse.errors import InvalidInputError
from modelverse.fleet.config import FleetConfig, JobSecretError, read_job_secret

log = logging.getLogger("modelverse.worker")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run an indexing worker on a Redis broker",
        description="Start a Celery worker that samples, encodes and summarises models. Run one "
        "per GPU (--concurrency 1) or one per machine with --concurrency = cores on CPU.",
    )
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="Redis broker URL (default: $MODELVERSE_BROKER or redis://127.0.0.1:6379/0)")
    parser.add_argument("--store-url", default=None, metavar="URL",
                        help="Redis store for statistics and jobs (default: $MODELVERSE_REDIS_STORE or the broker)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    parser.add_argument("--pool", choices=["prefork", "solo", "threads"], default="prefork",
                        help="process pool; prefork isolates a crashing model in its process (default)")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="torch threads per process (default: $MODELVERSE_TORCH_THREADS or 1)")
    parser.add_argument("--device", default=None,
                        help="torch device for generators and the encoder, e.g. cuda:0 (one worker per "
                        "GPU, --concurrency 1); default: $MODELVERSE_DEVICE, else cuda when torch sees a GPU, else cpu")
    parser.add_argument("--visibility-timeout", type=int, default=None, metavar="S",
                        help="seconds before an unacknowledged chunk is handed to another worker; "
                        "a chunk that takes more than half of it fails its job "
                        "(default: $MODELVERSE_VISIBILITY_TIMEOUT or 3600)")
    safety = parser.add_argument_group("what this worker accepts (docs/SECURITY.md)")
    safety.add_argument("--job-secret-file", default=None, metavar="FILE",
                        help="shared secret that job messages must be signed with (HMAC-SHA256); default: "
                        "$MODELVERSE_JOB_SECRET_FILE or $MODELVERSE_JOB_SECRET")
    safety.add_argument("--insecure-unsigned-jobs", action="store_true",
                        help="run without a job secret: anyone who can write to the broker chooses what runs")
    safety.add_argument("--allow-python-generators", action="store_true", default=None,
                        help="also load py:MODULE:FACTORY generator and encoder specs (they import and call any "
                        "Python function); default: refused ($MODELVERSE_ALLOW_PYTHON_GENERATORS=1 allows)")
    safety.add_argument("--allow-evicting-redis", action="store_true",
                        help="start even when Redis's maxmemory-policy would evict the fleet's data")
    parser.add_argument("--metrics-port", type=int, default=0, metavar="PORT",
                        help="serve the fleet's Prometheus metrics on this port (default: none)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics endpoint")
    parser.add_argument("--name", default=None, help="worker node name (default: modelverse-PID@HOST)")
    parser.add_argument("--loglevel", default="INFO")
    parser.set_defaults(handler=run)


def worker_config(args: argparse.Namespace) -> FleetConfig:
    """The worker's settings: flags over the environment; a job secret or an explicit
    --insecure-unsigned-jobs is required."""
    if args.concurrency < 1:
        raise InvalidInputError(f"--concurrency must be at least 1, got {args.concurrency}")
    overrides: dict[str, object] = {}
    if args.job_secret_file:
        try:
            overrides.update(job_secret=read_job_secret(args.job_secret_file), job_secret_file=args.job_secret_file)
        except JobSecretError as exc:
            raise InvalidInputError(str(exc)) from exc
    config = FleetConfig.from_env(
        broker_url=args.broker,
        store_url=args.store_url,
        torch_threads=args.torch_threads,
        visibility_timeout_s=args.visibility_timeout,
        device=torch_device(args.device),
        allow_python_specs=args.allow_python_generators,
        **overrides,
    )
    if not config.job_secret and not args.insecure_unsigned_jobs:
        raise InvalidInputError("no job secret: give --job-secret-file FILE (the admin and `modelverse index --broker` "
                         "sign with the same file; make one with `openssl rand -hex 32 > FILE`), or "
                         "--insecure-unsigned-jobs to run whatever anyone who can write to the broker sends")
    return config


def run(args: argparse.Namespace) -> int:
    config = worker_config(args)
    import redis

    from modelverse.fleet.redis_access import check_fleet_redis

    # A wrong password or ACL user ends the worker here, instead of minutes of connection retries.
    check_fleet_redis({"broker": config.broker_url, "Redis store": config.redis_store_url,
                       "result backend": config.backend_url})

    from modelverse.fleet.redis_checks import UnsafeRedisError, check_redis

    try:
        check_redis(config.broker_url, "worker", allow_eviction=args.allow_evicting_redis)
        if config.redis_store_url != config.broker_url:
            check_redis(config.redis_store_url, "worker's store", allow_eviction=args.allow_evicting_redis)
    except (UnsafeRedisError, redis.AuthenticationError) as exc:
        raise InvalidInputError(str(exc)) from exc
    if not config.job_secret:
        log.warning("no job secret (--insecure-unsigned-jobs): this worker runs any job message found in the broker")
    # Pool processes and anything they spawn read the same settings.
    os.environ.update(config.to_env())
    from modelverse.fleet.app import configure

    app = configure(config)
    import modelverse.fleet.tasks  # noqa: F401  (registers the tasks)
    from modelverse.fleet import heartbeat, watchdog

    watchdog.install(app)
    heartbeat.install(app)
    if args.metrics_port:
        serve_fleet_metrics(config, args.metrics_port, args.metrics_host)

    name = args.name or f"modelverse-{os.getpid()}@{socket.gethostname()}"
    app.worker_main([
        "worker",
        f"--concurrency={args.concurrency}",
        f"--pool={args.pool}",
        f"--loglevel={args.loglevel}",
        f"--hostname={name}",
        "--queues=modelverse",
        "--without-gossip",
        "--without-mingle",
    ])
    return 0


def serve_fleet_metrics(config: FleetConfig, port: int, host: str) -> None:
    """/metrics of the whole fleet (read from Redis at each scrape) from this worker's main process."""
    import redis
    from prometheus_client import CollectorRegistry, start_http_server

    from modelverse.fleet.fleet_metrics import FleetCollector
    from modelverse.store.redis_store import RedisStore

    registry = CollectorRegistry()
    store = RedisStore.from_url(config.redis_store_url, config.store_prefix, retries=1)
    registry.register(FleetCollector(store, redis.Redis.from_url(config.broker_url, socket_timeout=5)))
    start_http_server(port, addr=host, registry=registry)
    log.info("fleet metrics on http://%s:%d/metrics", host, port)
