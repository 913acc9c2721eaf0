"""The fleet's two steps as plain functions: the Celery tasks and the embedded executor both
call these, so the cluster and the single process compute the same bits.

``run_chunk`` samples, encodes and reduces one chunk; ``close_round`` (a round's chord callback)
merges the partials in chunk order and either finalises the model or opens another round (adaptive
sampling: ``fleet.adaptive.check_round``).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import numpy as np

from modelverse.core.moments import PartialMoments, l2_normalize_rows, merge_all
from modelverse.core.stats import summarize
from modelverse.encoders.base import Encoder
from modelverse.fleet.adaptive import check_round
from modelverse.fleet.job_records import JobSpec, JobState
from modelverse.fleet.plan import chunk_seed
from modelverse.fleet.resolve import Runtime, check_features, check_images, encoder_identity
from modelverse.fleet.fleet_state import FleetState, partial_name
from modelverse.fleet.thumbnails import THUMBNAIL_CHUNK, make_thumbnails
from modelverse.generators.base import Generator
from modelverse.store.errors import IncompatibleStatsError


class ModelFailure(Exception):
    """The model (or its encoder) is broken: retrying gives the same error, so the job fails."""


class ChunksMissing(Exception):
    """A round closed before all its partials were written (a duplicate delivery raced ahead
    of a chunk still running); the caller retries later."""


@dataclass(frozen=True)
class RoundOutcome:
    """What ``close_round`` decided: finished (done or failed), or run ``next_chunks``."""

    state: JobState
    next_round: int | None = None
    next_chunks: range | None = None


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def chunk_samples(
    generator: Generator, encoder: Encoder, model_id: str, stats_version: int, chunk_index: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """One chunk's samples (n, H, W, 3) uint8 and their L2-normalised features (n, d)."""
    seed = chunk_seed(model_id, stats_version, chunk_index)
    images = check_images(generator.sample(n, seed), n, generator.resolution)
    return images, l2_normalize_rows(check_features(encoder.encode_pixels(images), n, encoder.dim))


def chunk_features(
    generator: Generator, encoder: Encoder, model_id: str, stats_version: int, chunk_index: int, n: int
) -> np.ndarray:
    """The L2-normalised features (n, d) of one chunk: its samples come from the chunk's own seed,
    so the quality benchmark, which keeps these features, sees exactly what the fleet summarises."""
    return chunk_samples(generator, encoder, model_id, stats_version, chunk_index, n)[1]


def compute_chunk(spec: JobSpec, chunk_index: int, runtime: Runtime) -> tuple[PartialMoments, list[bytes]]:
    """Sample, encode and L2-normalise one chunk; any error of the model is a ModelFailure.
    Chunk 0 also returns the thumbnails it keeps of its samples (the others: [])."""
    moments, thumbnails, _ = timed_chunk(spec, chunk_index, runtime)
    return moments, thumbnails


def timed_chunk(spec: JobSpec, chunk_index: int, runtime: Runtime) -> tuple[PartialMoments, list[bytes], float]:
    """``compute_chunk`` and the seconds its sampling and encoding took (loading the model, once
    per process, is not counted: it is not repeated when the broker redelivers a chunk)."""
    try:
        runtime.check(spec.generator, spec.encoder)  # both refused or allowed before either loads
        generator = runtime.generator(spec.generator)
        encoder = runtime.encoder(spec.encoder)
        started = time.monotonic()
        images, features = chunk_samples(generator, encoder, spec.model_id, spec.stats_version, chunk_index,
                                         spec.plan.chunk_samples(chunk_index))
        elapsed = time.monotonic() - started
        thumbnails = make_thumbnails(images) if chunk_index == THUMBNAIL_CHUNK else []
        return PartialMoments.from_samples(features), thumbnails, elapsed
    except Exception as exc:  # whatever a model's own code raises, the model is at fault
        raise ModelFailure(f"chunk {chunk_index} of {spec.model_id}: {_describe(exc)}") from exc


def run_chunk(state: FleetState, spec: JobSpec, chunk_index: int, runtime: Runtime,
              chunk_time_limit_s: float | None = None) -> str | None:
    """Make sure chunk ``chunk_index``'s partial is stored; returns its key (None: job over).

    Idempotent: a redelivered chunk whose partial exists is not computed again, and if two
    deliveries compute it at once, the first write wins and both write the same bits anyway.
    A ModelFailure marks the job failed and is not raised: retrying cannot help.

    ``chunk_time_limit_s`` (the fleet: a fraction of the broker's visibility timeout): a chunk
    that took longer fails its job with the chunk size that would fit. Past the visibility
    timeout the broker hands a running chunk to a second worker, and a model that slow would
    have every chunk computed twice or more; the first chunk measures it.
    """
    job = state.get_job(spec.job_id)
    if job is None or job.state.finished:
        return None
    name = partial_name(spec.model_id, spec.stats_version, chunk_index)
    if not state.has_partial(name):
        state.start_job(spec.job_id)
        try:
            moments, thumbnails, elapsed = timed_chunk(spec, chunk_index, runtime)
        except ModelFailure as exc:
            state.update_job(spec.job_id, state=JobState.FAILED, error=str(exc), finished_at=time.time())
            return None
        if chunk_time_limit_s is not None and elapsed > chunk_time_limit_s:
            reason = chunk_too_slow(spec, chunk_index, elapsed, chunk_time_limit_s)
            state.update_job(spec.job_id, state=JobState.FAILED, error=reason, finished_at=time.time())
            return None
        if thumbnails:  # before the partial: a chunk whose partial exists has its thumbnails too
            state.put_chunk_thumbnails(name, thumbnails)
        state.put_partial(name, moments)
    state.mark_chunk_done(spec.job_id, chunk_index)
    return name


