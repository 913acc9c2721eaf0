"""Fleet settings, from the environment or given explicitly (the CLI's flags override both)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_CHUNK_SIZE = 1000
# A chunk task must finish well inside the visibility timeout, or Redis hands the same message
# to a second worker while the first still works on it (harmless, the write is idempotent, but
# wasted). One hour covers a 1,000-sample chunk of a slow diffusion model on a CPU.
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
DEFAULT_MAX_RETRIES = 8
DEFAULT_RETRY_BACKOFF_S = 2.0
DEFAULT_RETRY_BACKOFF_MAX_S = 120.0


@dataclass(frozen=True)
class FleetConfig:
    broker_url: str = DEFAULT_BROKER
    result_backend: str = ""  # "" = the broker's Redis
    store_url: str = ""  # the Redis store of statistics, partials and jobs; "" = the broker's Redis
    store_prefix: str = "mv"
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S
    retry_backoff_max_s: float = DEFAULT_RETRY_BACKOFF_MAX_S
    # Threads per worker process for torch. One process per GPU or per core is the unit of
    # parallelism; more threads per process only fight each other on a shared CPU.
    torch_threads: int = 1
    device: str = "cpu"  # "cuda:N" on a GPU node: one worker (--concurrency 1) per GPU
    # A job without progress for this long has its current round sent again (see watchdog);
    # 0 = twice the visibility timeout.
    stall_timeout_s: int = 0

    @property
    def stall_after_s(self) -> int:
        return self.stall_timeout_s or 2 * self.visibility_timeout_s

    @property
    def backend_url(self) -> str:
        return self.result_backend or self.broker_url

    @property
    def redis_store_url(self) -> str:
        return self.store_url or self.broker_url

    @classmethod
    def from_env(cls, **overrides: object) -> FleetConfig:
        env = os.environ
        config = cls(
            broker_url=env.get("MODELVERSE_BROKER", DEFAULT_BROKER),
            result_backend=env.get("MODELVERSE_RESULT_BACKEND", ""),
            store_url=env.get("MODELVERSE_REDIS_STORE", ""),
            store_prefix=env.get("MODELVERSE_REDIS_PREFIX", "mv"),
            visibility_timeout_s=int(env.get("MODELVERSE_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT_S)),
            max_retries=int(env.get("MODELVERSE_MAX_RETRIES", DEFAULT_MAX_RETRIES)),
            retry_backoff_s=float(env.get("MODELVERSE_RETRY_BACKOFF", DEFAULT_RETRY_BACKOFF_S)),
            torch_threads=int(env.get("MODELVERSE_TORCH_THREADS", 1)),
            device=env.get("MODELVERSE_DEVICE", "cpu"),
            stall_timeout_s=int(env.get("MODELVERSE_STALL_TIMEOUT", 0)),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(config, **given) if given else config

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` return this configuration (worker children)."""
        return {
            "MODELVERSE_BROKER": self.broker_url,
            "MODELVERSE_RESULT_BACKEND": self.result_backend,
            "MODELVERSE_REDIS_STORE": self.store_url,
            "MODELVERSE_REDIS_PREFIX": self.store_prefix,
            "MODELVERSE_VISIBILITY_TIMEOUT": str(self.visibility_timeout_s),
            "MODELVERSE_MAX_RETRIES": str(self.max_retries),
            "MODELVERSE_RETRY_BACKOFF": str(self.retry_backoff_s),
            "MODELVERSE_TORCH_THREADS": str(self.torch_threads),
            "MODELVERSE_DEVICE": self.device,
            "MODELVERSE_STALL_TIMEOUT": str(self.stall_timeout_s),
        }
