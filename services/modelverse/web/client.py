"""The web service's way to the gateway: one channel (optionally TLS, optionally an API key sent
as ``authorization: Bearer <key>`` on every call) and the public SearchService stub."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc

from modelverse.v1 import search_pb2_grpc
from modelverse.web.options import API_KEY_ENV

# A gateway that comes back is used again within a second, not after gRPC's default backoff
# (up to two minutes): the page that said "unavailable" recovers on the next reload.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


class _BearerKey(grpc.UnaryUnaryClientInterceptor):
    """Adds the API key to every call's metadata (also on a plaintext loopback channel, where
    gRPC's own call credentials refuse to travel)."""

    def __init__(self, api_key: str) -> None:
        self._metadata = ("authorization", f"Bearer {api_key}")

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails,
                              request: Any) -> Any:
        metadata = [*(details.metadata or []), self._metadata]
        return continuation(details._replace(metadata=metadata), request)  # type: ignore[attr-defined]


def gateway_channel(address: str, *, api_key: str | None = None, root_ca: bytes | None = None) -> grpc.Channel:
    """A channel to the gateway at ``address``: TLS when ``root_ca`` (PEM) is given, and every
    call carrying ``api_key`` when one is given."""
    if root_ca is not None:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root_ca),
                                      options=CHANNEL_OPTIONS)
    else:
        channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    if api_key:
        channel = grpc.intercept_channel(channel, _BearerKey(api_key))
    return channel


def resolve_api_key(api_key: str | None, api_key_file: str | None) -> str | None:
    """``--api-key``, else ``--api-key-file``'s first line, else ``$MODELVERSE_API_KEY``, else none."""
    if api_key:
        return api_key.strip()
    if api_key_file:
        key = Path(api_key_file).read_text().strip()
        if not key:
            raise ValueError(f"{api_key_file}: the key file is empty")
        return key
    return os.environ.get(API_KEY_ENV, "").strip() or None


@dataclass
class Gateway:
    """The public API as the pages use it: one stub, one deadline per call."""

    stub: search_pb2_grpc.SearchServiceStub
    channel: grpc.Channel
    timeout_s: float = 10.0

    @classmethod
    def connect(cls, address: str, *, api_key: str | None = None, root_ca: bytes | None = None,
                timeout_s: float = 10.0) -> Gateway:
        channel = gateway_channel(address, api_key=api_key, root_ca=root_ca)
        return cls(search_pb2_grpc.SearchServiceStub(channel), channel, timeout_s)

    def close(self) -> None:
        self.channel.close()
