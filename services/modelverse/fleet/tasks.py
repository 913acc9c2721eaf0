"""Celery tasks: thin wrappers that give ``work``'s functions a Redis state, retries and rounds.

Every message is checked first: its signature (``signing``; a refused message runs nothing and
fails its job with the reason) and, when a spec is loaded, this worker's allow-list
(``spec_policy``).

Errors fall in four kinds. A broken model (ModelFailure) fails its job at once, inside
``work``. Redis being unreachable is transient: the task retries with exponential backoff, and
if Redis stays away longer than the retries, the unacknowledged message is delivered again once
it is back. Redis out of memory is transient too, but no retry message can be published then:
the task waits in its process (``redis_memory``) and fails the job when it persists. Anything
else is a bug: the job is failed with the exception, never retried forever.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Signature, Task, chord, group
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from modelverse.fleet import fleet_metrics, signing, work
from modelverse.fleet.app import app, current_config
from modelverse.fleet.config import CHUNK_TIME_FRACTION
from modelverse.fleet.job_records import JobSpec, JobState
from modelverse.fleet.redis_memory import RedisFull, wait_out_of_memory
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.resolve import Runtime
from modelverse.fleet.spec_policy import SpecPolicy
from modelverse.fleet.fleet_state import partial_name

log = logging.getLogger(__name__)

TRANSIENT = (redis.ConnectionError, redis.TimeoutError, OperationalError)

_state: RedisFleetState | None = None
_runtime: Runtime | None = None


def worker_state() -> RedisFleetState:
    """This process's store client (created after the pool forks, never shared across forks)."""
    global _state
    if _state is None:
        config = current_config()
        _state = RedisFleetState.from_url(config.redis_store_url, config.store_prefix)
    return _state


def worker_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        config = current_config()
        _runtime = Runtime(torch_threads=config.torch_threads, device=config.device,
                           policy=SpecPolicy(allow_python=config.allow_python_specs))
    return _runtime


def _count(name: str) -> None:
    fleet_metrics.increment(worker_state(), name)


def _accept(task_name: str, spec_data: object, part: dict[str, Any], signature: object) -> JobSpec | None:
    """The message's job spec if this worker accepts the message; None (nothing to run) if not.

    With a job secret, the signature is checked before the spec is parsed or anything loaded.
    A refused message fails its job, if a job of that id exists, so the submitter sees why."""
    config = current_config()
    if config.job_secret:
        try:
            if not isinstance(spec_data, dict):
                raise signing.JobRefused("malformed job message refused (no job spec)")
            signing.verify(config.job_secret, task_name, {"spec": spec_data, **part}, signature)
        except signing.JobRefused as exc:
            _refuse(spec_data, str(exc))
            return None
    try:
        return JobSpec.from_dict(spec_data)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        _refuse(spec_data, f"malformed job message refused ({type(exc).__name__})")
        return None


def _refuse(spec_data: object, reason: str) -> None:
    job_id = spec_data.get("job_id") if isinstance(spec_data, dict) else None
    shown = job_id if isinstance(job_id, str) and 0 < len(job_id) <= 64 and job_id.isalnum() else None
    log.error("refused a job message (job %s): %s", shown or "unknown", reason)
    try:
        _count(fleet_metrics.REFUSED_MESSAGES)
        if shown is not None:  # update_job changes an existing, unfinished job only
            worker_state().update_job(shown, state=JobState.FAILED, error=reason, finished_at=time.time())
    except redis.RedisError:
        log.exception("cannot record the refusal of job %s", shown)


def _while_redis_full(spec: JobSpec, what: str, action):  # type: ignore[no-untyped-def]
    """``action()``, waiting out a full Redis (see ``redis_memory``); when it stays full, the
    job's partial moments are deleted and the job failed with the reason; returns None then."""
    try:
        return wait_out_of_memory(action, current_config().oom_wait_s, f"job {spec.job_id}: {what}",
                                  on_wait=lambda: _count(fleet_metrics.OOM_WAITS))
    except RedisFull as exc:
        _fail_redis_full(spec, f"{what}: {exc}")
        return None


