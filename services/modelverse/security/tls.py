"""TLS settings of a server or a client, read from PEM files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


def _read(path: Path | str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate and key; with ``client_ca`` it also demands client certificates (mTLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The same settings for an HTTP server (the web service: ``uvicorn``/``ssl`` servers)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.load_verify_locations(self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=_read(self.client_ca),
            require_client_auth=self.client_ca is not None,
        )


@dataclass(frozen=True)
class ClientTLS:
    """What a client trusts (``ca``; None: the system's roots) and, for mTLS, its own certificate."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None  # override the name checked against the server's certificate

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both its certificate and its key")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca), private_key=_read(self.key), certificate_chain=_read(self.cert)
        )

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def server_tls_from_args(args: Any, prefix: str = "tls") -> ServerTLS | None:
    """The TLS of a server from its settings' ``{prefix}_cert``, ``_key`` and ``_client_ca``
    (settings.common.ServerTLSSettings; the web page's are ``https_*``)."""
    name = prefix.replace("-", "_")
    cert, key, client_ca = (getattr(args, f"{name}_{part}") for part in ("cert", "key", "client_ca"))
    if cert is None and key is None:
        if client_ca is not None:
            raise SystemExit(f"--{prefix}-client-ca needs --{prefix}-cert and --{prefix}-key")
        return None
    if cert is None or key is None:
        raise SystemExit(f"TLS needs both --{prefix}-cert and --{prefix}-key")
    return ServerTLS(cert, key, client_ca)


def shard_client_tls_from_args(args: Any) -> ClientTLS | None:
    """TLS towards the shards from settings' ``shard_tls_*`` (settings.common.ShardClientTLSSettings)."""
    if args.shard_tls_ca is None:
        if args.shard_tls_cert is not None or args.shard_tls_key is not None:
            raise SystemExit("--shard-tls-cert/--shard-tls-key need --shard-tls-ca")
        return None
    try:
        return ClientTLS(args.shard_tls_ca, args.shard_tls_cert, args.shard_tls_key)
    except ValueError as exc:
        raise SystemExit(f"--shard-tls-cert and --shard-tls-key: {exc}") from exc
