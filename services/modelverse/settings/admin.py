"""The admin's settings (``python -m modelverse.serving.admin``): the store's one writer, its job
table, and, with --encoder, generator jobs inside it or on the Celery fleet of --broker (whose
other settings, and the job secret, the fleet's own variables give: settings.fleet)."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from modelverse.settings.base import setting
from modelverse.settings.common import (
    AdmissionSettings,
    AuthSettings,
    GrpcServerSettings,
    ServerTLSSettings,
    ShardAddresses,
    ShardClientTLSSettings,
    max_message_setting,
    queue_setting,
    shards_setting,
    workers_setting,
)
from modelverse.settings.fleet import JOB_SECRET_FILE_ENV

# Sample features of a model: 50,000 x 512 float32 = 100 MB in one upload.
MAX_ADMIN_MESSAGE_BYTES = 256 * 1024 * 1024


class AdminSettings(GrpcServerSettings, AdmissionSettings, AuthSettings, ServerTLSSettings, ShardClientTLSSettings):
    process = "admin"
    env_prefix = "MODELVERSE_ADMIN_"
    program = "python -m modelverse.serving.admin"
    description = "Run the admin service: the store's one writer, model registration and generator jobs."

    store: Path = setting(..., "the model store directory", metavar="DIR")
    shard: ShardAddresses = shards_setting()
    reflection: bool = setting(False, "serve gRPC server reflection (off by default: the admin API need not be "
                                      "discoverable)")
    max_message_bytes: int = max_message_setting(MAX_ADMIN_MESSAGE_BYTES)
    # Uploads of up to 256 MiB each: few at once, and a short queue.
    workers: int = workers_setting(4)
    queue: int = queue_setting(8)
    # generator jobs (RegisterModel with a zoo_model or generator source)
    encoder: str | None = setting(None, "encoder spec the fleet encodes samples with (must be the store's "
                                        "encoder); without it the admin registers sample features only",
                                  metavar="SPEC")
    broker: str | None = setting(None, "run jobs on the Celery fleet of this broker and follow its model_ready "
                                       "events (default: embedded, in this process)", metavar="redis://HOST:PORT/DB")
    allow_python_generators: bool = setting(False, "accept py:MODULE:FACTORY generator specs (they run code in "
                                                   "the fleet's processes)")
    job_secret_file: str | None = setting(None, "sign the fleet's job messages with this shared secret, as the "
                                                "workers' --job-secret-file (or $MODELVERSE_JOB_SECRET)",
                                          env=JOB_SECRET_FILE_ENV, metavar="FILE")
    allow_evicting_redis: bool = setting(False, "start even when the broker's maxmemory-policy would evict the "
                                                "fleet's data")
    torch_threads: int = setting(1, "torch threads of embedded jobs (the fleet's variable)", env="MODELVERSE_TORCH_THREADS")

    @field_validator("torch_threads")
    @classmethod
    def _threads(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"at least 1, got {value}")
        return value
