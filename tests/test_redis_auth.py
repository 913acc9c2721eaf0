"""Redis with a password, an ACL user and TLS (rediss://) for the fleet and the admin (issue 14,
section 1): a real redis-server started here on free ports, certificates made at test time.
A worker indexes a model through it; a wrong password ends a worker or an admin at once with a
clear message instead of minutes of connection retries."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from fleet_support import ENCODER_SPEC
from serving_fixtures import build_store

from modelverse.fleet.config import FleetConfig
from modelverse.fleet.job_records import JobState
from modelverse.fleet.local_fleet import free_port, start_worker, wait_until
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.redis_access import RedisAccessError, check_redis_access, redacted
from modelverse.fleet.redis_state import RedisFleetState
from modelverse.fleet.requests import ModelRequest
from modelverse.fleet.submit import submit_jobs
from modelverse.security.certs import LocalCA
from modelverse.store.metadata import ModelMetadata

pytestmark = pytest.mark.slow

TESTS_DIR = str(Path(__file__).parent)
PASSWORD = "s3cret-Pa55"


@dataclass
class SecuredRedis:
    """redis-server with the default user off, an ACL user ``fleet`` and a TLS port beside a
    plaintext one (both need the password)."""

    port: int
    tls_port: int
    ca: Path
    process: subprocess.Popen

    def url(self, password: str = PASSWORD, user: str = "fleet") -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    def tls_url(self, password: str = PASSWORD, user: str = "fleet") -> str:
        return (f"rediss://{user}:{password}@127.0.0.1:{self.tls_port}/0"
                f"?ssl_cert_reqs=required&ssl_ca_certs={self.ca}")


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[SecuredRedis]:
    root = tmp_path_factory.mktemp("redis-auth")
    ca = LocalCA.create()
    ca_file = ca.write_ca(root / "ca.pem")
    pair = ca.issue(root, "redis", client=False)
    (root / "users.acl").write_text(f"user default off\nuser fleet on >{PASSWORD} ~* &* +@all\n")
    port, tls_port = free_port(), free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--tls-port", str(tls_port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(pair.cert), "--tls-key-file", str(pair.key), "--tls-ca-cert-file", str(ca_file),
         "--tls-auth-clients", "no", "--aclfile", str(root / "users.acl"), "--save", "", "--appendonly", "no",
         "--maxmemory-policy", "noeviction", "--dir", str(root), "--logfile", str(root / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = SecuredRedis(port, tls_port, ca_file, process)

    def ready() -> bool:
        assert process.poll() is None, (root / "redis.log").read_text()
        try:
            return bool(redis.Redis.from_url(server.url(), socket_connect_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    wait_until(ready, 20, "the secured redis-server")
    try:
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_access_check_lets_the_right_user_in_and_names_each_refusal(secured) -> None:
    assert check_redis_access(secured.url(), "broker")
    assert check_redis_access(secured.tls_url(), "broker")
    cases = {
        "wrong password": (secured.url("nope"), "refused the credentials"),
        "no password": (f"redis://127.0.0.1:{secured.port}/0", "credentials"),
        "unknown user": (secured.url(user="mallory"), "refused the credentials"),
        "TLS, wrong password": (secured.tls_url("nope"), "refused the credentials"),
        "TLS, untrusted CA": (f"rediss://fleet:{PASSWORD}@127.0.0.1:{secured.tls_port}/0?ssl_cert_reqs=required",
                              "TLS to Redis failed"),
    }
    for name, (url, fragment) in cases.items():
        with pytest.raises(RedisAccessError, match=fragment) as caught:
            check_redis_access(url, "broker")
        assert "nope" not in str(caught.value) and PASSWORD not in str(caught.value), name
    assert redacted(secured.url()) == f"redis://fleet:***@127.0.0.1:{secured.port}/0"


def test_a_worker_indexes_a_model_over_rediss_with_an_acl_user(secured, tmp_path) -> None:
    config = FleetConfig(broker_url=secured.tls_url(), visibility_timeout_s=30, max_retries=2, retry_backoff_s=0.5)
    worker = start_worker(config, "tls-worker", tmp_path / "logs", pythonpath=[TESTS_DIR])
    try:
        worker.wait_ready()
        request = ModelRequest(ModelMetadata("secure/m0"), "py:fleet_support:conv_generator?seed=5")
        (record,) = submit_jobs(config, [request], ENCODER_SPEC, SamplePlan(max_samples=200, chunk_size=100))
        store = RedisFleetState.from_url(config.redis_store_url, config.store_prefix)
        wait_until(lambda: store.get_job(record.job_id).state.finished, 120, "the job over rediss", interval_s=0.2)
        assert store.get_job(record.job_id).state is JobState.DONE
        assert store.get_stats("secure/m0").mean.shape == (24,)
    finally:
        worker.kill()


def test_a_worker_with_a_wrong_password_stops_at_once_with_a_clear_message(secured) -> None:
    done = subprocess.run([sys.executable, "-m", "modelverse.cli.main", "worker", "--broker", secured.url("wrong-pw"),
                           "--insecure-unsigned-jobs"],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == 1
    assert "refused the credentials" in done.stderr and "wrong-pw" not in done.stderr


def test_an_admin_with_a_wrong_broker_password_stops_at_once(secured, tmp_path) -> None:
    build_store(tmp_path / "store", count=2)
    done = subprocess.run(
        [sys.executable, "-m", "modelverse.serving.admin", "--store", str(tmp_path / "store"), "--shard", "127.0.0.1:1",
         "--insecure-no-auth", "--encoder", ENCODER_SPEC, "--broker", secured.tls_url("wrong-pw")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")])})
    assert done.returncode != 0
    assert "refused the credentials" in done.stderr and "wrong-pw" not in done.stderr
