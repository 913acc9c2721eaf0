"""`modelverse worker`: run one indexing worker (a Celery worker) against a Redis broker."""

from __future__ import annotations

import argparse
import os
import socket

from modelverse.cli.jobs import torch_device
from modelverse.fleet.config import FleetConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run an indexing worker on a Redis broker",
        description="Start a Celery worker that samples, encodes and summarises models. Run one "
        "per GPU (--concurrency 1) or one per machine with --concurrency = cores on CPU.",
    )
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="Redis broker URL (default: $MODELVERSE_BROKER or redis://127.0.0.1:6379/0)")
    parser.add_argument("--store-url", default=None, metavar="URL",
                        help="Redis store for statistics and jobs (default: $MODELVERSE_REDIS_STORE or the broker)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    parser.add_argument("--pool", choices=["prefork", "solo", "threads"], default="prefork",
                        help="process pool; prefork isolates a crashing model in its process (default)")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="torch threads per process (default: $MODELVERSE_TORCH_THREADS or 1)")
    parser.add_argument("--device", default=None,
                        help="torch device for generators and the encoder, e.g. cuda:0 (one worker per "
                        "GPU, --concurrency 1); default: $MODELVERSE_DEVICE, else cuda when torch sees a GPU, else cpu")
    parser.add_argument("--visibility-timeout", type=int, default=None, metavar="S",
                        help="seconds before an unacknowledged chunk is handed to another worker; "
                        "must exceed the longest chunk (default: $MODELVERSE_VISIBILITY_TIMEOUT or 3600)")
    parser.add_argument("--name", default=None, help="worker node name (default: modelverse-PID@HOST)")
    parser.add_argument("--loglevel", default="INFO")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {args.concurrency}")
    config = FleetConfig.from_env(
        broker_url=args.broker,
        store_url=args.store_url,
        torch_threads=args.torch_threads,
        visibility_timeout_s=args.visibility_timeout,
        device=torch_device(args.device),
    )
    from modelverse.fleet.redis_access import check_fleet_redis

    # A wrong password or ACL user ends the worker here, instead of minutes of connection retries.
    check_fleet_redis({"broker": config.broker_url, "Redis store": config.redis_store_url,
                       "result backend": config.backend_url})
    # Pool processes and anything they spawn read the same settings.
    os.environ.update(config.to_env())
    from modelverse.fleet.app import configure

    app = configure(config)
    import modelverse.fleet.tasks  # noqa: F401  (registers the tasks)
    from modelverse.fleet.watchdog import install

    install(app)

    name = args.name or f"modelverse-{os.getpid()}@{socket.gethostname()}"
    app.worker_main([
        "worker",
        f"--concurrency={args.concurrency}",
        f"--pool={args.pool}",
        f"--loglevel={args.loglevel}",
        f"--hostname={name}",
        "--queues=modelverse",
        "--without-gossip",
        "--without-mingle",
    ])
    return 0
