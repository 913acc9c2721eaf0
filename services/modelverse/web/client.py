"""The web service's way to the gateway: one channel made by ``modelverse.client.connect`` (the
API key sent as ``authorization: Bearer <key>`` on every call; TLS when a CA is given) and the
public SearchService stub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from modelverse.client import connect
from modelverse.security.tls import ClientTLS
from modelverse.v1 import search_pb2_grpc

# A gateway that comes back is used again within a second, not after gRPC's default backoff
# (up to two minutes): the page that said "unavailable" recovers on the next reload.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


def gateway_channel(address: str, *, api_key: str | None = None, root_ca: Path | None = None,
                    tls: ClientTLS | None = None) -> grpc.Channel:
    """A channel to the gateway: TLS trusting ``root_ca`` (or as ``tls`` says), every call
    carrying ``api_key`` when one is given."""
    if tls is None and root_ca is not None:
        tls = ClientTLS(ca=root_ca)
    return connect(address, api_key, tls, options=CHANNEL_OPTIONS)


@dataclass
class Gateway:
    """The public API as the pages use it: one stub, one deadline per call."""

    stub: search_pb2_grpc.SearchServiceStub
    channel: grpc.Channel
    timeout_s: float = 10.0

    @classmethod
    def connect(cls, address: str, *, api_key: str | None = None, root_ca: Path | None = None,
                tls: ClientTLS | None = None, timeout_s: float = 10.0) -> Gateway:
        channel = gateway_channel(address, api_key=api_key, root_ca=root_ca, tls=tls)
        return cls(search_pb2_grpc.SearchServiceStub(channel), channel, timeout_s)

    def close(self) -> None:
        self.channel.close()
