"""`modelverse worker`: run one indexing worker (a Celery worker) against a Redis broker."""

from __future__ import annotations

import argparse
import logging
import os
import socket

from modelverse.cli.device import torch_device
from modelverse.errors import InvalidInputError
from modelverse.fleet.config import FleetConfig, JobSecretError
from modelverse.settings.base import build_parser, from_namespace
from modelverse.settings.fleet import WorkerSettings

log = logging.getLogger("modelverse.worker")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="run an indexing worker on a Redis broker",
                                   description=WorkerSettings.description)
    build_parser(WorkerSettings, parser)  # every flag from settings.fleet.WorkerSettings
    parser.set_defaults(handler=run)


def worker_settings(args: argparse.Namespace) -> WorkerSettings:
    """Flags over the environment over --config FILE (settings.fleet); SettingsError, a
    ValueError, says what is wrong in one line."""
    return from_namespace(WorkerSettings, args).settings  # type: ignore[return-value]


def worker_config(settings: WorkerSettings) -> FleetConfig:
    """The worker's fleet configuration; a job secret or an explicit --insecure-unsigned-jobs is
    required."""
    try:
        config = FleetConfig.from_settings(settings, device=torch_device(settings.device))
    except JobSecretError as exc:
        raise InvalidInputError(str(exc)) from exc
    if not config.job_secret and not settings.insecure_unsigned_jobs:
        raise InvalidInputError("no job secret: give --job-secret-file FILE (the admin and `modelverse index --broker` "
                         "sign with the same file; make one with `openssl rand -hex 32 > FILE`), or "
                         "--insecure-unsigned-jobs to run whatever anyone who can write to the broker sends")
    return config


def run(namespace: argparse.Namespace) -> int:
    args = worker_settings(namespace)
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
    from modelverse.fleet.redis_state import RedisFleetState

    registry = CollectorRegistry()
    store = RedisFleetState.from_url(config.redis_store_url, config.store_prefix, retries=1)
    registry.register(FleetCollector(store, redis.Redis.from_url(config.broker_url, socket_timeout=5)))
    start_http_server(port, addr=host, registry=registry)
    log.info("fleet metrics on http://%s:%d/metrics", host, port)
