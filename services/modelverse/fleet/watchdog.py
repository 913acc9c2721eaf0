"""The watchdog: a job that made no progress for too long has its current round sent again.

Why: Redis acknowledges writes, not deliveries. kombu moves a message from the queue to its
"unacked" set in two commands, so if Redis dies between them the message is gone; a chord
whose chunk was lost in that window would wait forever. Resending a round is always safe:
finished chunks are skipped (their partial exists), duplicate callbacks are refused by
``advance_round``'s compare-and-set and by the idempotent publish.

Every worker's main process runs the check every ``stall_after / 4`` seconds; a lease in Redis
makes one worker resend a given job once per stall period. In a long queue a waiting job also
looks idle and gets resent: that costs messages, not computation (a duplicate chunk finds its
partial written, or finds the job finished, and returns at once).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, bootsteps

from modelverse.fleet.app import current_config
from modelverse.fleet.redis_state import RedisFleetState

log = logging.getLogger(__name__)


def resubmit_stalled(store: RedisFleetState, stall_after_s: float, now: float | None = None) -> list[str]:
    """Resend the current round of every active job idle longer than ``stall_after_s``."""
    from modelverse.fleet.tasks import schedule_round

    now = time.time() if now is None else now
    resent = []
    for job_id in store.active_job_ids():
        job = store.get_job(job_id)
        if job is None or job.state.finished or job.idle_seconds(now) < stall_after_s:
            continue
        if not store.claim(f"watchdog:{job_id}", stall_after_s):
            continue
        if store.update_job(job_id, resubmits=job.resubmits + 1):
            schedule_round(job.spec, job.round_index)
            resent.append(job_id)
            log.warning("job %s (%s) made no progress for %.0f s: resent round %d",
                        job_id, job.spec.model_id, job.idle_seconds(now), job.round_index)
    return resent


class Watchdog(bootsteps.StartStopStep):
    """Runs ``resubmit_stalled`` periodically in a worker's main process."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None
        self.store: RedisFleetState | None = None

    def start(self, worker: Any) -> None:
        config = current_config()
        self.stall_after_s = float(config.stall_after_s)
        self.store = RedisFleetState.from_url(config.redis_store_url, config.store_prefix)
        self.timer_ref = worker.timer.call_repeatedly(max(1.0, self.stall_after_s / 4), self.tick, priority=10)

    def stop(self, worker: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def tick(self) -> None:
        try:
            assert self.store is not None
            resubmit_stalled(self.store, self.stall_after_s)
        except Exception:  # Redis down: the next tick tries again
            log.exception("watchdog check failed")


def install(app: Celery) -> None:
    app.steps["worker"].add(Watchdog)
