"""The web page's settings (``python -m modelverse.web``, ``modelverse web``): a client of the
gateway's public API with a (read) key, serving HTTP(S). Nothing here imports serving code."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from modelverse.settings.base import setting
from modelverse.settings.common import ListenSettings

DEFAULT_PORT = 8080
API_KEY_ENV = "MODELVERSE_API_KEY"  # the client's names (modelverse.client), shared with the CLI
API_KEY_FILE_ENV = "MODELVERSE_API_KEY_FILE"


class WebSettings(ListenSettings):
    process = "web"
    env_prefix = "MODELVERSE_WEB_"
    program = "python -m modelverse.web"
    description = "The search web page, served by uvicorn, in front of a gateway."

    gateway: str = setting(..., "the gateway's public gRPC address", metavar="HOST:PORT")
    port: int = setting(DEFAULT_PORT, "HTTP port (0: any free port, see --port-file)")
    timeout: float = setting(10.0, "seconds per gateway call")
    # this server's own HTTPS (plaintext without --https-cert)
    https_cert: Path | None = setting(None, "this server's certificate chain (PEM); plain HTTP without it",
                                      metavar="PEM")
    https_key: Path | None = setting(None, "its private key (PEM)", metavar="PEM")
    https_client_ca: Path | None = setting(None, "demand client certificates signed by this CA (mutual TLS)",
                                           metavar="PEM")
    # towards the gateway (modelverse.client): a read key is enough
    api_key: str | None = setting(None, "API key (visible in the process list: prefer a file or the env)",
                                  env=API_KEY_ENV, secret=True)
    api_key_file: str | None = setting(None, "file holding the API key", env=API_KEY_FILE_ENV, metavar="FILE")
    tls_ca: Path | None = setting(None, "use TLS to the gateway, trusting this CA", metavar="PEM")
    tls: bool = setting(False, "use TLS to the gateway with the system's trusted CAs")
    tls_cert: Path | None = setting(None, "client certificate towards the gateway (mutual TLS)", metavar="PEM")
    tls_key: Path | None = setting(None, "the client certificate's key", metavar="PEM")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value
