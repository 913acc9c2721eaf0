"""A local serving cluster on loopback: S shards x R replicas, a gateway, an admin service.

Every part is its own process (``python -m modelverse.serving.<part>``), started from one
DirectoryStore, with its log in ``RUN_DIR/logs/``. ``Cluster.start`` returns once every process
reports SERVING through gRPC health checking; ``Cluster.stop`` sends SIGTERM and waits (SIGKILL
after a grace period). ``RUN_DIR/cluster.json`` records the processes so that
``modelverse cluster down`` can stop a cluster started by another command.

Access: the cluster makes its own API keys in the run directory (``api-keys.json`` hashed, for
the gateway and admin; ``admin.key`` and ``read.key``, mode 0600, for clients). With ``tls`` it
also makes a throw-away CA (``ca.pem``) and certificates under ``tls/``: the gateway and the
admin serve TLS, the shards mutual TLS that only the gateway's and admin's client certificate
passes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from modelverse.client import connect, read_key_file
from modelverse.errors import FailedPreconditionError
from modelverse.security.keys import KeyRing, KeysFile, Role, write_secret
from modelverse.security.tls import ClientTLS
from modelverse.settings.admin import AdminSettings
from modelverse.settings.base import ProcessSettings, describe, to_argv
from modelverse.settings.gateway import GatewaySettings
from modelverse.settings.shard import ShardSettings
from modelverse.settings.web import WebSettings

STATE_FILE = "cluster.json"
KEYS_FILE = "api-keys.json"
ADMIN_KEY_FILE = "admin.key"
READ_KEY_FILE = "read.key"
JOB_SECRET_FILE = "job.secret"  # with --broker: the fleet's job secret, for the admin and the workers
CA_FILE = "ca.pem"
TLS_DIR = "tls"


class ClusterError(FailedPreconditionError, RuntimeError):
    pass


# Each process's settings class, and the settings the cluster decides itself for it (layout,
# addresses, ports, keys, TLS files, logs): a ClusterSpec gives the others by name.
SETTINGS: dict[str, type[ProcessSettings]] = {
    "shard": ShardSettings, "gateway": GatewaySettings, "admin": AdminSettings, "web": WebSettings,
}
_LISTEN = {"host", "port", "port_file", "log_level"}
_SERVER_TLS = {"tls_cert", "tls_key", "tls_client_ca"}
_FRONT = _LISTEN | _SERVER_TLS | {"shard", "api_keys", "insecure_no_auth", "shard_tls_ca", "shard_tls_cert",
                                  "shard_tls_key", "encoder"}
SET_BY_CLUSTER: dict[str, frozenset[str]] = {
    "shard": frozenset(_LISTEN | _SERVER_TLS | {"store", "shard", "shards", "index_dir"}),
    "gateway": frozenset(_FRONT),
    "admin": frozenset(_FRONT | {"store", "job_secret_file"}),
    "web": frozenset(_LISTEN | {"gateway", "https_cert", "https_key", "https_client_ca", "api_key", "api_key_file",
                                "tls_ca", "tls", "tls_cert", "tls_key"}),
}


@dataclass(frozen=True)
class ClusterSpec:
    """A cluster: its layout and access, and each process's settings by field name (the
    ``shard``, ``gateway``, ``admin`` and ``web`` mappings, of settings.shard.ShardSettings' fields
    and so on), e.g. ``ClusterSpec(store, run, shard={"nprobe": 8}, gateway={"candidates": 400})``.
    Every process gets its mapping as flags generated from its settings class; the fields the
    cluster decides (SET_BY_CLUSTER) are refused there."""

    store: Path
    run_dir: Path
    shards: int = 2
    replicas: int = 1
    host: str = "127.0.0.1"
    gateway_port: int = 0  # 0 = any free port
    admin_port: int = 0
    web_port: int | None = None  # the web page (modelverse.web) in front of the gateway; None: none, 0: any port
    encoder: str | None = None  # the gateway's and the admin's (generator jobs encode with it)
    threads_per_process: int = 1  # OpenMP/BLAS threads: many processes share few cores
    startup_timeout: float = 300.0
    log_level: str = "INFO"
    auth: bool = True  # False: gateway and admin run --insecure-no-auth (loopback hosts only)
    tls: bool = False  # a throw-away CA and certificates in the run directory
    shard: Mapping[str, Any] = field(default_factory=dict)
    gateway: Mapping[str, Any] = field(default_factory=dict)
    admin: Mapping[str, Any] = field(default_factory=dict)
    web: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for process, cls in SETTINGS.items():
            given = set(self.options(process))
            unknown = sorted(given - set(cls.model_fields))
            if unknown:
                raise ClusterError(f"ClusterSpec.{process}: no {process} setting {', '.join(map(repr, unknown))} "
                                   f"(see `modelverse config show --process {process}`)")
            owned = sorted(given & SET_BY_CLUSTER[process])
            if owned:
                raise ClusterError(f"ClusterSpec.{process}: {', '.join(owned)} set by the cluster itself")

    def options(self, process: str) -> Mapping[str, Any]:
        """The settings this spec gives ``process`` (shard, gateway, admin, web) by field name."""
        return getattr(self, process)


@dataclass
class Process:
    name: str
    module: str  # python -m MODULE
    settings: ProcessSettings
    given: frozenset[str]  # the fields given explicitly: flags even at their default
    log_file: Path
    popen: subprocess.Popen | None = None
    port: int = 0
    scheme: str = "http"  # of an HTTP process (the web page)

    @property
    def argv(self) -> list[str]:
        """The command line, generated from the settings (settings.base.to_argv)."""
        return [sys.executable, "-m", self.module, *to_argv(self.settings, include=self.given)]

    @property
    def port_file(self) -> Path:
        return Path(str(self.settings.port_file))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"


@dataclass
class Cluster:
    spec: ClusterSpec
    shard_processes: list[list[Process]] = field(default_factory=list)
    gateway: Process | None = None
    admin: Process | None = None
    web: Process | None = None
    admin_key: str | None = None
    read_key: str | None = None
    client_tls: ClientTLS | None = None  # what a client of the gateway / admin needs (the CA)
    internal_tls: ClientTLS | None = None  # the gateway's and admin's client certificate for the shards
    job_secret_file: Path | None = None  # made by start() with a broker, unless the environment names one

    # -- access -----------------------------------------------------------------------------------

    def _prepare_job_secret(self) -> None:
        """With a broker, the admin signs the fleet's job messages (docs/SECURITY.md): the secret
        the environment names ($MODELVERSE_JOB_SECRET_FILE / $MODELVERSE_JOB_SECRET, inherited by
        the admin), else the run directory's ``job.secret``, made once (mode 0600) and kept across
        restarts, so workers started with ``--job-secret-file RUN/job.secret`` keep working."""
        if not self.spec.admin.get("broker") or os.environ.get("MODELVERSE_JOB_SECRET_FILE") or os.environ.get("MODELVERSE_JOB_SECRET"):
            return
        path = self.spec.run_dir / JOB_SECRET_FILE
        if not path.exists():
            write_secret(path, secrets.token_hex(32))
        self.job_secret_file = path

    def _prepare_keys(self) -> None:
        """Reuse the run directory's keys when they still verify (clients keep their key files
        across restarts), else make a new admin and read key."""
        run = self.spec.run_dir
        keys, admin_file, read_file = run / KEYS_FILE, run / ADMIN_KEY_FILE, run / READ_KEY_FILE
        try:
            ring = KeyRing(keys)
            admin, read = read_key_file(admin_file), read_key_file(read_file)
            admin_role, read_role = ring.role_of(admin), ring.role_of(read)
            if admin_role and admin_role[1] is Role.ADMIN and read_role and read_role[1] is Role.READ:
                self.admin_key, self.read_key = admin, read
                return
        except (OSError, ValueError):
            pass
        fresh = KeysFile(keys, [])
        self.admin_key = fresh.create(Role.ADMIN, label="cluster up")
        self.read_key = fresh.create(Role.READ, label="cluster up")
        fresh.save()
        write_secret(admin_file, self.admin_key)
        write_secret(read_file, self.read_key)

    def _prepare_tls(self) -> None:
        from modelverse.security.certs import LocalCA  # needs the cryptography package

        run = self.spec.run_dir
        ca = LocalCA.create()
        ca_file = ca.write_ca(run / CA_FILE)
        for name in ("gateway", "admin", "shard", "web"):
            ca.issue(run / TLS_DIR, name, client=False)
        internal = ca.issue(run / TLS_DIR, "internal-client", server=False)
        self.client_tls = ClientTLS(ca_file)
        self.internal_tls = ClientTLS(ca_file, internal.cert, internal.key)

    def _server_tls(self, name: str, client_ca: bool = False) -> dict[str, Any]:
        if not self.spec.tls:
            return {}
        tls = self.spec.run_dir / TLS_DIR
        values: dict[str, Any] = {"tls_cert": tls / f"{name}.pem", "tls_key": tls / f"{name}.key"}
        return values | ({"tls_client_ca": self.spec.run_dir / CA_FILE} if client_ca else {})

    def _front(self, name: str) -> dict[str, Any]:
        """Access, TLS and encoder settings of the gateway or the admin."""
        values: dict[str, Any] = ({"api_keys": self.spec.run_dir / KEYS_FILE} if self.spec.auth
                                  else {"insecure_no_auth": True})
        values |= self._server_tls(name)
        if self.internal_tls is not None:
            values |= {"shard_tls_ca": self.internal_tls.ca, "shard_tls_cert": self.internal_tls.cert,
                       "shard_tls_key": self.internal_tls.key}
        if self.spec.encoder:
            values["encoder"] = self.spec.encoder
        return values

    def channel(self, process: Process, api_key: str | None = None) -> grpc.Channel:
        """A client channel to the gateway or the admin (TLS when the cluster has it) carrying
        ``api_key``."""
        return connect(process.address, api_key, self.client_tls)

    def _tls_for(self, process: Process) -> ClientTLS | None:
        return self.client_tls if any(process is p for p in (self.gateway, self.admin)) else self.internal_tls

    # -- processes ----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        threads = str(self.spec.threads_per_process)
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        return env

    def _process(self, name: str, module: str, process: str, values: Mapping[str, Any]) -> Process:
        """One process: the spec's settings for it, then what the cluster decides (``values``,
        host, logs, port file), validated by its settings class (settings.<process>)."""
        spec = self.spec
        given = {**spec.options(process), **values, "host": spec.host, "log_level": spec.log_level,
                 "port_file": str(spec.run_dir / "ports" / f"{name}.port")}
        cls = SETTINGS[process]
        try:
            settings = cls.model_validate(given)
        except ValidationError as exc:
            raise ClusterError(f"{name}: {describe(cls, exc, dict.fromkeys(given, 'spec'), given)}") from None
        return Process(name, module, settings, frozenset(given), spec.run_dir / "logs" / f"{name}.log")

    def _launch(self, process: Process) -> None:
        process.port_file.unlink(missing_ok=True)
        process.log_file.parent.mkdir(parents=True, exist_ok=True)
        process.port_file.parent.mkdir(parents=True, exist_ok=True)
        with open(process.log_file, "ab") as log:
            # A session of its own: Ctrl-C in the terminal reaches `cluster up`, which stops
            # the processes in order, instead of killing them all at once mid-request.
            process.popen = subprocess.Popen(
                process.argv, stdout=log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True
            )

    def _wait_ready(self, process: Process, deadline: float) -> None:
        while True:
            if process.popen is not None and process.popen.poll() is not None:
                tail = process.log_file.read_text(errors="replace")[-2000:]
                raise ClusterError(f"{process.name} exited with status {process.popen.returncode}:\n{tail}")
            if process.port_file.exists():
                process.port = int(process.port_file.read_text().strip())
                if process is self.web:
                    if http_ready(f"{process.url}healthz", self.client_tls.ca if self.client_tls else None):
                        return
                elif health_check(process.address, timeout=2.0, tls=self._tls_for(process)):
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"{process.name} did not become ready; see {process.log_file}")
            time.sleep(0.05)

    def shard_process(self, shard: int, replica: int) -> Process:
        spec = self.spec
        return self._process(f"shard-{shard}-r{replica}", "modelverse.serving.shard", "shard", {
            "store": spec.store, "shard": shard, "shards": spec.shards,
            "index_dir": spec.run_dir / "index" / f"shard-{shard}-of-{spec.shards}-r{replica}",
            **self._server_tls("shard", client_ca=True),
        })

    def shard_addresses(self) -> list[str]:
        """The gateway's and the admin's --shard values: one per shard, its replicas comma-separated."""
        return [",".join(p.address for p in replicas) for replicas in self.shard_processes]

    def gateway_process(self) -> Process:
        return self._process("gateway", "modelverse.serving.gateway", "gateway", {
            "shard": self.shard_addresses(), "port": self.spec.gateway_port, **self._front("gateway"),
        })

    def admin_process(self) -> Process:
        spec = self.spec
        values = {"store": spec.store, "shard": self.shard_addresses(), "port": spec.admin_port, **self._front("admin")}
        if spec.admin.get("broker") and self.job_secret_file is not None:
            values["job_secret_file"] = str(self.job_secret_file)
        return self._process("admin", "modelverse.serving.admin", "admin", values)

    def admin_arguments(self) -> list[str]:
        """The admin's flags (its command line without the interpreter)."""
        return self.admin_process().argv[3:]

    def web_process(self) -> Process:
        """The web page, a client of the gateway's public API with the cluster's read key."""
        spec = self.spec
        assert self.gateway is not None and spec.web_port is not None
        values: dict[str, Any] = {"gateway": self.gateway.address, "port": spec.web_port}
        if spec.auth:
            values["api_key_file"] = str(spec.run_dir / READ_KEY_FILE)
        if self.client_tls is not None and self.client_tls.ca is not None:
            tls = spec.run_dir / TLS_DIR
            values |= {"tls_ca": self.client_tls.ca, "https_cert": tls / "web.pem", "https_key": tls / "web.key"}
        process = self._process("web", "modelverse.web", "web", values)
        process.scheme = "https" if self.client_tls is not None else "http"
        return process

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Cluster:
        spec = self.spec
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + spec.startup_timeout
        self._prepare_keys()
        self._prepare_job_secret()
        if spec.tls:
            self._prepare_tls()
        try:
            self.shard_processes = [[self.shard_process(s, r) for r in range(spec.replicas)] for s in range(spec.shards)]
            for replicas in self.shard_processes:
                for p in replicas:
                    self._launch(p)
            for replicas in self.shard_processes:
                for p in replicas:
                    self._wait_ready(p, deadline)
            self.gateway = self.gateway_process()
            self.admin = self.admin_process()
            self._launch(self.gateway)
            self._launch(self.admin)
            self._wait_ready(self.gateway, deadline)
            self._wait_ready(self.admin, deadline)
            if spec.web_port is not None:
                self.web = self.web_process()
                self._launch(self.web)
                self._wait_ready(self.web, deadline)
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def processes(self) -> list[Process]:
        found = [p for replicas in self.shard_processes for p in replicas]
        return found + [p for p in (self.gateway, self.admin, self.web) if p is not None]

    def _write_state(self) -> None:
        state = {
            "spec": json.loads(json.dumps(asdict(self.spec), default=str)),
            "gateway": self.gateway.address if self.gateway else None,
            "admin": self.admin.address if self.admin else None,
            "web": self.web.url if self.web else None,
            "admin_key_file": str(self.spec.run_dir / ADMIN_KEY_FILE),
            "read_key_file": str(self.spec.run_dir / READ_KEY_FILE),
            "ca": str(self.client_tls.ca) if self.client_tls else None,
            "processes": [{"name": p.name, "pid": p.popen.pid, "address": p.address}
                          for p in self.processes() if p.popen is not None],
        }
        (self.spec.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    def stop(self, grace: float = 5.0) -> None:
        """The web page, gateway and admin first (no new work), then the shards."""
        ordered = [p for p in (self.web, self.gateway, self.admin) if p is not None]
        ordered += [p for replicas in self.shard_processes for p in replicas]
        for p in ordered:
            if p.popen is not None and p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in ordered:
            if p.popen is None:
                continue
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
        (self.spec.run_dir / STATE_FILE).unlink(missing_ok=True)

    # -- for failure tests and operators ----------------------------------------------------------

    def kill_shard(self, shard: int, replica: int = 0) -> None:
        """SIGKILL one shard replica (a crash, not a clean stop)."""
        p = self.shard_processes[shard][replica]
        if p.popen is not None:
            p.popen.kill()
            p.popen.wait()

    def stop_gateway(self) -> None:
        """SIGTERM the gateway and wait (its clients, the web page among them, see it gone)."""
        p = self.gateway
        if p is not None and p.popen is not None and p.popen.poll() is None:
            p.popen.terminate()
            p.popen.wait(timeout=30)

    def restart_gateway(self, timeout: float = 120.0) -> None:
        """Start the stopped gateway again on the same port (its clients know it by address)."""
        p = self.gateway
        assert p is not None
        p.settings = p.settings.model_copy(update={"port": p.port})
        p.given |= {"port"}
        self._launch(p)
        self._wait_ready(p, time.monotonic() + timeout)

    def pause_shard(self, shard: int, replica: int = 0) -> None:
        """SIGSTOP one shard replica: a hung process that keeps its connections and answers nothing."""
        self._signal_shard(shard, replica, signal.SIGSTOP)

    def resume_shard(self, shard: int, replica: int = 0) -> None:
        self._signal_shard(shard, replica, signal.SIGCONT)

    def _signal_shard(self, shard: int, replica: int, sig: signal.Signals) -> None:
        p = self.shard_processes[shard][replica]
        if p.popen is not None and p.popen.poll() is None:
            p.popen.send_signal(sig)

    def restart_shard(self, shard: int, replica: int = 0, timeout: float = 120.0) -> None:
        """Start a killed replica again on the same port (the gateway knows it by address)."""
        p = self.shard_processes[shard][replica]
        p.settings = p.settings.model_copy(update={"port": p.port})
        p.given |= {"port"}
        self._launch(p)
        self._wait_ready(p, time.monotonic() + timeout)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_ready(url: str, ca: Path | None = None, timeout: float = 2.0) -> bool:
    """Whether an HTTP(S) endpoint answers 200 (the web page's /healthz); ``ca``: trust for HTTPS."""
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:
            return answer.status == 200
    except OSError:
        return False


def health_check(address: str, timeout: float = 2.0, service: str = "", tls: ClientTLS | None = None) -> bool:
    with connect(address, tls=tls) as ch:
        try:
            answer = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def stop_recorded(run_dir: Path, grace: float = 5.0) -> int:
    """Stop the processes a cluster recorded in RUN_DIR/cluster.json; returns how many were running."""
    path = run_dir / STATE_FILE
    if not path.exists():
        raise ClusterError(f"{run_dir}: no running cluster recorded here")
    state = json.loads(path.read_text())
    pids = [int(p["pid"]) for p in state["processes"]]
    running = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            running.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for pid in running:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return len(running)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A stopped child of ours that nobody waited for is a zombie: it is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
