"""The fleet's state in Redis (partial moments, job records, publishing a job's statistics)
against a real redis-server on a free port."""

from __future__ import annotations

import time

import numpy as np
import pytest
from modelverse.core.moments import PartialMoments
from modelverse.fleet.job_records import JobRecord, JobSpec, JobState
from modelverse.fleet.local_fleet import RedisServer
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.store.metadata import ModelMetadata
from modelverse.store.redis_store import MODEL_READY


@pytest.fixture
def store(redis_server: RedisServer, request: pytest.FixtureRequest) -> RedisFleetState:
    return RedisFleetState.from_url(redis_server.url, prefix=f"t-{request.node.name}")


def test_partials_are_written_once_and_round_trip_exactly(store: RedisFleetState) -> None:
    rng = np.random.default_rng(1)
    first = PartialMoments.from_samples(rng.standard_normal((40, 8)))
    again = PartialMoments.from_samples(rng.standard_normal((40, 8)))
    assert not store.has_partial("p")
    assert store.put_partial("p", first) is True
    assert store.has_partial("p")
    assert store.put_partial("p", again) is False  # a second delivery does not overwrite
    read = store.get_partial("p")
    assert read is not None and read.count == 40
    assert np.array_equal(read.mean, first.mean) and np.array_equal(read.m2, first.m2)
    store.delete_partials(["p"])
    assert store.get_partial("p") is None


def _spec(model_id: str, version: int = 1) -> JobSpec:
    return JobSpec.new(ModelMetadata(id=model_id), "py:g:f", "py:e:f", version, SamplePlan(300, 100), 8, 1e-3)


def test_job_records_move_forward_only(store: RedisFleetState) -> None:
    spec = _spec("m")
    store.create_job(JobRecord(spec, submitted_at=time.time()))
    assert store.get_job(spec.job_id).state is JobState.QUEUED  # type: ignore[union-attr]
    store.mark_chunk_done(spec.job_id, 2)
    store.mark_chunk_done(spec.job_id, 2)
    running = store.get_job(spec.job_id)
    assert running is not None and running.state is JobState.RUNNING
    assert running.chunks_done == frozenset({2}) and running.samples_done == 100 and running.started_at > 0
    assert 0 <= running.idle_seconds() < 60 and running.idle_seconds(now=running.updated_at + 500) == 500
    from modelverse.cli.jobs import _state

    assert _state(running, running.updated_at + 500, stall_after_s=300) == "running (idle 500s)"
    assert _state(running, running.updated_at + 10, stall_after_s=300) == "running"
    assert store.active_job_ids() == [spec.job_id]
    assert store.advance_round(spec.job_id, 0, probe_scores=(1.0, 2.0))
    assert not store.advance_round(spec.job_id, 0)  # a duplicate callback of round 0 loses
    advanced = store.get_job(spec.job_id)
    assert advanced is not None and advanced.round_index == 1 and advanced.probe_scores == (1.0, 2.0)
    assert store.update_job(spec.job_id, state=JobState.FAILED, error="boom", finished_at=time.time())
    assert store.active_job_ids() == []
    assert not store.update_job(spec.job_id, state=JobState.DONE)  # a failed job stays failed
    failed = store.get_job(spec.job_id)
    assert failed is not None and failed.state is JobState.FAILED and failed.error == "boom"
    assert store.job_ids() == [spec.job_id] and store.get_job("unknown") is None


def test_publish_writes_the_jobs_version_once_and_announces_it(store: RedisFleetState, small) -> None:  # type: ignore[no-untyped-def]
    spec = _spec("pub")
    assert store.publish(spec, small.stats[0]) == 1
    assert store.publish(spec, small.stats[1]) == 1  # a redelivered finaliser writes nothing
    assert np.array_equal(store.get_stats("pub").mean, small.stats[0].mean)
    events = [fields for _, fields in store.events() if fields["model_id"] == "pub"]
    assert events == [{"event": MODEL_READY, "model_id": "pub", "stats_version": "1", "job_id": spec.job_id}]
    newer = _spec("pub", version=3)
    assert store.publish(newer, small.stats[2]) == 3
    assert store.publish(_spec("pub", version=2), small.stats[3]) == 3  # a stale job does not overwrite
    assert store.stats_version("pub") == 3
    last = store.last_event_id()
    assert store.events(after=last) == []
    store.remove("pub")
    assert [f["event"] for _, f in store.events(after=last)] == ["model_removed"]


def test_the_first_publish_fixes_the_stores_tau(store: RedisFleetState, small) -> None:  # type: ignore[no-untyped-def]
    assert store.publish(_spec("warm"), small.stats[0], tau=23.2) == 1
    assert store.config.tau == 23.2
    store.publish(_spec("other"), small.stats[1], tau=50.0)  # tau is not part of compatibility
    assert store.config.tau == 23.2
