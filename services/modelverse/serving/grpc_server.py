"""What every serving process shares: a gRPC server with health checking, reflection, message
size limits, optional TLS and interceptors (API keys), and a way to report the bound port to
whoever started the process."""

from __future__ import annotations

import os
from concurrent import futures
from pathlib import Path
from typing import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from modelverse.security.tls import ClientTLS, ServerTLS
from modelverse.serving.errors import ErrorInterceptor
from modelverse.serving.reflection import enable_reflection
from modelverse.settings.common import DEFAULT_MAX_MESSAGE_BYTES  # one default (settings.common)


def message_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def build_server(
    register: Sequence[Callable[[grpc.Server], None]],
    service_names: Sequence[str],
    *,
    address: str = "127.0.0.1:0",
    max_workers: int = 8,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    tls: ServerTLS | None = None,
    reflection: bool = True,
    maximum_concurrent_rpcs: int | None = None,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A started server; returns it, its bound port and its health servicer (all SERVING).

    ``tls``: serve TLS (mutual with a client CA) instead of plaintext. ``interceptors`` see every
    call (the API-key check, request ids, admission control); health and reflection stay open to
    every caller. ``maximum_concurrent_rpcs``: gRPC refuses calls beyond it RESOURCE_EXHAUSTED.
    What a handler raises is answered by the innermost interceptor, ``serving.errors.ErrorInterceptor``
    (a user error with its status code; anything else INTERNAL, logged)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers), options=message_options(max_message_bytes),
        interceptors=[*interceptors, ErrorInterceptor()], maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    for add in register:
        add(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection:
        enable_reflection(server, [*service_names, health.SERVICE_NAME])
    port = server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot bind {address}")
    server.start()
    for name in ["", *service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def write_port_file(path: str | None, port: int) -> None:
    """Atomically write the bound port, so a launcher polling the file never reads half of it."""
    if not path:
        return
    target = Path(path)
    tmp = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
    tmp.write_text(f"{port}\n")
    tmp.replace(target)


# A shard that comes back should be used again within a second, not after gRPC's default
# exponential backoff (up to two minutes).
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def channel(address: str, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, tls: ClientTLS | None = None) -> grpc.Channel:
    """A channel between our own processes (gateway or admin -> shard); TLS when ``tls`` is given."""
    options = message_options(max_message_bytes) + RECONNECT_OPTIONS
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, tls.credentials(), options=options + tls.options())