def _fail_redis_full(spec: JobSpec, reason: str) -> None:
    state = worker_state()
    names = [partial_name(spec.model_id, spec.stats_version, i) for i in range(spec.plan.total_chunks)]
    try:
        state.delete_partials(names)  # DEL works on a full Redis: give back what the job holds
        state.fail_job_when_full(spec.job_id, reason + "; its partial moments were deleted to free memory")
    except redis.RedisError:
        # Redis before 7 (no allow-oom scripts) or unreachable: the watchdog resends the job's
        # round later, which ends here again or succeeds once memory is free.
        log.exception("job %s: cannot record its failure on a full Redis: %s", spec.job_id, reason)


def _backoff(retries: int) -> float:
    config = current_config()
    return min(config.retry_backoff_max_s, config.retry_backoff_s * 2**retries)


def _fail(spec: JobSpec, reason: str) -> None:
    try:
        worker_state().update_job(spec.job_id, state=JobState.FAILED, error=reason, finished_at=time.time())
    except (*TRANSIENT, redis.OutOfMemoryError):
        log.exception("cannot record the failure of job %s: %s", spec.job_id, reason)
        raise


def _retry_or_fail(task: Task, spec: JobSpec, exc: Exception, what: str) -> None:
    if task.request.retries < current_config().max_retries:
        raise task.retry(exc=exc, countdown=_backoff(task.request.retries))
    _fail(spec, f"{what}: gave up after {task.request.retries} retries: {type(exc).__name__}: {exc}")


CHUNK_TASK = "modelverse.fleet.chunk"
CLOSE_ROUND_TASK = "modelverse.fleet.close_round"


@app.task(bind=True, name=CHUNK_TASK)
def chunk_task(self: Task, spec_data: dict[str, Any], chunk_index: int, signature: str = "") -> str | None:
    """Sample, encode and reduce one chunk; returns its partial's key (never the arrays)."""
    spec = _accept(CHUNK_TASK, spec_data, {"chunk": chunk_index}, signature)
    if spec is None:
        return None
    limit = CHUNK_TIME_FRACTION * current_config().visibility_timeout_s
    try:
        key = _while_redis_full(spec, f"chunk {chunk_index}", lambda: work.run_chunk(
            worker_state(), spec, chunk_index, worker_runtime(), chunk_time_limit_s=limit))
        if key is not None:
            _count(fleet_metrics.CHUNKS_DONE)
        return key
    except TRANSIENT as exc:
        _retry_or_fail(self, spec, exc, f"chunk {chunk_index}")
    except Exception as exc:  # a bug, not the model's fault: fail loudly, once
        log.exception("chunk %s of job %s", chunk_index, spec.job_id)
        _fail(spec, f"chunk {chunk_index}: internal error: {type(exc).__name__}: {exc}")
    return None


@app.task(bind=True, name=CLOSE_ROUND_TASK)
def close_round_task(
    self: Task, chunk_keys: list[str | None], spec_data: dict[str, Any], round_index: int, waiting_since: float = 0.0,
    signature: str = "",
) -> str:
    """The chord callback of a round: finalise the model or start its next round."""
    spec = _accept(CLOSE_ROUND_TASK, spec_data, {"round": round_index}, signature)
    if spec is None:
        return JobState.FAILED.value
    try:
        outcome = _while_redis_full(spec, f"closing round {round_index}", lambda: work.close_round(
            worker_state(), spec, round_index, worker_runtime()))
        if outcome is None:
            return JobState.FAILED.value
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
        next_round = outcome.next_round
        _while_redis_full(spec, f"sending round {next_round}", lambda: schedule_round(spec, next_round))
    return outcome.state.value


def chunk_message(spec_data: dict[str, Any], chunk_index: int) -> Signature:
    """A chunk task message, signed with the fleet's job secret (unsigned without one)."""
    payload = {"spec": spec_data, "chunk": chunk_index}
    return chunk_task.s(spec_data, chunk_index, signature=signing.sign(current_config().job_secret, CHUNK_TASK, payload))


def close_round_message(spec_data: dict[str, Any], round_index: int) -> Signature:
    """A round's chord callback, signed like ``chunk_message``."""
    payload = {"spec": spec_data, "round": round_index}
    return close_round_task.s(spec_data, round_index,
                              signature=signing.sign(current_config().job_secret, CLOSE_ROUND_TASK, payload))


def schedule_round(spec: JobSpec, round_index: int) -> AsyncResult:
    """Send one round: a chord of its chunks with ``close_round`` as the callback."""
    data = spec.to_dict()
    header = group(chunk_message(data, i) for i in spec.plan.round_chunks(round_index))
    return chord(header)(close_round_message(data, round_index))
