"""Run one recall shard: ``python -m modelverse.serving.shard --store DIR --shard I --shards S``."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from modelverse.core.lift import DEFAULT_ALPHA, DEFAULT_COLUMNS
from modelverse.security.tls import add_server_tls_arguments, server_tls_from_args
from modelverse.serving import logs, metrics
from modelverse.serving.grpc_server import DEFAULT_MAX_MESSAGE_BYTES, build_server, write_port_file
from modelverse.serving.first_stage import SECOND_ORDER_PROBE_FACTOR
from modelverse.serving.index_choice import EXHAUSTIVE_THRESHOLD
from modelverse.serving.admission import add_admission_arguments, admission_from_args
from modelverse.serving.request_context import RequestIdInterceptor
from modelverse.serving.shard.service import SERVICE, ShardServicer
from modelverse.serving.tracing import from_environment
from modelverse.serving.shard.state import DEFAULT_MEMORY_BUDGET, ShardConfig, ShardState
from modelverse.v1 import shard_pb2, shard_pb2_grpc

log = logging.getLogger("modelverse.shard")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m modelverse.serving.shard", description=__doc__)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--shard", required=True, type=int)
    parser.add_argument("--shards", required=True, type=int)
    parser.add_argument("--index-dir", required=True, type=Path, help="where this shard's FAISS index is saved")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (see --port-file)")
    parser.add_argument("--port-file", default=None, help="write the bound port here once serving")
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--memory-budget", type=int, default=DEFAULT_MEMORY_BUDGET, help="bytes for the FAISS index")
    parser.add_argument("--exhaustive-threshold", "--exact-threshold", type=int, default=EXHAUSTIVE_THRESHOLD,
                        help="up to this many vectors an index scores every one (Flat); --exact-threshold is the old name")
    parser.add_argument("--nprobe", type=int, default=None)
    parser.add_argument("--compact-index", action=argparse.BooleanOptionalAction, default=True,
                        help="8-bit codes for the first-moment inverted file, even when float32 vectors fit "
                             "the budget (candidates are re-scored from the pack either way)")
    parser.add_argument("--second-order-probe-factor", type=int, default=SECOND_ORDER_PROBE_FACTOR,
                        help="GAUSSIAN and FRECHET scan this many times the inverted file's nprobe lists")
    parser.add_argument("--lifted", default="mgf",
                        help="methods with a lifted first-stage index, comma-separated (mgf, gaussian); '' for none")
    parser.add_argument("--lift-columns", type=int, default=DEFAULT_COLUMNS, help="MGF: covariance columns kept by direction")
    parser.add_argument("--lift-alpha", type=float, default=DEFAULT_ALPHA, help="MGF: tangent point, alpha |w_k|")
    parser.add_argument("--lifted-nprobe", type=int, default=None, help="nprobe of a lifted inverted file (default nlist / 8)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between store checks")
    add_admission_arguments(parser, concurrency=8, queue=32)
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES)
    parser.add_argument("--log-level", default="INFO")
    # Shards serve only the gateway and the admin (no API keys); on an untrusted network give
    # them TLS with --tls-client-ca so that only holders of a client certificate reach them.
    add_server_tls_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level)
    tls = server_tls_from_args(args)
    admission = admission_from_args(args, SERVICE)
    tracing = from_environment(SERVICE)
    state = ShardState(ShardConfig(
        store=args.store, shard=args.shard, shards=args.shards, index_dir=args.index_dir,
        memory_budget_bytes=args.memory_budget, exhaustive_threshold=args.exhaustive_threshold, nprobe=args.nprobe,
        compact_index=args.compact_index, second_order_probe_factor=args.second_order_probe_factor, lifted=tuple(m for m in args.lifted.split(",") if m), lift_columns=args.lift_columns,
        lift_alpha=args.lift_alpha, lifted_nprobe=args.lifted_nprobe,
    ))
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