def chunk_too_slow(spec: JobSpec, chunk_index: int, elapsed_s: float, limit_s: float) -> str:
    """Why a job whose chunks run too long for the broker fails, and what would fit."""
    samples = spec.plan.chunk_samples(chunk_index)
    fitting = max(1, int(samples * limit_s / elapsed_s * 0.8))  # 20 % headroom for slower nodes
    return (f"chunk {chunk_index} of {spec.model_id} took {elapsed_s:.1f} s for {samples} samples, more than "
            f"{limit_s:.0f} s (half the broker's visibility timeout): the broker would hand its chunks to a "
            f"second worker while the first still runs. Submit again with --chunk-size {fitting} or less, "
            f"or run the workers with a --visibility-timeout of at least {int(2.5 * elapsed_s) + 1} s")


def close_round(state: FleetState, spec: JobSpec, round_index: int, runtime: Runtime) -> RoundOutcome:
    """Merge chunks [0, round end) in chunk order; finalise, or ask for the next round."""
    job = state.get_job(spec.job_id)
    if job is None:
        return RoundOutcome(JobState.FAILED)
    if job.state.finished or job.round_index > round_index:  # a duplicate delivery
        return RoundOutcome(job.state)
    plan = spec.plan
    names = [partial_name(spec.model_id, spec.stats_version, i) for i in range(plan.round_end(round_index))]
    partials = [state.get_partial(name) for name in names]
    missing = [i for i, p in enumerate(partials) if p is None]
    if missing:
        raise ChunksMissing(f"{spec.model_id}: round {round_index} closed without chunks {missing[:8]}")
    merged = merge_all(p for p in partials if p is not None)  # chunk order: reproducible bits

    if plan.adaptive and not plan.is_last_round(round_index):
        # A function of the merged moments only (fleet.adaptive), so the stop does not depend on
        # which worker closes the round; the job's converged_change records its value.
        check = check_round(merged, plan)
        if not check.converged:
            advanced = state.advance_round(spec.job_id, round_index, converged_change=check.standard_error)
            if not advanced:  # a duplicate of this callback advanced first and sent the round
                return RoundOutcome(JobState.RUNNING)
            return RoundOutcome(JobState.RUNNING, round_index + 1, plan.round_chunks(round_index + 1))
        state.update_job(spec.job_id, converged_change=check.standard_error)

    return _finalise(state, spec, merged, names, runtime)


def _finalise(state: FleetState, spec: JobSpec, merged: PartialMoments, names: list[str], runtime: Runtime) -> RoundOutcome:
    try:
        loaded = runtime.encoder(spec.encoder)
        encoder = encoder_identity(loaded)
        temperature = getattr(loaded, "temperature", None)  # the store's tau, if this creates it
        stats = summarize(merged, rank=spec.rank, eps=spec.eps, keep_covariance=spec.keep_covariance, encoder=encoder)
    except Exception as exc:  # noqa: BLE001  (any error here fails the job, with its reason)
        reason = f"finalising {spec.model_id}: {_describe(exc)}"
        state.update_job(spec.job_id, state=JobState.FAILED, error=reason, finished_at=time.time())
        return RoundOutcome(JobState.FAILED)
    # Missing only where the partials were shared from another run (benchmarks): then none.
    thumbnails = state.get_chunk_thumbnails(partial_name(spec.model_id, spec.stats_version, THUMBNAIL_CHUNK))
    try:
        state.publish(spec, stats, tau=temperature, thumbnails=thumbnails)
    except IncompatibleStatsError as exc:  # e.g. another encoder than the store's: no retry helps
        state.update_job(spec.job_id, state=JobState.FAILED, error=f"publishing {spec.model_id}: {exc}",
                         finished_at=time.time())
        return RoundOutcome(JobState.FAILED)
    state.update_job(spec.job_id, state=JobState.DONE, finished_at=time.time(), samples_used=merged.count)
    state.delete_partials(names)
    return RoundOutcome(JobState.DONE)
