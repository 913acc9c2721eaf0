"""Run one recall shard: ``python -m modelverse.serving.shard --store DIR --shard I --shards S``
(every flag, its environment variable and default: settings.shard, `modelverse config show --process shard`)."""

from __future__ import annotations

import logging
import signal
import threading

from modelverse.security.tls import server_tls_from_args
from modelverse.serving import logs, metrics
from modelverse.serving.admission import admission_from_args
from modelverse.serving.grpc_server import build_server, write_port_file
from modelverse.serving.request_context import RequestIdInterceptor
from modelverse.serving.shard.service import SERVICE, ShardServicer
from modelverse.serving.shard.state import ShardState
from modelverse.serving.tracing import from_environment
from modelverse.settings.base import load
from modelverse.settings.shard import ShardSettings
from modelverse.v1 import shard_pb2, shard_pb2_grpc

log = logging.getLogger("modelverse.shard")


def parse_args(argv: list[str] | None = None) -> ShardSettings:
    """The shard's settings: flags over $MODELVERSE_SHARD_* over --config FILE (settings.shard)."""
    return load(ShardSettings, argv).settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level)
    tls = server_tls_from_args(args)
    admission = admission_from_args(args, SERVICE)
    tracing = from_environment(SERVICE)
    state = ShardState(args.shard_config())
    server, port, _ = build_server(
        [lambda s: shard_pb2_grpc.add_ShardServiceServicer_to_server(ShardServicer(state), s)],
        [shard_pb2.DESCRIPTOR.services_by_name["ShardService"].full_name],
        address=f"{args.host}:{args.port}", max_message_bytes=args.max_message_bytes, tls=tls,
        interceptors=[RequestIdInterceptor(SERVICE), *tracing.server_interceptors(), admission],
        max_workers=admission.limits.threads(), maximum_concurrent_rpcs=admission.limits.maximum_concurrent_rpcs(),
    )
    metrics.serve_metrics(args.metrics_port, args.host)
    stop = threading.Event()
    watcher = threading.Thread(target=state.watch, args=(stop, args.poll_interval), daemon=True)
    watcher.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    write_port_file(args.port_file, port)
    log.info("shard serving", extra={"shard": args.shard, "shards": args.shards, "port": port,
                                     "models": state.models(), "index_type": state.index.plan.factory,
                                     "lifted": {m.value: i.plan.factory for m, i in state.lifted.items()}})
    stop.wait()
    server.stop(grace=2).wait()
    tracing.shutdown()
    log.info("shard stopped", extra={"shard": args.shard})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
