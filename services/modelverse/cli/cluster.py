"""`modelverse cluster up|down`: the serving cluster on loopback, from a model store."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from modelverse.errors import InvalidInputError
from modelverse.serving.cluster import Cluster, ClusterError, ClusterSpec, stop_recorded
from modelverse.store.directory import DirectoryStore

DEFAULT_RUN_DIR = ".modelverse/cluster"


def register(subparsers: argparse._SubParsersAction) -> None:
    cluster = subparsers.add_parser("cluster", help="run the gRPC serving cluster on this machine")
    actions = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start shards, gateway and admin; Ctrl-C stops them")
    up.add_argument("--store", default=os.environ.get("MODELVERSE_STORE"), required=os.environ.get("MODELVERSE_STORE") is None,
                    metavar="DIR", help="model store directory (default: $MODELVERSE_STORE)")
    up.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="indexes, logs and ports (default: %(default)s)")
    up.add_argument("--shards", type=int, default=2)
    up.add_argument("--replicas", type=int, default=1, help="processes per shard")
    up.add_argument("--port", type=int, default=50051, help="gateway port (0: any free port)")
    up.add_argument("--admin-port", type=int, default=50052)
    up.add_argument("--candidates", type=int, default=None,
                    help="first-stage candidates per shard for every method (default: the gateway's per-method "
                         "values: 20 for FIRST_MOMENT, 3,200 for MGF, 200 otherwise)")
    up.add_argument("--nprobe", type=int, default=None, help="IVF lists scanned (default: the index rule's)")
    up.add_argument("--encoder", default=None, help="encoder for text and image queries")
    up.add_argument("--generators", choices=["none", "zoo"], default="none",
                    help="generators for SampleImages (zoo: the bundled zoo's)")
    up.add_argument("--broker", default=None, metavar="redis://HOST:PORT/DB",
                    help="the admin runs generator jobs on this Celery fleet and follows its events "
                         "(default: inside the admin; generator jobs need --encoder)")
    up.add_argument("--tls", action="store_true",
                    help="make a throw-away CA (RUN_DIR/ca.pem) and serve TLS (mutual TLS to the shards)")
    up.add_argument("--web-port", type=int, default=8080,
                    help="the web page's HTTP port (0: any free port; default: %(default)s)")
    up.add_argument("--no-web", action="store_true", help="no web page in front of the gateway")
    up.add_argument("--detach", action="store_true", help="leave it running; stop it with `modelverse cluster down`")
    up.set_defaults(handler=cluster_up)

    down = actions.add_parser("down", help="stop a cluster started with --detach")
    down.add_argument("--run-dir", default=DEFAULT_RUN_DIR)
    down.set_defaults(handler=cluster_down)


def cluster_up(args: argparse.Namespace) -> int:
    if args.shards < 1 or args.replicas < 1:
        raise InvalidInputError("--shards and --replicas must be at least 1")
    if args.broker and not args.encoder:
        raise InvalidInputError("--broker needs --encoder (the spec the fleet encodes samples with)")
    if not DirectoryStore.exists(args.store):
        raise InvalidInputError(f"{args.store}: no model store here")
    spec = ClusterSpec(
        store=Path(args.store).resolve(), run_dir=Path(args.run_dir).resolve(), shards=args.shards,
        replicas=args.replicas, gateway_port=args.port, admin_port=args.admin_port,
        candidates=args.candidates, nprobe=args.nprobe, encoder=args.encoder,
        generators=args.generators, broker=args.broker, tls=args.tls,
        web_port=None if args.no_web else args.web_port,
    )
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
    if args.broker:
        secret = f"--job-secret-file {cluster.job_secret_file}" if cluster.job_secret_file else "the same job secret"
        print(f"fleet    start workers with: modelverse worker --broker {args.broker} {secret}")
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
