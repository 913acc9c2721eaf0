"""The fleet for real: a redis-server on a free port and `modelverse worker` processes (Celery,
prefork pool), checked against the embedded run of the same jobs.

One cluster per module (two workers); tests run in file order, the destructive ones last.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from celery import chord
from fleet_support import ENCODER_SPEC
from modelverse.core.stats import ModelStats
from modelverse.fleet.config import FleetConfig
from modelverse.fleet.embedded import index_embedded
from modelverse.fleet.job_records import JobRecord, JobSpec, JobState
from modelverse.fleet.local_fleet import RedisServer, WorkerProcess, start_worker, wait_until
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.requests import ModelRequest
from modelverse.fleet.submit import submit_jobs
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata

pytestmark = pytest.mark.slow

TESTS_DIR = str(Path(__file__).parent)
VISIBILITY_TIMEOUT_S = 5  # short, so a killed worker's chunk is handed on quickly
JOB_TIMEOUT_S = 120
STALL_TIMEOUT_S = 4  # the watchdog resends a job's round after this long without progress


@dataclass
class Cluster:
    server: RedisServer
    config: FleetConfig
    store: RedisFleetState
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def add_worker(self, name: str) -> WorkerProcess:
        worker = start_worker(self.config, name, self.log_dir, pythonpath=[TESTS_DIR])
        self.workers.append(worker)
        return worker.wait_ready()

    def submit(self, requests: Sequence[ModelRequest], plan: SamplePlan) -> list[JobRecord]:
        return submit_jobs(self.config, requests, ENCODER_SPEC, plan)

    def job(self, job_id: str) -> JobRecord:
        record = self.store.get_job(job_id)
        assert record is not None
        return record

    def wait(self, records: Sequence[JobRecord], timeout_s: float = JOB_TIMEOUT_S) -> list[JobRecord]:
        wait_until(lambda: all(self.job(r.job_id).state.finished for r in records), timeout_s,
                   f"{len(records)} job(s) to finish", interval_s=0.2)
        return [self.job(r.job_id) for r in records]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("fleet")
    server = RedisServer(root / "redis").start()
    config = FleetConfig(broker_url=server.url, visibility_timeout_s=VISIBILITY_TIMEOUT_S,
                         max_retries=4, retry_backoff_s=0.5, stall_timeout_s=STALL_TIMEOUT_S,
                         job_secret=b"fleet-cluster-test-secret", allow_python_specs=True)
    cluster = Cluster(server, config, RedisFleetState.from_url(server.url), root / "logs")
    try:
        cluster.add_worker("w1")
        cluster.add_worker("w2")
        yield cluster
    finally:
        for worker in cluster.workers:
            worker.kill()
        server.stop()


def model(model_id: str, seed: int, delay_s: float = 0.0) -> ModelRequest:
    spec = f"py:fleet_support:conv_generator?seed={seed}" + (f"&delay_s={delay_s}" if delay_s else "")
    return ModelRequest(ModelMetadata(id=model_id, tags=("test",)), spec)


def embedded_stats(tmp_path: Path, requests: Sequence[ModelRequest], plan: SamplePlan) -> dict[str, ModelStats]:
    undelayed = [ModelRequest(r.metadata, re.sub(r"&delay_s=[0-9.]+", "", r.generator)) for r in requests]
    records = index_embedded(tmp_path, undelayed, ENCODER_SPEC, plan, torch_threads=1)
    assert all(r.state is JobState.DONE for r in records)
    store = DirectoryStore.open(tmp_path)
    return {r.model_id: store.get_stats(r.model_id) for r in requests}


def assert_same_stats(a: ModelStats, b: ModelStats) -> None:
    assert a.count == b.count and a.encoder == b.encoder
    for x, y in [(a.mean, b.mean), (a.covariance, b.covariance), (a.compressed.diag, b.compressed.diag),
                 (a.compressed.factor, b.compressed.factor)]:
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)


def chunk_tasks_succeeded(worker: WorkerProcess) -> int:
    return len(re.findall(r"modelverse\.fleet\.chunk\[[^\]]+\] succeeded", worker.log()))


def chunk_tasks_received(worker: WorkerProcess) -> int:
    return len(re.findall(r"modelverse\.fleet\.chunk\[[^\]]+\] received", worker.log()))


def test_two_workers_index_ten_models_exactly_as_the_embedded_run(cluster: Cluster, tmp_path: Path) -> None:
    plan = SamplePlan(max_samples=600, chunk_size=100)
    requests = [model(f"ten/m{i}", seed=i) for i in range(10)]
    before = [chunk_tasks_succeeded(w) for w in cluster.workers]
    records = cluster.wait(cluster.submit(requests, plan))
    assert [r.state for r in records] == [JobState.DONE] * 10, [r.error for r in records]
    assert all(len(r.chunks_done) == 6 and r.samples_used == 600 and r.finished_at > 0 for r in records)
    # Both workers took part.
    assert all(chunk_tasks_succeeded(w) > b for w, b in zip(cluster.workers, before))
    reference = embedded_stats(tmp_path, requests, plan)
    embedded_store = DirectoryStore.open(tmp_path)
    for request in requests:
        assert_same_stats(cluster.store.get_stats(request.model_id), reference[request.model_id])
        assert cluster.store.get(request.model_id).stats_version == 1
        # chunk 0's first samples, whichever worker ran it: the same PNGs as the embedded run
        thumbnails = cluster.store.get_thumbnails(request.model_id)
        assert len(thumbnails) == 8 and thumbnails == embedded_store.get_thumbnails(request.model_id)
    ready = {f["model_id"] for _, f in cluster.store.events() if f["event"] == "model_ready"}
    assert {r.model_id for r in requests} <= ready


def test_a_chunk_delivered_twice_is_counted_once(cluster: Cluster, tmp_path: Path) -> None:
    from modelverse.fleet.tasks import chunk_message, close_round_message

    plan = SamplePlan(max_samples=300, chunk_size=100)
    request = model("dup/m", seed=42)
    spec = JobSpec.new(request.metadata, request.generator, ENCODER_SPEC, 1, plan, 16, 1e-3)
    cluster.store.create_job(JobRecord(spec))
    data = spec.to_dict()
    # Chunk 1 is in the round twice, as a redelivery after a lost acknowledgement would run it.
    header = [chunk_message(data, 0), chunk_message(data, 1), chunk_message(data, 1), chunk_message(data, 2)]
    chord(header)(close_round_message(data, 0))
    [record] = cluster.wait([JobRecord(spec)])
    assert record.state is JobState.DONE and record.samples_used == 300
    assert record.chunks_done == frozenset({0, 1, 2})
    assert_same_stats(cluster.store.get_stats("dup/m"), embedded_stats(tmp_path, [request], plan)["dup/m"])
    # A late duplicate of a finished job's chunk changes nothing.
    events = len(cluster.store.events())
    assert chunk_message(data, 2).delay().get(timeout=60) is None
    assert cluster.store.stats_version("dup/m") == 1 and len(cluster.store.events()) == events


def test_submitting_a_model_twice_while_it_is_indexed_joins_the_running_job(cluster: Cluster) -> None:
    requests = [model("twice/m", seed=61, delay_s=0.5)]
    plan = SamplePlan(400, 100)
    [first] = cluster.submit(requests, plan)
    [again] = cluster.submit(requests, plan)
    assert again.job_id == first.job_id
    [done] = cluster.wait([first])
    assert done.state is JobState.DONE
    [next_version] = cluster.submit(requests, SamplePlan(200, 100))  # finished: a new job, version 2
    assert next_version.job_id != first.job_id and next_version.spec.stats_version == 2
    assert cluster.wait([next_version])[0].state is JobState.DONE


def test_a_job_whose_messages_were_lost_is_resent_by_the_watchdog(cluster: Cluster, tmp_path: Path) -> None:
    plan = SamplePlan(max_samples=300, chunk_size=100)
    request = model("lost/m", seed=51)
    spec = JobSpec.new(request.metadata, request.generator, ENCODER_SPEC, 1, plan, 16, 1e-3)
    # The job is recorded but its chord never reaches the queue, as when Redis dies between
    # popping a message and recording it as unacknowledged.
    cluster.store.create_job(JobRecord(spec))
    [record] = cluster.wait([JobRecord(spec)], timeout_s=STALL_TIMEOUT_S * 10)
    assert record.state is JobState.DONE and record.resubmits == 1
    assert_same_stats(cluster.store.get_stats("lost/m"), embedded_stats(tmp_path, [request], plan)["lost/m"])
    assert spec.job_id not in cluster.store.active_job_ids()


def test_broken_generators_fail_with_a_reason_and_workers_keep_serving(cluster: Cluster) -> None:
    plan = SamplePlan(max_samples=300, chunk_size=100)
    requests = [
        ModelRequest(ModelMetadata(id="broken/raises"), "py:fleet_support:raising_generator"),
        ModelRequest(ModelMetadata(id="broken/shape"), "py:fleet_support:wrong_shape_generator"),
        model("broken/fine", seed=9),
    ]
    raises, shape, fine = cluster.wait(cluster.submit(requests, plan))
    assert raises.state is JobState.FAILED and "RuntimeError: the sampler ran out of latent codes" in raises.error
    assert shape.state is JobState.FAILED
    assert "generator returned images of shape (100, 8, 8, 3), expected (100, 16, 16, 3)" in shape.error
    assert fine.state is JobState.DONE
    assert "broken/raises" not in cluster.store and "broken/shape" not in cluster.store
    # Failed at once, not retried: no chunk of a broken model was attempted more than its plan.
    assert all(w.process.poll() is None for w in cluster.workers)


def test_index_submit_and_jobs_commands(cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import json

    from modelverse.cli import index as index_cli
    from modelverse.cli.main import main
    from modelverse.cli.output import BAR_WIDTH

    manifest = tmp_path / "models.json"
    manifest.write_text(json.dumps({"encoder": ENCODER_SPEC, "models": [
        {"id": "cli/a", "generator": "py:fleet_support:conv_generator?seed=31", "tags": ["toy"]},
        {"id": "cli/b", "generator": "py:fleet_support:conv_generator?seed=32"},
    ]}))
    parser = argparse.ArgumentParser()
    index_cli.add_fleet_arguments(parser)
    parser.add_argument("--manifest")
    parser.add_argument("--json", action="store_true")
    secret_file = tmp_path / "job.secret"
    secret_file.write_bytes(cluster.config.job_secret)
    options = ["--broker", cluster.server.url, "--manifest", str(manifest), "--samples", "500",
               "--chunk-size", "100", "--min-samples", "200", "--round-samples", "100", "--json"]
    # Without the fleet's job secret the jobs are sent unsigned, and the workers refuse them.
    unsigned = parser.parse_args(options)
    assert index_cli.submit_index(unsigned) == 0
    captured = capsys.readouterr()
    assert "warning: no job secret" in captured.err
    refused = cluster.wait([cluster.job(j["job_id"]) for j in json.loads(captured.out)])
    assert all(r.state is JobState.FAILED and "unsigned job message refused" in r.error for r in refused)

    args = parser.parse_args([*options, "--job-secret-file", str(secret_file)])
    assert index_cli.submit_index(args) == 0
    submitted = json.loads(capsys.readouterr().out)
    assert [j["model_id"] for j in submitted] == ["cli/a", "cli/b"]
    records = cluster.wait([cluster.job(j["job_id"]) for j in submitted])
    assert all(r.state is JobState.DONE and 200 <= r.samples_used <= 500 for r in records)
    assert cluster.store.get("cli/a").metadata.tags == ("toy",)

    ids = [j["job_id"] for j in submitted]
    assert main(["jobs", "--broker", cluster.server.url, "--watch", "--interval", "0.1", *ids]) == 0
    table = capsys.readouterr().out
    assert "cli/a" in table and "done" in table and "[" + "#" * BAR_WIDTH + "]" in table
    assert main(["jobs", "--broker", cluster.server.url, "--json", "--limit", "2"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {j["job_id"] for j in shown} == set(ids)
    assert all(j["state"] == "done" and j["finished_at"] and j["stats_version"] == 1 for j in shown)
    assert main(["jobs", "--broker", cluster.server.url, "no-such-job"]) == 1
    assert "no job 'no-such-job'" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_kill_9_of_a_pool_process_mid_chunk_requeues_its_chunk_at_once(cluster: Cluster, tmp_path: Path) -> None:
    import os
    import signal

    plan = SamplePlan(max_samples=300, chunk_size=100)
    request = model("pool-kill/m", seed=13, delay_s=1.5)
    worker = cluster.workers[0]
    [submitted] = cluster.submit([request], plan)
    wait_until(lambda: chunk_tasks_received(worker) > chunk_tasks_succeeded(worker), 60,
               "the worker to start a chunk", interval_s=0.05)
    [child] = _children(worker.process.pid)  # --concurrency 1: one pool process
    os.kill(child, signal.SIGKILL)
    [record] = cluster.wait([submitted])
    assert record.state is JobState.DONE and record.samples_used == 300
    # The job can finish (the chunk re-run elsewhere) before the worker's main process has written
    # the loss of its pool process to the log: wait for the line rather than read the log once.
    wait_until(lambda: "WorkerLostError" in worker.log(), 30, "the worker to log the lost pool process")
    assert worker.process.poll() is None  # the worker lives on
    expected = embedded_stats(tmp_path, [request], plan)["pool-kill/m"]
    assert_same_stats(cluster.store.get_stats("pool-kill/m"), expected)


def test_kill_9_of_a_worker_mid_chunk_still_completes_the_job(cluster: Cluster, tmp_path: Path) -> None:
    plan = SamplePlan(max_samples=400, chunk_size=100)
    request = model("kill/m", seed=11, delay_s=1.5)
    victim = cluster.workers[0]
    [submitted] = cluster.submit([request], plan)

    def victim_mid_chunk() -> bool:
        return chunk_tasks_received(victim) > chunk_tasks_succeeded(victim)

    wait_until(victim_mid_chunk, 60, "the first worker to start a chunk", interval_s=0.05)
    victim.kill()
    cluster.workers.remove(victim)
    [record] = cluster.wait([submitted])
    assert record.state is JobState.DONE and record.samples_used == 400
    assert_same_stats(cluster.store.get_stats("kill/m"), embedded_stats(tmp_path, [request], plan)["kill/m"])
    cluster.add_worker("w3")  # back to two workers for the next test


def test_redis_restart_loses_no_statistics_and_leaves_no_job_hanging(cluster: Cluster, tmp_path: Path) -> None:
    finished = {model_id: cluster.store.get_stats(model_id) for model_id in cluster.store.ids()}
    assert len(finished) >= 10
    plan = SamplePlan(max_samples=600, chunk_size=100)
    request = model("restart/m", seed=23, delay_s=0.7)
    [submitted] = cluster.submit([request], plan)
    wait_until(lambda: cluster.job(submitted.job_id).chunks_done, 60, "a first chunk", interval_s=0.05)
    assert not cluster.job(submitted.job_id).state.finished  # the outage hits a job in flight

    cluster.server.kill()  # SIGKILL: only what the append-only file holds survives
    time.sleep(2.0)
    cluster.server.start()

    for model_id, stats in finished.items():
        assert_same_stats(cluster.store.get_stats(model_id), stats)
    [record] = cluster.wait([submitted], timeout_s=150)
    print(f"job in flight during the outage: {record.state.value} {record.error}")
    assert record.state in (JobState.DONE, JobState.FAILED)
    if record.state is JobState.DONE:
        reference = embedded_stats(tmp_path, [request], plan)["restart/m"]
        assert_same_stats(cluster.store.get_stats("restart/m"), reference)
    else:
        assert record.error
    # The workers survived the outage and serve new work.
    [after] = cluster.wait(cluster.submit([model("restart/after", seed=24)], SamplePlan(200, 100)))
    assert after.state is JobState.DONE
