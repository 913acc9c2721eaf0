"""Run the admin service: ``python -m modelverse.serving.admin --store DIR --shard ADDR ...``."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from modelverse.serving import logs
from modelverse.serving.admin.service import AdminServicer
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.grpc_server import build_server, write_port_file
from modelverse.store.directory import DirectoryStore
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level)
    servicer = AdminServicer(DirectoryStore.open(args.store), ShardPool([s.split(",") for s in args.shard]))
    server, port, _ = build_server(
        [lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(servicer, s)],
        [admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name],
        address=f"{args.host}:{args.port}", max_workers=4, max_message_bytes=MAX_ADMIN_MESSAGE_BYTES,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    write_port_file(args.port_file, port)
    log.info("admin serving", extra={"port": port})
    stop.wait()
    server.stop(grace=2).wait()
    servicer.jobs.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
