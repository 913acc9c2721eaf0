"""The Celery application of the fleet, configured for at-least-once delivery made safe.

Why each setting:

- ``task_acks_late``: a message is acknowledged after its task ran, so a worker that dies
  mid-chunk leaves the message to be delivered again (chunk writes are idempotent).
- ``worker_prefetch_multiplier = 1``: a worker reserves one message per process; chunks are
  long, and a prefetched chunk would wait behind a busy process while another worker idles.
- ``task_reject_on_worker_lost``: a pool process killed mid-task (OOM, kill -9) requeues its
  message at once instead of marking it failed.
- ``visibility_timeout``: how long Redis waits for an acknowledgement before it hands an
  unacknowledged message to another worker (after the whole worker died). It must exceed the
  longest chunk, or chunks run twice. Workers look for such messages a few times per timeout.
- results carry only partial-moment keys (short strings); arrays stay in the store.
"""

from __future__ import annotations

import threading

from celery import Celery
from kombu import pools as kombu_pools

from modelverse.fleet.config import FleetConfig

app = Celery("modelverse.fleet", include=["modelverse.fleet.tasks"])


def configure(config: FleetConfig) -> Celery:
    """Point the fleet's app at ``config``'s Redis. Celery keeps its connection pools and result
    backend once used; pointing a process at another Redis (a test suite's private servers one
    after the other, an admin moved to a new broker) drops them first."""
    previous = app.conf.get("modelverse_config")
    if isinstance(previous, FleetConfig) and (previous.broker_url, previous.backend_url) != (config.broker_url, config.backend_url):
        _drop_connections()
    transport = {
        "visibility_timeout": config.visibility_timeout_s,
        # kombu sweeps for messages whose visibility timeout expired every interval x throttle
        # seconds (100 s by default); sweep a few times per timeout instead, so a dead
        # worker's chunk waits about one visibility timeout, not minutes more.
        "unacked_restore_interval": max(1, min(60, config.visibility_timeout_s // 4)),
        "unacked_restore_throttle": 1,
        # a broker that vanishes without closing TCP must not hang a publish forever
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
    }
    app.conf.update(
        broker_url=config.broker_url,
        result_backend=config.backend_url,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=7 * 24 * 3600,
        result_backend_always_retry=True,
        result_backend_max_retries=20,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for Redis to come back
        # A Redis out of memory refuses kombu's MULTI of an acknowledgement (a ResponseError, a
        # "channel error"); without this the worker's consumer dies with it and the worker exits.
        # With it the consumer reconnects with back-off and unacknowledged messages come back.
        broker_channel_error_retry=True,
        worker_hijack_root_logger=False,
        task_default_queue="modelverse",
        modelverse_config=config,  # read by the tasks (one process, one fleet)
    )
    return app


def _drop_connections() -> None:
    """Forget the broker connections, producers and result backend of the previous Redis
    (Celery caches each on first use and has no public call to re-point them)."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.__dict__.pop("amqp", None)  # a cached_property whose producer pool holds connections
    # kombu keeps connection and producer pools in process-wide registries keyed by connection
    # URL: coming back to a Redis used before would get its closed pool ("Acquire on closed pool").
    kombu_pools.reset()
    app._backend_cache = None
    app._local = threading.local()


def current_config() -> FleetConfig:
    config = app.conf.get("modelverse_config")
    return config if isinstance(config, FleetConfig) else FleetConfig.from_env()
