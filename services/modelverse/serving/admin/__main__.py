"""Run the admin service: ``python -m modelverse.serving.admin --store DIR --shard ADDR ...`` (every
flag, its environment variable and default: settings.admin, `modelverse config show --process admin`)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from prometheus_client import REGISTRY

from modelverse.security.server import interceptors_from_args
from modelverse.security.tls import server_tls_from_args, shard_client_tls_from_args
from modelverse.serving import logs, metrics
from modelverse.serving.admin.service import AdminServicer
from modelverse.serving.admin.admin_metrics import AdminCollector
from modelverse.serving.admission import admission_from_args
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.request_context import RequestIdInterceptor
from modelverse.serving.tracing import from_environment
from modelverse.serving.grpc_server import build_server, write_port_file
from modelverse.settings.admin import AdminSettings
from modelverse.settings.base import load
from modelverse.store.directory import DirectoryStore
from modelverse.store.verify import verify_store
from modelverse.v1 import admin_pb2, admin_pb2_grpc

log = logging.getLogger("modelverse.admin")


def parse_args(argv: list[str] | None = None) -> AdminSettings:
    """The admin's settings: flags over $MODELVERSE_ADMIN_* over --config FILE (settings.admin)."""
    return load(AdminSettings, argv).settings


def attach_fleet(servicer: AdminServicer, args: AdminSettings) -> None:
    from dataclasses import replace

    from modelverse.fleet.config import FleetConfig, JobSecretError, read_job_secret
    from modelverse.fleet.redis_checks import check_redis
    from modelverse.fleet.resolve import Runtime
    from modelverse.fleet.spec_policy import SpecPolicy
    from modelverse.serving.admin.generator_jobs import BrokerJobs, EmbeddedJobs

    runtime = Runtime(torch_threads=args.torch_threads, policy=SpecPolicy(allow_python=args.allow_python_generators))
    if args.broker:
        from modelverse.fleet.redis_access import RedisAccessError, check_fleet_redis
        from modelverse.fleet.redis_checks import UnsafeRedisError

        try:
            fleet = FleetConfig.from_env(broker_url=args.broker)
            if args.job_secret_file:
                fleet = replace(fleet, job_secret=read_job_secret(args.job_secret_file),
                                job_secret_file=args.job_secret_file)
        except JobSecretError as exc:
            raise SystemExit(f"admin: {exc}") from None
        if not fleet.job_secret:
            log.warning("no job secret: the fleet's workers refuse this admin's jobs unless they run with "
                        "--insecure-unsigned-jobs (give --job-secret-file)")
        try:  # a wrong password ends the admin now, not after minutes of retries; so does an evicting Redis
            check_fleet_redis({"broker": fleet.broker_url, "Redis store": fleet.redis_store_url})
            check_redis(fleet.broker_url, "admin", allow_eviction=args.allow_evicting_redis)
        except (RedisAccessError, UnsafeRedisError) as exc:
            raise SystemExit(f"admin: {exc}") from None
        jobs = BrokerJobs(servicer.store, args.encoder, servicer.sync_shards, servicer.write_lock, fleet)
    else:
        jobs = EmbeddedJobs(servicer.store, args.encoder, servicer.sync_shards, servicer.write_lock, runtime)
    servicer.attach_fleet(jobs, runtime, allow_python_generators=args.allow_python_generators)


def check_store(store: Path) -> None:
    """The cheap part of `modelverse verify` (manifests, sizes, listings: no file is read
    whole), so that what a crash left behind is reported when the admin starts. It repairs
    nothing: a repair is the operator's call (`modelverse verify --repair`, docs/OPERATIONS.md)."""
    report = verify_store(store, deep=False)
    for finding in report.findings:
        log.warning("store check: %s", finding.kind,
                    extra={"kind": finding.kind, "path": finding.path, "detail": finding.detail[:300]})
    if report.findings:
        log.warning("store check found %d problem(s); run `modelverse verify --store %s --repair`",
                    len(report.findings), store)
    else:
        log.info("store check passed", extra={"models": report.models})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level)
    interceptors = interceptors_from_args(args, "admin")
    tls = server_tls_from_args(args)
    tracing = from_environment("admin")
    admission = admission_from_args(args, "admin")
    pool = ShardPool([s.split(",") for s in args.shard], tls=shard_client_tls_from_args(args), tracing=tracing)
    check_store(args.store)
    servicer = AdminServicer(DirectoryStore.open(args.store), pool)
    if args.encoder:
        attach_fleet(servicer, args)
    elif args.broker:
        raise SystemExit("--broker needs --encoder (the spec the fleet's workers encode samples with)")
    server, port, _ = build_server(
        [lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(servicer, s)],
        [admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name],
        address=f"{args.host}:{args.port}", max_message_bytes=args.max_message_bytes,
        interceptors=[RequestIdInterceptor("admin"), *tracing.server_interceptors(), *interceptors, admission],
        max_workers=admission.limits.threads(), maximum_concurrent_rpcs=admission.limits.maximum_concurrent_rpcs(),
        tls=tls, reflection=args.reflection,
    )
    if args.metrics_port:
        REGISTRY.register(AdminCollector(servicer.store, pool.stubs, servicer.job_counts))
        metrics.serve_metrics(args.metrics_port, args.host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    write_port_file(args.port_file, port)
    log.info("admin serving", extra={"port": port, "tls": tls is not None, "auth": bool(interceptors)})
    stop.wait()
    server.stop(grace=2).wait()
    servicer.shutdown()
    tracing.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
