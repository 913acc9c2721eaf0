"""Fleet settings, from the environment or given explicitly (the CLI's flags override both)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from modelverse.errors import FailedPreconditionError

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_CHUNK_SIZE = 1000
# A chunk task must finish well inside the visibility timeout, or Redis hands the same message
# to a second worker while the first still works on it (harmless, the write is idempotent, but
# wasted). One hour covers a 1,000-sample chunk of a slow diffusion model on a CPU.
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
DEFAULT_MAX_RETRIES = 8
DEFAULT_RETRY_BACKOFF_S = 2.0
DEFAULT_RETRY_BACKOFF_MAX_S = 120.0
# How long a task waits, backing off, for a Redis that refuses writes (out of memory) before it
# fails the job with the reason: long enough for an operator or a finishing job to free memory.
DEFAULT_OOM_WAIT_S = 300.0
# A chunk must finish within this fraction of the visibility timeout (see work.run_chunk).
CHUNK_TIME_FRACTION = 0.5

JOB_SECRET_ENV = "MODELVERSE_JOB_SECRET"
JOB_SECRET_FILE_ENV = "MODELVERSE_JOB_SECRET_FILE"
MIN_JOB_SECRET_BYTES = 16


class JobSecretError(FailedPreconditionError, ValueError):
    """A job secret that is missing, unreadable or too short to authenticate anything."""


def read_job_secret(path: str | Path) -> bytes:
    """The shared secret that signs job messages: the file's content without surrounding
    whitespace (``openssl rand -hex 32 > FILE``)."""
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise JobSecretError(f"cannot read the job secret file {path}: {exc.strerror or exc}") from exc
    return _checked_secret(secret, f"the job secret file {path}")


def _checked_secret(secret: bytes, where: str) -> bytes:
    if len(secret) < MIN_JOB_SECRET_BYTES:
        raise JobSecretError(f"{where} holds {len(secret)} bytes; a job secret needs at least "
                             f"{MIN_JOB_SECRET_BYTES} (make one with: openssl rand -hex 32)")
    return secret


def job_secret_from_env(env: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(secret, file) from $MODELVERSE_JOB_SECRET_FILE or $MODELVERSE_JOB_SECRET; (b"", "") when
    neither is set."""
    env = dict(os.environ) if env is None else env
    path = env.get(JOB_SECRET_FILE_ENV, "")
    if path:
        return read_job_secret(path), path
    value = env.get(JOB_SECRET_ENV, "")
    return (_checked_secret(value.strip().encode(), f"${JOB_SECRET_ENV}"), "") if value else (b"", "")


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
    # Job messages are signed with this shared secret (HMAC-SHA256, see fleet.signing); workers
    # refuse messages whose signature does not verify. b"" = unsigned (a worker then refuses to
    # start unless told --insecure-unsigned-jobs). Never printed: repr=False.
    job_secret: bytes = field(default=b"", repr=False)
    job_secret_file: str = ""  # where job_secret came from, passed on to child processes
    # py: generator and encoder specs import and call any module: only on workers started with
    # --allow-python-generators (see fleet.spec_policy).
    allow_python_specs: bool = False
    oom_wait_s: float = DEFAULT_OOM_WAIT_S

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
        secret, secret_file = job_secret_from_env(dict(env))
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
            job_secret=secret,
            job_secret_file=secret_file,
            allow_python_specs=env.get("MODELVERSE_ALLOW_PYTHON_GENERATORS", "") == "1",
            oom_wait_s=float(env.get("MODELVERSE_OOM_WAIT", DEFAULT_OOM_WAIT_S)),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(config, **given) if given else config

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` return this configuration (worker children).
        A secret read from a file travels as the file's path, not as its value."""
        secret = ({JOB_SECRET_FILE_ENV: self.job_secret_file, JOB_SECRET_ENV: ""} if self.job_secret_file
                  else {JOB_SECRET_FILE_ENV: "", JOB_SECRET_ENV: self.job_secret.decode()})
        return {
            **secret,
            "MODELVERSE_ALLOW_PYTHON_GENERATORS": "1" if self.allow_python_specs else "",
            "MODELVERSE_OOM_WAIT": str(self.oom_wait_s),
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
