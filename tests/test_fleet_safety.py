"""Workers run only what they are allowed to, and survive a full Redis (issue 14, sections 2 and 6).

Real processes throughout: redis-server on free ports, `modelverse worker` processes (Celery,
prefork pool), task messages put into the broker by a Celery client as an attacker with write
access to Redis would.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis
from fleet_support import ENCODER_SPEC

from modelverse.fleet import signing
from modelverse.fleet.config import FleetConfig
from modelverse.fleet.job_records import JobRecord, JobSpec, JobState
from modelverse.fleet.local_fleet import (
    RedisServer,
    WorkerProcess,
    free_port,
    start_worker,
    wait_until,
)
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.requests import ModelRequest
from modelverse.fleet.submit import submit_jobs
from modelverse.store.metadata import ModelMetadata

pytestmark = pytest.mark.slow

TESTS_DIR = str(Path(__file__).parent)
SECRET = b"fleet-safety-test-secret-0123456789"
JOB_TIMEOUT_S = 120
PLAN = SamplePlan(max_samples=200, chunk_size=100)


@dataclass
class Fleet:
    config: FleetConfig
    store: RedisFleetState
    worker: WorkerProcess
    metrics_port: int = 0

    def submit(self, request: ModelRequest, plan: SamplePlan = PLAN, encoder: str = ENCODER_SPEC) -> JobRecord:
        [record] = submit_jobs(self.config, [request], encoder, plan)
        return record

    def wait(self, record: JobRecord, timeout_s: float = JOB_TIMEOUT_S) -> JobRecord:
        def finished() -> JobRecord | None:
            job = self.store.get_job(record.job_id)
            return job if job is not None and job.state.finished else None

        return wait_until(finished, timeout_s, f"job {record.job_id} to finish", interval_s=0.2)


def _fleet(server: RedisServer, root: Path, db: int, *, allow_python: bool, metrics: bool = False,
           **settings: object) -> Fleet:
    url = f"redis://127.0.0.1:{server.port}/{db}"
    config = FleetConfig(**{"broker_url": url, "visibility_timeout_s": 30, "max_retries": 2, "retry_backoff_s": 0.5,
                            "job_secret": SECRET, **settings})  # type: ignore[arg-type]
    port = free_port() if metrics else 0
    worker = start_worker(config, f"db{db}", root / "logs", pythonpath=[TESTS_DIR],
                          allow_python_generators=allow_python,
                          extra_args=["--metrics-port", str(port)] if port else [])
    return Fleet(config, RedisFleetState.from_url(url), worker.wait_ready(), port)


@pytest.fixture(scope="module")
def trusting(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A worker that accepts py: specs (the tests' models) and has the job secret; db 0."""
    fleet = _fleet(redis_server, tmp_path_factory.mktemp("trusting"), 0, allow_python=True, metrics=True)
    yield fleet
    fleet.worker.kill()


