"""The web service's command-line options (shared by `modelverse web` and `python -m modelverse.web`;
no heavy imports, so the CLI starts fast)."""

from __future__ import annotations

import argparse

from modelverse.client import add_client_arguments
from modelverse.security.tls import add_server_tls_arguments

DEFAULT_PORT = 8080


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", required=True, metavar="HOST:PORT", help="the gateway's public gRPC address")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (0: any free port; default: %(default)s)")
    parser.add_argument("--port-file", default=None, help="write the bound port here once listening")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per gateway call (default: %(default)s)")
    parser.add_argument("--log-level", default="INFO")
    add_server_tls_arguments(parser, prefix="https")  # --https-cert, --https-key, --https-client-ca (mTLS)
    add_client_arguments(parser)  # --api-key, --api-key-file (a read key is enough), --tls-ca, ...
