"""Run the admin service: ``python -m modelverse.serving.admin --store DIR --shard ADDR ...``."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from prometheus_client import REGISTRY

from modelverse.security.server import add_auth_arguments, interceptors_from_args
from modelverse.security.tls import (
    add_server_tls_arguments,
    add_shard_client_tls_arguments,
    server_tls_from_args,
    shard_client_tls_from_args,
)
from modelverse.serving import logs, metrics
from modelverse.serving.admin.service import AdminServicer
from modelverse.serving.admin.admin_metrics import AdminCollector
from modelverse.serving.admission import add_admission_arguments, admission_from_args
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.request_context import RequestIdInterceptor
from modelverse.serving.tracing import from_environment
from modelverse.serving.grpc_server import build_server, write_port_file
from modelverse.store.directory import DirectoryStore
from modelverse.store.verify import verify_store
from modelverse.v1 import admin_pb2, admin_pb2_grpc

log = logging.getLogger("modelverse.admin")
MAX_ADMIN_MESSAGE_BYTES = 256 * 1024 * 1024  # sample features of a model: 50,000 x 512 float32 = 100 MB


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m modelverse.serving.admin", description=__doc__)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--shard", action="append", required=True, metavar="ADDR[,ADDR...]")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", default=None)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve Prometheus /metrics here (jobs, models, store generation, shard sync lag); 0: none")
    parser.add_argument("--reflection", action="store_true",
                        help="serve gRPC server reflection (off by default: the admin API need not be discoverable)")
    # Uploads of up to 256 MiB each: few at once, and a short queue.
    add_admission_arguments(parser, concurrency=4, queue=8)
    add_auth_arguments(parser)
    add_server_tls_arguments(parser)
    add_shard_client_tls_arguments(parser)
    fleet = parser.add_argument_group("generator jobs (RegisterModel with a zoo_model or generator source)")
    fleet.add_argument("--encoder", default=None, metavar="SPEC",
                       help="encoder spec the fleet encodes samples with (must be the store's encoder); "
                            "without it the admin registers sample features only")
    fleet.add_argument("--broker", default=None, metavar="redis://HOST:PORT/DB",
                       help="run jobs on the Celery fleet of this broker and follow its model_ready events "
                            "(default: embedded, in this process)")
    fleet.add_argument("--allow-python-generators", action="store_true",
                       help="accept py:MODULE:FACTORY generator specs (they run code in the fleet's processes)")
    fleet.add_argument("--job-secret-file", default=None, metavar="FILE",
                       help="sign the fleet's job messages with this shared secret, as the workers' "
                            "--job-secret-file (default: $MODELVERSE_JOB_SECRET_FILE or $MODELVERSE_JOB_SECRET)")
    fleet.add_argument("--allow-evicting-redis", action="store_true",
                       help="start even when the broker's maxmemory-policy would evict the fleet's data")
    fleet.add_argument("--torch-threads", type=int, default=1, help="torch threads of embedded jobs")
    return parser.parse_args(argv)


def attach_fleet(servicer: AdminServicer, args: argparse.Namespace) -> None:
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
        address=f"{args.host}:{args.port}", max_message_bytes=MAX_ADMIN_MESSAGE_BYTES,
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