@pytest.fixture(scope="module")
def strict(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A worker with its default allow-list (no py: specs); db 1, so it gets only its own jobs."""
    fleet = _fleet(redis_server, tmp_path_factory.mktemp("strict"), 1, allow_python=False)
    yield fleet
    fleet.worker.kill()


def conv(model_id: str, seed: int) -> ModelRequest:
    return ModelRequest(ModelMetadata(id=model_id, tags=("test",)), f"py:fleet_support:conv_generator?seed={seed}")


def command_spec(marker: Path) -> str:
    """The issue's example: a spec that runs a shell command when its module is imported and called."""
    return f"py:subprocess:getoutput?cmd=touch {marker}"


# -- signed job messages ----------------------------------------------------------------------


def _forge(fleet: Fleet, spec: JobSpec, signature: str | None) -> None:
    """Put chunk 0 of ``spec`` into the broker as a client without the fleet's secret would."""
    from modelverse.fleet.app import configure
    from modelverse.fleet.tasks import chunk_task

    configure(replace(fleet.config, job_secret=b""))
    try:
        kwargs = {} if signature is None else {"signature": signature}
        chunk_task.apply_async(args=(spec.to_dict(), 0), kwargs=kwargs)
    finally:
        configure(fleet.config)


@pytest.mark.parametrize("signature", [None, "0" * 64, "signed-with-another-secret"])
def test_a_forged_job_in_the_broker_is_refused_and_nothing_runs(trusting: Fleet, tmp_path: Path,
                                                                signature: str | None) -> None:
    marker = tmp_path / "ran"
    spec = JobSpec.new(ModelMetadata(id="forged/m"), command_spec(marker), ENCODER_SPEC, 1, PLAN, 16, 1e-3)
    trusting.store.create_job(JobRecord(spec))  # the attacker can write the record too
    if signature == "signed-with-another-secret":
        signature = signing.sign(b"not-the-fleet-secret-at-all", "modelverse.fleet.chunk",
                                 {"spec": spec.to_dict(), "chunk": 0})
    _forge(trusting, spec, signature)
    record = trusting.wait(JobRecord(spec))
    assert record.state is JobState.FAILED
    expected = "unsigned job message refused" if signature is None else "wrong signature refused"
    assert expected in record.error, record.error
    assert not marker.exists(), "the forged spec ran"
    assert record.chunks_done == frozenset()
    assert trusting.worker.process.poll() is None
    # The worker goes on serving signed jobs.
    done = trusting.wait(trusting.submit(conv(f"after-forgery/{len(record.error)}", 3)))
    assert done.state is JobState.DONE, done.error


def test_a_tampered_signed_message_is_refused(trusting: Fleet, tmp_path: Path) -> None:
    """A genuine signature over one spec does not carry over to another spec."""
    marker = tmp_path / "ran"
    genuine = JobSpec.new(ModelMetadata(id="tamper/m"), "py:fleet_support:conv_generator?seed=1", ENCODER_SPEC,
                          1, PLAN, 16, 1e-3)
    signature = signing.sign(SECRET, "modelverse.fleet.chunk", {"spec": genuine.to_dict(), "chunk": 0})
    evil = replace(genuine, generator=command_spec(marker))
    trusting.store.create_job(JobRecord(evil))
    _forge(trusting, evil, signature)
    record = trusting.wait(JobRecord(evil))
    assert record.state is JobState.FAILED and "wrong signature" in record.error
    assert not marker.exists()


def test_a_worker_without_a_job_secret_refuses_to_start(redis_server: RedisServer, tmp_path: Path) -> None:
    env_config = FleetConfig(broker_url=redis_server.url)
    result = subprocess.run(
        [sys.executable, "-m", "modelverse.cli.main", "worker", "--broker", redis_server.url],
        env={**_env_without_secret(), **{k: v for k, v in env_config.to_env().items() if "SECRET" not in k}},
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "no job secret" in result.stderr and "--insecure-unsigned-jobs" in result.stderr
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    result = subprocess.run(
        [sys.executable, "-m", "modelverse.cli.main", "worker", "--broker", redis_server.url, "--job-secret-file", str(short)],
        env=_env_without_secret(), check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1 and "needs at least 16" in result.stderr and "tooshort" not in result.stderr


def _env_without_secret() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("MODELVERSE_JOB_SECRET", "MODELVERSE_JOB_SECRET_FILE")}


# -- the allow-list -------------------------------------------------------------------------


def test_a_signed_py_spec_is_refused_by_a_worker_not_allowed_python(strict: Fleet, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = ModelRequest(ModelMetadata(id="py/command"), command_spec(marker))
    record = strict.wait(strict.submit(request))
    assert record.state is JobState.FAILED
    assert "py: specs import and run any Python function" in record.error
    assert "--allow-python-generators" in record.error
    assert not marker.exists()
    assert strict.worker.process.poll() is None
    # py: encoders are refused the same way (checked before the zoo generator is loaded).
    other = strict.wait(strict.submit(ModelRequest(ModelMetadata(id="py/encoder"), "zoo:no-such-model")))
    assert other.state is JobState.FAILED
    assert "encoder 'py:fleet_support:conv_encoder': py: specs import and run" in other.error


# -- fleet metrics -------------------------------------------------------------------------------


def test_the_worker_exposes_fleet_metrics(trusting: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    done = trusting.wait(trusting.submit(conv("metrics/m", 5)))
    assert done.state is JobState.DONE
    text = urllib.request.urlopen(f"http://127.0.0.1:{trusting.metrics_port}/metrics", timeout=10).read().decode()
    values = _samples(text)
    assert values["modelverse_fleet_redis_up"] == 1
    assert values['modelverse_fleet_jobs{state="done"}'] >= 1
    assert values['modelverse_fleet_jobs{state="failed"}'] >= 0
    assert values["modelverse_fleet_chunks_done_total"] >= 2
    assert values["modelverse_fleet_workers_alive"] >= 1
    assert 'modelverse_fleet_queue_depth{queue="modelverse"}' in values
    assert any(k.startswith("modelverse_fleet_worker_heartbeat_timestamp_seconds{worker=\"db0@") for k in values)

    from modelverse.cli.main import main

    assert main(["jobs", "--broker", trusting.config.broker_url, "--metrics"]) == 0
    printed = _samples(capsys.readouterr().out)
    assert printed['modelverse_fleet_jobs{state="done"}'] == values['modelverse_fleet_jobs{state="done"}']


def _samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


# -- Redis faults -------------------------------------------------------------------------------


def test_a_worker_refuses_an_evicting_redis_and_warns_of_no_persistence(tmp_path: Path) -> None:
    evicting = RedisServer(tmp_path / "lru", extra_args=("--maxmemory-policy", "allkeys-lru")).start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "modelverse.cli.main", "worker", "--broker", evicting.url, "--insecure-unsigned-jobs"],
            check=False, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 1
        assert "maxmemory-policy is allkeys-lru" in result.stderr and "noeviction" in result.stderr
        # The admin in broker mode refuses it too, before it builds anything on it.
        from modelverse.serving.admin.__main__ import attach_fleet, parse_args

        args = parse_args(["--store", str(tmp_path), "--shard", "127.0.0.1:1", "--encoder", ENCODER_SPEC,
                           "--broker", evicting.url])
        with pytest.raises(SystemExit, match="maxmemory-policy is allkeys-lru"):
            attach_fleet(None, args)  # type: ignore[arg-type]
        # So does an unreadable job secret, with one line.
        args = args.model_copy(update={"job_secret_file": str(tmp_path / "missing.secret")})  # settings are frozen
        with pytest.raises(SystemExit, match="admin: cannot read the job secret file"):
            attach_fleet(None, args)  # type: ignore[arg-type]
    finally:
        evicting.stop()

    from modelverse.fleet.redis_checks import check_redis

    volatile = RedisServer(tmp_path / "volatile", extra_args=("--appendonly", "no", "--save", "")).start()
    try:
        warnings = check_redis(volatile.url, "worker")
        assert any("persists nothing" in w for w in warnings)
    finally:
        volatile.stop()


def test_a_chunk_slower_than_the_visibility_timeout_allows_fails_its_job(redis_server: RedisServer, tmp_path: Path) -> None:
    fleet = _fleet(redis_server, tmp_path, 2, allow_python=True, visibility_timeout_s=4)
    try:
        request = ModelRequest(ModelMetadata(id="slow/m"), "py:fleet_support:conv_generator?seed=2&delay_s=2.5")
        record = fleet.wait(fleet.submit(request))
        assert record.state is JobState.FAILED
        assert "half the broker's visibility timeout" in record.error and "--chunk-size" in record.error
        assert fleet.worker.process.poll() is None
    finally:
        fleet.worker.kill()


@pytest.fixture()
def full_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[RedisServer, Fleet]]:
    """Its own Redis (maxmemory is per server) and a worker that waits ``request.param`` seconds
    for memory (default 4)."""
    server = RedisServer(tmp_path / "redis").start()
    fleet = _fleet(server, tmp_path, 0, allow_python=True, oom_wait_s=getattr(request, "param", 4.0))
    try:
        yield server, fleet
    finally:
        fleet.worker.kill()
        server.stop()


BIG_ENCODER = "py:fleet_support:conv_encoder?dim=256"  # partials of 0.5 MB: a few fill the margin


def _fill_up(server: RedisServer, margin: int) -> redis.Redis:
    client = redis.Redis(port=server.port)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used + margin))
    return client


