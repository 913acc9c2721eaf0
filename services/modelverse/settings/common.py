"""Settings that several processes share, declared once: where a server listens, its gRPC limits,
admission control, TLS, API keys. A process's class inherits the groups it has; a default that
differs by process (admission's workers and queue) comes from a function with one help text.

Nothing here imports a server: the web process and `modelverse config show` import these classes
without gRPC servers, the fleet or torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, field_validator

from modelverse.settings.base import ProcessSettings, setting, split_words

# Every gRPC server's and the in-process cluster's largest message, received or sent; the admin
# takes uploads of sample features and has its own default (settings.admin).
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
KEYS_FILE_ENV = "MODELVERSE_API_KEYS_FILE"  # security.keys re-exports it

# --shard ADDR[,ADDR...] once per shard, in shard order; from the environment: whitespace-separated
ShardAddresses = Annotated[list[str], BeforeValidator(split_words)]


def workers_setting(default: int) -> Any:
    return setting(default, "calls at work at once (admission control)")


def queue_setting(default: int) -> Any:
    return setting(default, "calls waiting for a worker; beyond it, or when a call cannot be answered before "
                            "its deadline, RESOURCE_EXHAUSTED at once")


def max_message_setting(default: int = DEFAULT_MAX_MESSAGE_BYTES) -> Any:
    return setting(default, "largest gRPC message this server receives or sends, in bytes")


def shards_setting() -> Any:
    return setting(..., "one shard's replica addresses, comma-separated; repeat per shard, in shard order",
                   metavar="ADDR[,ADDR...]")


class ListenSettings(ProcessSettings):
    """Where a server listens and how it reports."""

    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(0, "port to listen on (0: any free port, see --port-file)")
    port_file: str | None = setting(None, "write the bound port here once serving", metavar="FILE")
    log_level: str = setting("INFO", "log level (DEBUG, INFO, WARNING, ERROR)")

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        return _port_number(value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"not a log level: {value}")
        return value.upper()


class GrpcServerSettings(ListenSettings):
    """A gRPC server's: its metrics endpoint and message size too."""

    metrics_port: int = setting(0, "serve Prometheus /metrics on this port (0: none)")
    max_message_bytes: int = max_message_setting()

    @field_validator("metrics_port")
    @classmethod
    def _metrics_port(cls, value: int) -> int:
        return _port_number(value)

    @field_validator("max_message_bytes")
    @classmethod
    def _message_bytes(cls, value: int) -> int:
        if value < 1024:
            raise ValueError(f"at least 1024 bytes, got {value}")
        return value


def _port_number(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"a port is 0..65535, got {value}")
    return value


class AdmissionSettings(ProcessSettings):
    """Admission control (serving.admission); each process sets its own defaults."""

    workers: int = workers_setting(8)
    queue: int = queue_setting(16)

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"at least 1 worker, got {value}")
        return value

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"a queue of at least 0, got {value}")
        return value


class ServerTLSSettings(ProcessSettings):
    """A gRPC server's TLS (security.tls.server_tls_from_args); plaintext without --tls-cert."""

    tls_cert: Path | None = setting(None, "this server's certificate chain (PEM); plaintext without it", metavar="PEM")
    tls_key: Path | None = setting(None, "its private key (PEM)", metavar="PEM")
    tls_client_ca: Path | None = setting(None, "demand client certificates signed by this CA (mutual TLS)",
                                         metavar="PEM")


class ShardClientTLSSettings(ProcessSettings):
    """TLS towards the shards (security.tls.shard_client_tls_from_args); plaintext without a CA."""

    shard_tls_ca: Path | None = setting(None, "CA the shards' certificates are signed by (TLS to the shards)",
                                        metavar="PEM")
    shard_tls_cert: Path | None = setting(None, "client certificate for shards that demand one", metavar="PEM")
    shard_tls_key: Path | None = setting(None, "its private key", metavar="PEM")


class AuthSettings(ProcessSettings):
    """API keys of a public server (security.server.authenticator_from_args)."""

    api_keys: Path | None = setting(None, "hashed API keys (`modelverse keys create`)", env=KEYS_FILE_ENV,
                                    metavar="FILE")
    insecure_no_auth: bool = setting(False, "serve every caller without a key; only on a loopback --host")
