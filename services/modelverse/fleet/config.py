"""The fleet's configuration: ``FleetConfig``, made field by field from ``settings.fleet.FleetSettings``
(the environment, or a worker's flags), with the job secret read; ``to_env`` hands it to child
processes by the same variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from modelverse.errors import FailedPreconditionError, InvalidInputError
from modelverse.settings.base import SettingsError, resolve
from modelverse.settings.fleet import (  # noqa: F401  (the fleet's defaults, imported from here too)
    DEFAULT_BROKER,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_OOM_WAIT_S,
    DEFAULT_RETRY_BACKOFF_MAX_S,
    DEFAULT_RETRY_BACKOFF_S,
    DEFAULT_VISIBILITY_TIMEOUT_S,
    JOB_SECRET_ENV,
    JOB_SECRET_FILE_ENV,
    FleetSettings,
)

# A chunk must finish within this fraction of the visibility timeout (see work.run_chunk).
CHUNK_TIME_FRACTION = 0.5
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
    def from_settings(cls, settings: FleetSettings, **overrides: object) -> FleetConfig:
        """Every field from the setting of the same name; the job secret read from its file (or
        checked when given inline). ``overrides`` that are not None win (a caller's flags)."""
        values: dict[str, Any] = {f.name: getattr(settings, f.name) for f in fields(cls)}
        values["job_secret"], values["job_secret_file"] = job_secret_from_env(
            {JOB_SECRET_FILE_ENV: settings.job_secret_file, JOB_SECRET_ENV: settings.job_secret.get_secret_value()})
        config = cls(**values)
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(config, **given) if given else config

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> FleetConfig:
        """The fleet's settings from its environment variables (settings.fleet)."""
        try:
            settings = resolve(FleetSettings, environ=environ).settings
        except SettingsError as exc:
            raise InvalidInputError(str(exc)) from None
        return cls.from_settings(settings, **overrides)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` return this configuration (worker children),
        every field by its variable. A secret read from a file travels as the file's path, not
        as its value."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "job_secret":
                value = "" if self.job_secret_file else value.decode()
            elif isinstance(value, bool):
                value = "1" if value else ""
            env[FleetSettings.env_of(f.name)] = str(value)
        return env
