"""`python -m modelverse.web` (also `modelverse web`): the web page, served by uvicorn (every flag,
its environment variable and default: settings.web, `modelverse config show --process web`)."""

from __future__ import annotations

import logging
import socket
import ssl
import sys
from pathlib import Path

import uvicorn

from modelverse.client import client_tls_from_args, resolve_api_key
from modelverse.security.tls import server_tls_from_args
from modelverse.web.app import create_app
from modelverse.web.client import Gateway
from modelverse.settings.base import load
from modelverse.settings.web import WebSettings


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts so that port 0 has a known number."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def write_port_file(path: str | None, port: int) -> None:
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(target)  # atomic: a launcher never reads half of it


def serve(args: WebSettings) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server_tls_from_args(args, prefix="https")  # refuses a certificate without its key, and the like
    api_key = resolve_api_key(args.api_key, args.api_key_file)
    gateway = Gateway.connect(args.gateway, api_key=api_key, tls=client_tls_from_args(args), timeout_s=args.timeout)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    scheme = "https" if args.https_cert else "http"
    print(f"web      {scheme}://{args.host}:{port}/  (gateway {args.gateway})", flush=True)
    config = uvicorn.Config(create_app(gateway), log_level=args.log_level.lower(), access_log=False,
                            timeout_graceful_shutdown=2, ssl_certfile=args.https_cert, ssl_keyfile=args.https_key,
                            ssl_ca_certs=args.https_client_ca,
                            ssl_cert_reqs=ssl.CERT_REQUIRED if args.https_client_ca else ssl.CERT_NONE)
    write_port_file(args.port_file, port)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        gateway.close()
    return 0


def parse_args(argv: list[str] | None = None) -> WebSettings:
    """The web page's settings: flags over $MODELVERSE_WEB_* over --config FILE (settings.web)."""
    return load(WebSettings, argv).settings


def main(argv: list[str] | None = None) -> int:
    return serve(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
