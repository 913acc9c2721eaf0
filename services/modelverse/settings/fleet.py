"""The indexing fleet's settings: what every process that talks to the Celery fleet shares (the
workers, the admin with --broker, `modelverse index --broker`), and the worker's own
(``modelverse worker``).

The fleet's environment variables keep their historical names (``MODELVERSE_BROKER``,
``MODELVERSE_VISIBILITY_TIMEOUT``, ...), given field by field; the worker's own settings have the
prefix ``MODELVERSE_WORKER_``. ``fleet.config.FleetConfig`` is made from ``FleetSettings`` field by
field and passes itself to child processes through these same variables (``to_env``)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, field_validator

from modelverse.settings.base import ProcessSettings, setting

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

JOB_SECRET_ENV = "MODELVERSE_JOB_SECRET"
JOB_SECRET_FILE_ENV = "MODELVERSE_JOB_SECRET_FILE"


class FleetSettings(ProcessSettings):
    """The fleet's shared settings; field names are ``FleetConfig``'s."""

    process = "fleet"
    env_prefix = "MODELVERSE_"

    broker_url: str = setting(DEFAULT_BROKER, "Redis broker URL", flag="--broker", env="MODELVERSE_BROKER",
                              metavar="URL")
    result_backend: str = setting("", "Celery result backend (default: the broker's Redis)",
                                  env="MODELVERSE_RESULT_BACKEND", metavar="URL")
    store_url: str = setting("", "Redis store for statistics, partials and jobs (default: the broker's Redis)",
                             env="MODELVERSE_REDIS_STORE", metavar="URL")
    store_prefix: str = setting("mv", "key prefix of the Redis store", env="MODELVERSE_REDIS_PREFIX")
    visibility_timeout_s: int = setting(DEFAULT_VISIBILITY_TIMEOUT_S,
                                        "seconds before an unacknowledged chunk is handed to another worker; a "
                                        "chunk that takes more than half of it fails its job",
                                        flag="--visibility-timeout", env="MODELVERSE_VISIBILITY_TIMEOUT",
                                        metavar="S")
    max_retries: int = setting(DEFAULT_MAX_RETRIES, "retries of a failed chunk task", env="MODELVERSE_MAX_RETRIES")
    retry_backoff_s: float = setting(DEFAULT_RETRY_BACKOFF_S, "first retry's delay, in seconds (doubling)",
                                     flag="--retry-backoff", env="MODELVERSE_RETRY_BACKOFF", metavar="S")
    retry_backoff_max_s: float = setting(DEFAULT_RETRY_BACKOFF_MAX_S, "longest retry delay, in seconds",
                                         flag="--retry-backoff-max", env="MODELVERSE_RETRY_BACKOFF_MAX",
                                         metavar="S")
    # One process per GPU or per core is the unit of parallelism; more threads per process only
    # fight each other on a shared CPU.
    torch_threads: int = setting(1, "torch threads per process", env="MODELVERSE_TORCH_THREADS", metavar="N")
    device: str = setting("cpu", "torch device for generators and the encoder, e.g. cuda:0",
                          env="MODELVERSE_DEVICE")
    stall_timeout_s: int = setting(0, "a job without progress for this long has its current round sent again "
                                      "(0: twice the visibility timeout)", flag="--stall-timeout",
                                   env="MODELVERSE_STALL_TIMEOUT", metavar="S")
    # Job messages are signed with this shared secret (HMAC-SHA256, fleet.signing); never a flag
    # (the process list shows flags) and never printed.
    job_secret: SecretStr = setting(SecretStr(""), "shared secret that signs job messages (prefer the file)",
                                    env=JOB_SECRET_ENV, cli=False, secret=True)
    job_secret_file: str = setting("", "shared secret that job messages are signed with (HMAC-SHA256)",
                                   env=JOB_SECRET_FILE_ENV, metavar="FILE")
    allow_python_specs: bool = setting(False, "also load py:MODULE:FACTORY generator and encoder specs (they "
                                              "import and call any Python function)",
                                       flag="--allow-python-generators", env="MODELVERSE_ALLOW_PYTHON_GENERATORS")
    oom_wait_s: float = setting(DEFAULT_OOM_WAIT_S, "seconds a task waits for a Redis out of memory before it "
                                                    "fails its job", flag="--oom-wait", env="MODELVERSE_OOM_WAIT",
                                metavar="S")

    @field_validator("visibility_timeout_s", "torch_threads")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("max_retries", "stall_timeout_s")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"must be at least 0, got {value}")
        return value


class WorkerSettings(FleetSettings):
    """``modelverse worker``: one Celery worker of the fleet."""

    process = "worker"
    env_prefix = "MODELVERSE_WORKER_"
    program = "modelverse worker"
    description = ("Start a Celery worker that samples, encodes and summarises models. Run one per GPU "
                   "(--concurrency 1) or one per machine with --concurrency = cores on CPU.")

    device: str | None = setting(None, "torch device for generators and the encoder, e.g. cuda:0 (one worker "
                                       "per GPU, --concurrency 1); default: cuda when torch sees a GPU, else cpu",
                                 env="MODELVERSE_DEVICE")
    concurrency: int = setting(1, "worker processes", metavar="N")
    pool: Literal["prefork", "solo", "threads"] = setting(
        "prefork", "process pool; prefork isolates a crashing model in its process")
    insecure_unsigned_jobs: bool = setting(False, "run without a job secret: anyone who can write to the broker "
                                                  "chooses what runs")
    allow_evicting_redis: bool = setting(False, "start even when Redis's maxmemory-policy would evict the fleet's "
                                                "data")
    metrics_port: int = setting(0, "serve the fleet's Prometheus metrics on this port (0: none)", metavar="PORT")
    metrics_host: str = setting("127.0.0.1", "address of the metrics endpoint")
    name: str | None = setting(None, "worker node name (default: modelverse-PID@HOST)")
    loglevel: str = setting("INFO", "Celery's log level")

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value
