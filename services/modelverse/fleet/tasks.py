"""Celery tasks: thin wrappers that give ``work``'s functions a Redis state, retries and rounds.

Errors fall in three kinds. A broken model (ModelFailure) fails its job at once, inside
``work``. Redis being unreachable is transient: the task retries with exponential backoff, and
if Redis stays away longer than the retries, the unacknowledged message is delivered again once
it is back. Anything else is a bug: the job is failed with the exception, never retried forever.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task, chord, group
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from modelverse.fleet import work
from modelverse.fleet.app import app, current_config
from modelverse.fleet.jobs import JobSpec, JobState
from modelverse.fleet.resolve import Runtime
from modelverse.store.redis_store import RedisStore

log = logging.getLogger(__name__)

TRANSIENT = (redis.ConnectionError, redis.TimeoutError, OperationalError)

_state: RedisStore | None = None
_runtime: Runtime | None = None


def worker_state() -> RedisStore:
    """This process's store client (created after the pool forks, never shared across forks)."""
    global _state
    if _state is None:
        config = current_config()
        _state = RedisStore.from_url(config.redis_store_url, config.store_prefix)
    return _state


def worker_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        config = current_config()
        _runtime = Runtime(torch_threads=config.torch_threads, device=config.device)
    return _runtime


def _backoff(retries: int) -> float:
    config = current_config()
    return min(config.retry_backoff_max_s, config.retry_backoff_s * 2**retries)


def _fail(spec: JobSpec, reason: str) -> None:
    try:
        worker_state().update_job(spec.job_id, state=JobState.FAILED, error=reason, finished_at=time.time())
    except TRANSIENT:
        log.exception("cannot record the failure of job %s: %s", spec.job_id, reason)
        raise


def _retry_or_fail(task: Task, spec: JobSpec, exc: Exception, what: str) -> None:
    if task.request.retries < current_config().max_retries:
        raise task.retry(exc=exc, countdown=_backoff(task.request.retries))
    _fail(spec, f"{what}: gave up after {task.request.retries} retries: {type(exc).__name__}: {exc}")


@app.task(bind=True, name="modelverse.fleet.chunk")
def chunk_task(self: Task, spec_data: dict[str, Any], chunk_index: int) -> str | None:
    """Sample, encode and reduce one chunk; returns its partial's key (never the arrays)."""
    spec = JobSpec.from_dict(spec_data)
    try:
        return work.run_chunk(worker_state(), spec, chunk_index, worker_runtime())
    except TRANSIENT as exc:
        _retry_or_fail(self, spec, exc, f"chunk {chunk_index}")
    except Exception as exc:  # a bug, not the model's fault: fail loudly, once
        log.exception("chunk %s of job %s", chunk_index, spec.job_id)
        _fail(spec, f"chunk {chunk_index}: internal error: {type(exc).__name__}: {exc}")
    return None


@app.task(bind=True, name="modelverse.fleet.close_round")
def close_round_task(
    self: Task, chunk_keys: list[str | None], spec_data: dict[str, Any], round_index: int, waiting_since: float = 0.0
) -> str:
    """The chord callback of a round: finalise the model or start its next round."""
    spec = JobSpec.from_dict(spec_data)
    try:
        outcome = work.close_round(worker_state(), spec, round_index, worker_runtime())
    except work.ChunksMissing as exc:
        # A duplicate delivery completed the chord early; the missing chunk is running or will
        # be redelivered within the visibility timeout. Wait that long, then give up.
        since = waiting_since or time.time()
        if time.time() - since < 2 * current_config().visibility_timeout_s:
            raise self.retry(
                exc=exc,
                countdown=min(30.0, 1.0 + self.request.retries),
                max_retries=None,
                args=(chunk_keys, spec_data, round_index, since),
            )
        _fail(spec, f"round {round_index}: {exc}")
        return JobState.FAILED.value
    except TRANSIENT as exc:
        _retry_or_fail(self, spec, exc, f"closing round {round_index}")
        return JobState.FAILED.value
    except Exception as exc:
        log.exception("closing round %s of job %s", round_index, spec.job_id)
        _fail(spec, f"closing round {round_index}: internal error: {type(exc).__name__}: {exc}")
        return JobState.FAILED.value
    if outcome.next_round is not None:
        schedule_round(spec, outcome.next_round)
    return outcome.state.value


def schedule_round(spec: JobSpec, round_index: int) -> AsyncResult:
    """Send one round: a chord of its chunks with ``close_round`` as the callback."""
    data = spec.to_dict()
    header = group(chunk_task.s(data, i) for i in spec.plan.round_chunks(round_index))
    return chord(header)(close_round_task.s(data, round_index))
