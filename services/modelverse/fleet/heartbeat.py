"""A worker's heartbeat: its main process writes the time to Redis every few seconds, so the
fleet's metrics (``fleet_metrics``) show which workers are alive, whichever process is scraped."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, bootsteps

from modelverse.fleet import fleet_metrics
from modelverse.fleet.app import current_config
from modelverse.fleet.redis_state import RedisFleetState

log = logging.getLogger(__name__)


class Heartbeat(bootsteps.StartStopStep):
    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None
        self.store: RedisFleetState | None = None
        self.name = ""

    def start(self, worker: Any) -> None:
        config = current_config()
        self.store = RedisFleetState.from_url(config.redis_store_url, config.store_prefix, retries=1)
        self.name = str(worker.hostname)
        self.beat()
        self.timer_ref = worker.timer.call_repeatedly(fleet_metrics.HEARTBEAT_INTERVAL_S, self.beat, priority=10)

    def stop(self, worker: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def beat(self) -> None:
        try:
            assert self.store is not None
            fleet_metrics.heartbeat(self.store, self.name)
        except Exception:
            log.warning("heartbeat to Redis failed", exc_info=True)


def install(app: Celery) -> None:
    app.steps["worker"].add(Heartbeat)
