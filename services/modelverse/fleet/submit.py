"""Submitting models to a fleet: job records in the Redis store, one chord per round."""

from __future__ import annotations

from collections.abc import Sequence

from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK
from modelverse.fleet.app import configure
from modelverse.fleet.config import FleetConfig
from modelverse.fleet.job_records import JobRecord, JobSpec
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.requests import ModelRequest
from modelverse.store.errors import StoreError


def submit_jobs(
    config: FleetConfig,
    requests: Sequence[ModelRequest],
    encoder: str,
    plan: SamplePlan,
    *,
    rank: int | None = None,
    eps: float | None = None,
    keep_covariance: bool = True,
) -> list[JobRecord]:
    """Queue one job per model and return at once; ``modelverse jobs`` follows them.

    Each model's next stats version is fixed here (current + 1), so its chunk seeds are too. A
    model whose next version is already being computed gets that job's record, not a new job.
    """
    configure(config)
    from modelverse.fleet.tasks import schedule_round  # registers the tasks with the app

    store = RedisFleetState.from_url(config.redis_store_url, config.store_prefix)
    try:
        kept = store.config
        rank = kept.rank if rank is None else rank
        eps = kept.eps if eps is None else eps
    except StoreError:  # an empty store: the first statistics fix rank and eps
        pass
    records = []
    for request in requests:
        spec = JobSpec.new(
            request.metadata,
            request.generator,
            encoder,
            store.stats_version(request.model_id) + 1,
            plan,
            DEFAULT_RANK if rank is None else rank,
            DEFAULT_EPS if eps is None else eps,
            keep_covariance,
        )
        running = store.active_job_for(spec.model_id, spec.stats_version, spec.job_id)
        if running is not None:
            records.append(running)
            continue
        record = JobRecord(spec)
        store.create_job(record)
        schedule_round(spec, 0)
        records.append(record)
    return records
