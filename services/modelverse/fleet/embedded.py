"""Embedded mode: the fleet's work functions run in this process, with nothing else running.

Chunks run one after another in chunk order and statistics land in a directory store; the bits
are those a Celery fleet computes for the same (model id, stats version, chunk size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK
from modelverse.fleet.job_records import JobRecord, JobSpec, JobState
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.requests import ModelRequest
from modelverse.fleet.resolve import Runtime
from modelverse.fleet.fleet_state import FleetState, LocalState
from modelverse.fleet.work import close_round, run_chunk
from modelverse.store.directory import DirectoryStore

Progress = Callable[[JobRecord], None]


def run_job(state: FleetState, spec: JobSpec, runtime: Runtime, progress: Progress | None = None) -> JobRecord:
    state.create_job(JobRecord(spec))
    round_index = 0
    while True:
        for chunk_index in spec.plan.round_chunks(round_index):
            if run_chunk(state, spec, chunk_index, runtime) is None:
                break  # the job failed; close_round reports it
            if progress is not None:
                progress(_job(state, spec))
        outcome = close_round(state, spec, round_index, runtime)
        if outcome.next_round is None:
            break
        round_index = outcome.next_round
    record = _job(state, spec)
    if progress is not None:
        progress(record)
    return record


def _job(state: FleetState, spec: JobSpec) -> JobRecord:
    record = state.get_job(spec.job_id)
    assert record is not None, "run_job created it"
    return record


def index_embedded(
    store_root: str | Path,
    requests: Sequence[ModelRequest],
    encoder: str,
    plan: SamplePlan,
    *,
    rank: int | None = None,
    eps: float | None = None,
    keep_covariance: bool = True,
    torch_threads: int | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
) -> list[JobRecord]:
    """Index ``requests`` into the directory store at ``store_root``; one record per model.

    A model that fails is reported in its record (state failed, error) and does not stop the
    others. rank/eps default to the store's, or the paper's for a new store.
    """
    root = Path(store_root)
    if DirectoryStore.exists(root):
        config = DirectoryStore.open(root).config
        rank = config.rank if rank is None else rank
        eps = config.eps if eps is None else eps
    state = LocalState(str(root))
    runtime = Runtime(torch_threads=torch_threads, device=device)
    records = []
    for request in requests:
        spec = JobSpec.new(
            request.metadata,
            request.generator,
            encoder,
            state.stats_version(request.model_id) + 1,
            plan,
            DEFAULT_RANK if rank is None else rank,
            DEFAULT_EPS if eps is None else eps,
            keep_covariance,
        )
        records.append(run_job(state, spec, runtime, progress))
    return records


def failed(records: Sequence[JobRecord]) -> list[JobRecord]:
    return [r for r in records if r.state is JobState.FAILED]
