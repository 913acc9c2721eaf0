"""Run a gateway: ``python -m modelverse.serving.gateway --shard ADDR[,REPLICA...] ...``.

Give ``--shard`` once per shard, in shard order; a shard's replicas are comma-separated. Every
flag, its environment variable and default: settings.gateway, `modelverse config show --process gateway`.
"""

from __future__ import annotations

import logging
import signal
import threading

from modelverse.core.sentence_encoder import sentence_encoder
from modelverse.encoders.base import Encoder
from modelverse.security.server import interceptors_from_args
from modelverse.security.tls import server_tls_from_args, shard_client_tls_from_args
from modelverse.serving import logs, metrics
from modelverse.serving.admission import admission_from_args
from modelverse.serving.gateway.health_watch import ShardHealthWatch
from modelverse.serving.request_context import RequestIdInterceptor
from modelverse.serving.tracing import from_environment
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.gateway.service import SERVICE, GatewayServicer
from modelverse.serving.grpc_server import build_server, write_port_file
from modelverse.settings.base import load
from modelverse.settings.gateway import GatewaySettings
from modelverse.v1 import search_pb2, search_pb2_grpc

log = logging.getLogger("modelverse.gateway")


def load_named_encoder(name: str) -> Encoder:
    try:
        from modelverse.encoders import load_encoder  # type: ignore[attr-defined]
    except ImportError as exc:
        raise SystemExit(f"--encoder {name}: this build has no encoder loader (modelverse.encoders.load_encoder)") from exc
    return load_encoder(name)


def parse_args(argv: list[str] | None = None) -> GatewaySettings:
    """The gateway's settings: flags over $MODELVERSE_GATEWAY_* over --config FILE (settings.gateway)."""
    return load(GatewaySettings, argv).settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level)
    auth = interceptors_from_args(args, "gateway")
    admission = admission_from_args(args, SERVICE)
    tracing = from_environment(SERVICE)
    tls = server_tls_from_args(args)
    pool = ShardPool([spec.split(",") for spec in args.shard], tls=shard_client_tls_from_args(args), tracing=tracing)
    encoder = load_named_encoder(args.encoder) if args.encoder else None
    if encoder is not None:  # text queries are possible: the metadata's sentence encoder loads now, not on the first
        sentence_encoder()
    generators = None
    if args.generators == "zoo":
        from modelverse.zoo.loader import load_generator  # imports torch: only when asked

        generators = load_generator
    servicer = GatewayServicer(
        pool, encoder=encoder, generators=generators, candidates_per_shard=args.candidates,
        limits=args.limits(),
    )
    service_name = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name
    server, port, health_servicer = build_server(
        [lambda s: search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, s)],
        [service_name],
        address=f"{args.host}:{args.port}", max_message_bytes=args.max_message_bytes, tls=tls,
        # request id first (every later log line carries it), then the trace, the key, the slot
        interceptors=[RequestIdInterceptor(SERVICE), *tracing.server_interceptors(), *auth, admission],
        max_workers=admission.limits.threads(), maximum_concurrent_rpcs=admission.limits.maximum_concurrent_rpcs(),
    )
    watch = ShardHealthWatch(pool, health_servicer, [service_name]).start()
    metrics.serve_metrics(args.metrics_port, args.host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    write_port_file(args.port_file, port)
    log.info("gateway serving", extra={"port": port, "shards": len(pool), "tls": tls is not None,
                                      "auth": bool(auth), "tracing": tracing.enabled,
                                      "workers": args.workers, "queue": args.queue})
    stop.wait()
    watch.stop()
    server.stop(grace=2).wait()
    pool.close()
    tracing.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
