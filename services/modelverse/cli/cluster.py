"""`modelverse cluster up|down`: the serving cluster on loopback, from a model store."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import Any

from modelverse.errors import InvalidInputError
from modelverse.serving.loopback_cluster import SETTINGS, Cluster, ClusterError, ClusterSpec, stop_recorded
from modelverse.settings.base import add_field_argument, read_config_file
from modelverse.settings.gateway import GatewaySettings
from modelverse.settings.web import WebSettings
from modelverse.store.directory import DirectoryStore

DEFAULT_RUN_DIR = ".modelverse/cluster"


# `cluster up`'s flags that set one process's setting: flag, process, field (help and type come
# from the settings class; the processes' own flags have the same names).
PROCESS_FLAGS = (
    ("--candidates", "gateway", "candidates"),
    ("--generators", "gateway", "generators"),
    ("--nprobe", "shard", "nprobe"),
    ("--broker", "admin", "broker"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    cluster = subparsers.add_parser("cluster", help="run the gRPC serving cluster on this machine")
    actions = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start shards, gateway and admin; Ctrl-C stops them",
                            description="Every process's other settings come from --config FILE ([shard], "
                            "[gateway], [admin], [web] tables) or its environment variables "
                            "(`modelverse config show --process NAME`).")
    up.add_argument("--store", default=os.environ.get("MODELVERSE_STORE"), required=os.environ.get("MODELVERSE_STORE") is None,
                    metavar="DIR", help="model store directory (default: $MODELVERSE_STORE)")
    up.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="indexes, logs and ports (default: %(default)s)")
    up.add_argument("--config", type=Path, default=None, metavar="FILE",
                    help="settings of the processes, TOML or YAML: a table per process ([shard], [gateway], ...)")
    up.add_argument("--shards", type=int, default=2)
    up.add_argument("--replicas", type=int, default=1, help="processes per shard")
    up.add_argument("--port", type=int, default=50051, help="gateway port (0: any free port)")
    up.add_argument("--admin-port", type=int, default=50052)
    add_field_argument(up, GatewaySettings, "encoder", help="encoder for text and image queries (the gateway's "
                       "and the admin's)", dest="encoder")
    for flag, process, name in PROCESS_FLAGS:
        add_field_argument(up, SETTINGS[process], name, flag=flag, dest=f"{process}.{name}")
    up.add_argument("--tls", action="store_true",
                    help="make a throw-away CA (RUN_DIR/ca.pem) and serve TLS (mutual TLS to the shards)")
    up.add_argument("--web-port", type=int, default=WebSettings.default_of("port"),
                    help="the web page's HTTP port (0: any free port; default: %(default)s)")
    up.add_argument("--no-web", action="store_true", help="no web page in front of the gateway")
    up.add_argument("--detach", action="store_true", help="leave it running; stop it with `modelverse cluster down`")
    up.set_defaults(handler=cluster_up)

    down = actions.add_parser("down", help="stop a cluster started with --detach")
    down.add_argument("--run-dir", default=DEFAULT_RUN_DIR)
    down.set_defaults(handler=cluster_down)


def process_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each process's settings from --config's tables, then the flags of PROCESS_FLAGS."""
    options: dict[str, dict[str, Any]] = {}
    for process in SETTINGS:
        options[process] = read_config_file(args.config, process) if args.config else {}
    for _, process, name in PROCESS_FLAGS:
        value = getattr(args, f"{process}.{name}", None)
        if value is not None:
            options[process][name] = value
    return options


def cluster_up(args: argparse.Namespace) -> int:
    if args.shards < 1 or args.replicas < 1:
        raise InvalidInputError("--shards and --replicas must be at least 1")
    options = process_options(args)
    encoder = getattr(args, "encoder", None)
    if options["admin"].get("broker") and not encoder:
        raise InvalidInputError("--broker needs --encoder (the spec the fleet encodes samples with)")
    if not DirectoryStore.exists(args.store):
        raise InvalidInputError(f"{args.store}: no model store here")
    try:
        spec = ClusterSpec(
            store=Path(args.store).resolve(), run_dir=Path(args.run_dir).resolve(), shards=args.shards,
            replicas=args.replicas, gateway_port=args.port, admin_port=args.admin_port, encoder=encoder,
            tls=args.tls, web_port=None if args.no_web else args.web_port, **options,
        )
    except ClusterError as exc:
        raise InvalidInputError(str(exc)) from exc
    try:
        cluster = Cluster(spec).start()
    except ClusterError as exc:
        raise InvalidInputError(str(exc)) from exc
    print(f"gateway  {cluster.gateway.address}  (modelverse.v1.SearchService)")
    print(f"admin    {cluster.admin.address}  (modelverse.v1.AdminService)")
    if cluster.web is not None:
        print(f"web      {cluster.web.url}  (open it in a browser)")
    for replicas in cluster.shard_processes:
        print("shard    " + ", ".join(p.address for p in replicas))
    print(f"keys     {spec.run_dir / 'admin.key'} (admin), {spec.run_dir / 'read.key'} (read); "
          "send as 'authorization: Bearer <key>'")
    if cluster.client_tls is not None:
        print(f"tls      CA {cluster.client_tls.ca}")
    if spec.admin.get("broker"):
        secret = f"--job-secret-file {cluster.job_secret_file}" if cluster.job_secret_file else "the same job secret"
        print(f"fleet    start workers with: modelverse worker --broker {spec.admin['broker']} {secret}")
    print(f"logs     {spec.run_dir / 'logs'}")
    if args.detach:
        print("running; stop with: modelverse cluster down" + (f" --run-dir {args.run_dir}" if args.run_dir != DEFAULT_RUN_DIR else ""))
        return 0
    stop = threading.Event()
    # Explicit handlers: a shell that starts us in the background ignores SIGINT for us.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("Ctrl-C stops the cluster", flush=True)
    try:
        stop.wait()
    finally:
        cluster.stop()
        print("cluster stopped")
    return 0


def cluster_down(args: argparse.Namespace) -> int:
    try:
        stopped = stop_recorded(Path(args.run_dir))
    except ClusterError as exc:
        raise InvalidInputError(str(exc)) from exc
    print(f"stopped {stopped} process(es)")
    return 0