@pytest.mark.parametrize("full_redis", [600.0], indirect=True)
def test_a_redis_out_of_memory_for_a_while_delays_the_job_and_the_worker_lives(
        full_redis: tuple[RedisServer, Fleet]) -> None:
    server, fleet = full_redis
    record = fleet.submit(conv("oom/transient", 7), SamplePlan(400, 100), BIG_ENCODER)
    client = _fill_up(server, 300_000)
    wait_until(lambda: "Redis is out of memory; trying again" in fleet.worker.log(), 60, "a task to back off")
    client.config_set("maxmemory", "0")  # memory freed: the job goes on
    done = fleet.wait(record)
    assert done.state is JobState.DONE, done.error
    assert done.samples_used == 400
    assert fleet.worker.process.poll() is None


def test_a_redis_out_of_memory_for_good_fails_the_job_with_the_reason(full_redis: tuple[RedisServer, Fleet]) -> None:
    server, fleet = full_redis
    record = fleet.submit(conv("oom/persistent", 8), SamplePlan(400, 100), BIG_ENCODER)
    client = _fill_up(server, 300_000)
    failed = fleet.wait(record)
    assert failed.state is JobState.FAILED
    assert "Redis stayed out of memory" in failed.error and "partial moments were deleted" in failed.error
    assert fleet.worker.process.poll() is None
    assert record.job_id not in fleet.store.active_job_ids()
    client.config_set("maxmemory", "0")
    again = fleet.wait(fleet.submit(conv("oom/after", 9), SamplePlan(200, 100), BIG_ENCODER))
    assert again.state is JobState.DONE, again.error
