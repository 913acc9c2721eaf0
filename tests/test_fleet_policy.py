"""The pieces of the workers' safety that need no process: spec allow-list, job signatures,
Redis settings rules, job secrets (the process-level tests are in test_fleet_safety.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelverse.fleet import signing
from modelverse.fleet.config import (
    FleetConfig,
    JobSecretError,
    job_secret_from_env,
    read_job_secret,
)
from modelverse.fleet.redis_checks import RedisSettings, problems
from modelverse.fleet.resolve import Runtime, SpecError, load_generator
from modelverse.fleet.spec_policy import SpecPolicy, SpecRefused

WORKER = SpecPolicy(allow_python=False)


def test_py_specs_are_refused_before_their_module_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "planted_module.py"
    marker = tmp_path / "imported"
    module.write_text(f"open({str(marker)!r}, 'w').close()\ndef factory():\n    return None\n")
    monkeypatch.syspath_prepend(tmp_path)  # importable, as a module an attacker planted would be
    try:
        with pytest.raises(SpecRefused, match="py: specs import and run any Python function"):
            load_generator("py:planted_module:factory", policy=WORKER)
        with pytest.raises(SpecRefused, match="--allow-python-generators"):
            Runtime(policy=WORKER).generator("py:subprocess:getoutput?cmd=touch /tmp/x")
        assert not marker.exists() and "planted_module" not in sys.modules
        with pytest.raises(SpecRefused, match="encoder"):
            Runtime(policy=WORKER).encoder("py:planted_module:factory")
        assert not marker.exists()
        # Allowed, the same spec is imported (and fails its type check: it returns None).
        with pytest.raises(SpecError, match="does not implement the Generator protocol"):
            load_generator("py:planted_module:factory", policy=SpecPolicy(allow_python=True))
        assert marker.exists()
    finally:
        sys.modules.pop("planted_module", None)


def test_the_allow_list_names_zoo_declarative_specs_and_installed_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for spec in ("zoo:digits-vae-zero", "onnx:/models/g.onnx", "diffusers:/models/ddpm", "torchscript:/m.pt"):
        WORKER.check_generator(spec)
    for spec in ("stylegan:/m.pkl", "/models/g.onnx", "PY:os:system", "builtins:eval", ""):
        with pytest.raises(SpecRefused):
            WORKER.check_generator(spec)
    # A plugin is an entry point of an installed distribution: allowed by its name, nothing imported.
    dist = tmp_path / "stylegan_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: stylegan-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelverse.generators]\nstylegan = not_imported_module:load\n")
    monkeypatch.syspath_prepend(tmp_path)  # the distribution is installed
    WORKER.check_generator("stylegan:/m.pkl")
    assert "not_imported_module" not in sys.modules


def test_refusals_never_echo_a_long_spec() -> None:
    spec = "py:os:system?cmd=" + "x" * 5000
    with pytest.raises(SpecRefused) as refused:
        WORKER.check_generator(spec)
    assert len(str(refused.value)) < 400


def test_signatures_verify_and_any_change_is_refused() -> None:
    secret = b"k" * 32
    payload = {"spec": {"job_id": "j1", "generator": "zoo:a", "eps": 0.001, "tags": ["x"]}, "chunk": 3}
    signature = signing.sign(secret, "modelverse.fleet.chunk", payload)
    signing.verify(secret, "modelverse.fleet.chunk", payload, signature)
    # Key order and the JSON round trip of the broker do not matter.
    signing.verify(secret, "modelverse.fleet.chunk", {"chunk": 3, "spec": dict(reversed(payload["spec"].items()))},
                   signature)
    changed = [
        (secret, "modelverse.fleet.chunk", {**payload, "chunk": 4}, signature),
        (secret, "modelverse.fleet.close_round", payload, signature),
        (b"j" * 32, "modelverse.fleet.chunk", payload, signature),
        (secret, "modelverse.fleet.chunk", payload, signature.upper()),
        (secret, "modelverse.fleet.chunk", payload, "é" * 64),
        (secret, "modelverse.fleet.chunk", payload, 12345),
    ]
    for args in changed:
        with pytest.raises(signing.JobRefused):
            signing.verify(*args)
    with pytest.raises(signing.JobRefused, match="unsigned"):
        signing.verify(secret, "modelverse.fleet.chunk", payload, "")
    with pytest.raises(signing.JobRefused, match="malformed"):
        signing.verify(secret, "modelverse.fleet.chunk", {"spec": {"eps": float("nan")}}, "0" * 64)


def test_job_secrets_come_from_a_file_or_the_environment_and_are_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("a3f9" * 8 + "\n")
    assert read_job_secret(path) == b"a3f9" * 8
    assert job_secret_from_env({"MODELVERSE_JOB_SECRET_FILE": str(path)}) == (b"a3f9" * 8, str(path))
    assert job_secret_from_env({"MODELVERSE_JOB_SECRET": "z" * 20}) == (b"z" * 20, "")
    assert job_secret_from_env({}) == (b"", "")
    with pytest.raises(JobSecretError, match="cannot read"):
        read_job_secret(tmp_path / "missing")
    path.write_text("short")
    with pytest.raises(JobSecretError, match="at least 16") as short:
        read_job_secret(path)
    assert "short" not in str(short.value).replace("holds", "")
    config = FleetConfig(job_secret=b"s" * 20)
    assert "sss" not in repr(config)
    assert FleetConfig(job_secret=b"s" * 20).to_env()["MODELVERSE_JOB_SECRET"] == "s" * 20
    from_file = FleetConfig(job_secret=b"a3f9" * 8, job_secret_file=str(path))
    assert from_file.to_env()["MODELVERSE_JOB_SECRET"] == ""  # the path travels, not the value


def test_redis_settings_rules() -> None:
    safe = RedisSettings("noeviction", 0, aof_enabled=True, rdb_save="")
    assert problems(safe) == ([], [])
    refuse, _ = problems(RedisSettings("allkeys-lru", 1 << 30, aof_enabled=True, rdb_save=""))
    assert refuse and "allkeys-lru" in refuse[0]
    _, warn = problems(RedisSettings("noeviction", 0, aof_enabled=False, rdb_save=""))
    assert warn and "persists nothing" in warn[0]
    assert problems(RedisSettings("noeviction", 0, aof_enabled=False, rdb_save="3600 1")) == ([], [])
    _, unknown = problems(RedisSettings("noeviction", 0, aof_enabled=False, rdb_save=None))
    assert unknown and "cannot tell" in unknown[0]


def test_jobs_metrics_without_a_reachable_redis_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    from modelverse.cli.main import main
    from modelverse.fleet.local_fleet import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["jobs", "--broker", url, "--metrics"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"modelverse jobs: error: cannot read the fleet's Redis at {url}") and err.count("\n") == 1


def test_heartbeats_of_long_gone_workers_are_forgotten(tmp_path: Path) -> None:
    from modelverse.fleet import fleet_metrics
    from modelverse.fleet.local_fleet import RedisServer
    from modelverse.fleet.redis_state import RedisFleetState

    server = RedisServer(tmp_path / "redis").start()
    try:
        store = RedisFleetState.from_url(server.url)
        fleet_metrics.heartbeat(store, "old@host", now=1000.0)
        fleet_metrics.heartbeat(store, "new@host", now=1000.0 + fleet_metrics.FORGET_AFTER_S + 1)
        assert set(store.client.hgetall(f"{store.prefix}:workers")) == {b"new@host"}
    finally:
        server.stop()
