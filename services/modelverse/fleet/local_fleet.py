"""A throwaway fleet on this machine: a private redis-server and `modelverse worker` processes.

For tests and benchmarks (real Redis, real Celery workers, nothing mocked), and for trying the
fleet by hand. Redis runs with the settings docs/FLEET.md asks of production: append-only file
fsynced on every write, no eviction.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from modelverse.fleet.config import FleetConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


@dataclass
class RedisServer:
    """redis-server on a free loopback port, its data (AOF) kept in ``directory``."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_args: Sequence[str] = ()  # e.g. ("--maxmemory-policy", "allkeys-lru"): later settings win

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
                "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"), *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def ready() -> bool:
            try:
                # "loading" replies come back as errors while the AOF is replayed
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited; see {self.directory / 'redis.log'}")
                return False

        wait_until(ready, 20, f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to save; only what the AOF holds survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


@dataclass
class WorkerProcess:
    """One `modelverse worker` in its own session (so a kill takes its pool children too)."""

    name: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout_s: float = 90) -> WorkerProcess:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            return " ready." in self.log()

        wait_until(ready, timeout_s, f"worker {self.name} to start", interval_s=0.25)
        return self

    def kill(self) -> None:
        """kill -9 the worker and its pool processes, as a machine failure would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout_s: float = 30) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown: finish, then exit
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(
    config: FleetConfig,
    name: str,
    log_dir: Path,
    *,
    concurrency: int = 1,
    pythonpath: Sequence[str] = (),
    extra_env: dict[str, str] | None = None,
    allow_python_generators: bool = True,
    extra_args: Sequence[str] = (),
) -> WorkerProcess:
    """A `modelverse worker` with ``config``'s settings (its job secret, when it has one; without,
    the worker runs with --insecure-unsigned-jobs). Tests index ``py:`` test models, so python
    specs are allowed unless ``allow_python_generators`` is False."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    env = {**os.environ, **config.to_env(), "OMP_NUM_THREADS": str(config.torch_threads), **(extra_env or {})}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelverse.cli.main", "worker", "--concurrency", str(concurrency),
             "--name", f"{name}@%h", "--loglevel", "INFO",
             *([] if config.job_secret else ["--insecure-unsigned-jobs"]),
             *(["--allow-python-generators"] if allow_python_generators else []), *extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return WorkerProcess(name, log_path, process)
