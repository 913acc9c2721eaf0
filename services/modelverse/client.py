"""Client side of the public services: one channel that carries an API key, over TLS or not.

Every process that calls the gateway or the admin (the CLI, ``loadtest/``, benchmarks, tests, the
web service) opens its channel with ``connect`` and finds its key with ``resolve_api_key``::

    from modelverse.client import connect
    channel = connect("gateway:50051", api_key=key, tls=ClientTLS(ca=Path("ca.pem")))
    SearchServiceStub(channel).Search(request)

Each call then sends ``authorization: Bearer <key>``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import grpc.aio

from modelverse.security.tls import ClientTLS

API_KEY_ENV = "MODELVERSE_API_KEY"
API_KEY_FILE_ENV = "MODELVERSE_API_KEY_FILE"
Options = Sequence[tuple[str, Any]]


def read_key_file(path: Path | str) -> str:
    key = Path(path).read_text().strip()
    if not key:
        raise ValueError(f"{path}: the key file is empty")
    return key


def resolve_api_key(api_key: str | None = None, api_key_file: Path | str | None = None,
                    environ: Mapping[str, str] = os.environ) -> str | None:
    """The key to send: ``--api-key``, else ``--api-key-file``, else $MODELVERSE_API_KEY, else the
    file named by $MODELVERSE_API_KEY_FILE; None when none is given."""
    if api_key:
        return api_key
    if api_key_file:
        return read_key_file(api_key_file)
    if environ.get(API_KEY_ENV):
        return environ[API_KEY_ENV]
    if environ.get(API_KEY_FILE_ENV):
        return read_key_file(environ[API_KEY_FILE_ENV])
    return None


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """--api-key / --api-key-file and the client's TLS files, for a command that calls a service."""
    group = parser.add_argument_group("connection (key also from $MODELVERSE_API_KEY or $MODELVERSE_API_KEY_FILE)")
    group.add_argument("--api-key", default=None, help="API key (visible in the process list: prefer a file or the env)")
    group.add_argument("--api-key-file", default=None, metavar="FILE", help="file holding the API key")
    group.add_argument("--tls-ca", type=Path, default=None, metavar="PEM",
                       help="use TLS, trusting this CA (e.g. a local cluster's ca.pem)")
    group.add_argument("--tls", action="store_true", help="use TLS with the system's trusted CAs")
    group.add_argument("--tls-cert", type=Path, default=None, metavar="PEM", help="client certificate (mutual TLS)")
    group.add_argument("--tls-key", type=Path, default=None, metavar="PEM", help="client certificate's key")


def client_tls_from_args(args: argparse.Namespace) -> ClientTLS | None:
    if args.tls_ca is None and not args.tls and args.tls_cert is None:
        return None
    return ClientTLS(args.tls_ca, args.tls_cert, args.tls_key)


def connect_from_args(address: str, args: argparse.Namespace, options: Options = ()) -> grpc.Channel:
    return connect(address, resolve_api_key(args.api_key, args.api_key_file), client_tls_from_args(args), options=options)


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


def _with_key(details: Any, header: tuple[str, str]) -> _CallDetails:
    metadata = [*(details.metadata or ()), header]
    return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                        details.wait_for_ready, details.compression)


class _KeyHeader(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                 grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the authorization header to every call (works on plaintext loopback channels too,
    where gRPC refuses call credentials)."""

    def __init__(self, key: str) -> None:
        self.header = ("authorization", f"Bearer {key}")

    def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(_with_key(details, self.header), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


def connect(address: str, api_key: str | None = None, tls: ClientTLS | None = None, *,
            options: Options = ()) -> grpc.Channel:
    """A channel to ``address``; TLS when ``tls`` is given; every call carries ``api_key``."""
    opts = [*options, *(tls.options() if tls else [])]
    channel = grpc.secure_channel(address, tls.credentials(), options=opts) if tls else grpc.insecure_channel(address, options=opts)
    return grpc.intercept_channel(channel, _KeyHeader(api_key)) if api_key else channel


class _AioKeyHeader(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, key: str) -> None:
        self.header = ("authorization", f"Bearer {key}")

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self.header)
        return await continuation(details._replace(metadata=metadata), request)


def connect_aio(address: str, api_key: str | None = None, tls: ClientTLS | None = None, *,
                options: Options = ()) -> grpc.aio.Channel:
    """``connect`` for asyncio clients (unary calls, which is every RPC of the public API)."""
    opts = [*options, *(tls.options() if tls else [])]
    interceptors = [_AioKeyHeader(api_key)] if api_key else None
    if tls:
        return grpc.aio.secure_channel(address, tls.credentials(), options=opts, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)
