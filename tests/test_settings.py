"""One settings class per process (modelverse.settings): flags over the environment over a config
file over the defaults, each value's source reported; every setting reaches the process that
uses it through `cluster up`'s argv (a field that is not forwarded fails here); the processes
keep their flags; bad values give one clear line; `modelverse config show` for every process."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from modelverse.fleet.config import FleetConfig
from modelverse.serving.loopback_cluster import SET_BY_CLUSTER, SETTINGS, Cluster, ClusterError, ClusterSpec
from modelverse.serving.shard.state import ShardConfig
from modelverse.settings import PROCESSES, settings_class
from modelverse.settings.base import ProcessSettings, SettingsError, build_parser, load, resolve, to_argv
from modelverse.settings.fleet import FleetSettings, WorkerSettings
from modelverse.settings.gateway import GatewaySettings
from modelverse.settings.shard import ShardSettings

SHARD_REQUIRED = ["--store", "/data/store", "--shard", "1", "--shards", "3", "--index-dir", "/data/index"]

# Every flag each process had before its parser was generated from its settings class: tests,
# deployment files and docs use them, so none may disappear.
FLAGS_BEFORE = {
    "shard": "--compact-index --exact-threshold --exhaustive-threshold --host --index-dir --lift-alpha --lift-columns --lifted --lifted-nprobe "
             "--log-level --max-message-bytes --memory-budget --metrics-port --no-compact-index --nprobe "
             "--poll-interval --port --port-file --queue --second-order-probe-factor --shard --shards --store "
             "--tls-cert --tls-client-ca --tls-key --workers",
    "gateway": "--api-keys --candidates --encoder --generators --host --insecure-no-auth --log-level --max-image-bytes "
               "--max-images --max-message-bytes --max-request-pixels --max-top-k --metrics-port --port --port-file "
               "--queue --shard --shard-tls-ca --shard-tls-cert --shard-tls-key --tls-cert --tls-client-ca --tls-key "
               "--workers",
    "admin": "--allow-evicting-redis --allow-python-generators --api-keys --broker --encoder --host --insecure-no-auth "
             "--job-secret-file --log-level --metrics-port --port --port-file --queue --reflection --shard "
             "--shard-tls-ca --shard-tls-cert --shard-tls-key --store --tls-cert --tls-client-ca --tls-key "
             "--torch-threads --workers",
    "worker": "--allow-evicting-redis --allow-python-generators --broker --concurrency --device "
              "--insecure-unsigned-jobs --job-secret-file --loglevel --metrics-host --metrics-port --name --pool "
              "--store-url --torch-threads --visibility-timeout",
    "web": "--api-key --api-key-file --gateway --host --https-cert --https-client-ca --https-key --log-level --port "
           "--port-file --timeout --tls --tls-ca --tls-cert --tls-key",
}


def option_strings(cls: type[ProcessSettings]) -> set[str]:
    return {o for action in build_parser(cls)._actions for o in action.option_strings}


@pytest.mark.parametrize("process", list(PROCESSES))
def test_every_flag_of_before_is_still_there(process: str) -> None:
    missing = set(FLAGS_BEFORE[process].split()) - option_strings(settings_class(process))
    assert not missing, f"{process} lost {sorted(missing)}"


def test_flag_over_env_over_file_over_default_with_the_source_of_each(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text('[shard]\nnprobe = 3\nlift-columns = 5\nlift_alpha = 0.2\n[gateway]\ncandidates = 9\n')
    environ = {"MODELVERSE_SHARD_LIFT_COLUMNS": "6", "MODELVERSE_SHARD_LIFT_ALPHA": "0.3"}
    resolved = load(ShardSettings, [*SHARD_REQUIRED, "--config", str(config), "--lift-alpha", "0.4"], environ)
    s = resolved.settings
    assert (s.nprobe, s.lift_columns, s.lift_alpha, s.memory_budget) == (3, 6, 0.4, ShardSettings.default_of("memory_budget"))
    sources = resolved.sources
    assert (sources["nprobe"], sources["lift_columns"], sources["lift_alpha"], sources["memory_budget"]) == \
        ("file", "env", "flag", "default")
    assert sources["store"] == "flag"
    # the same file, read as YAML, gives the gateway its own table
    yaml_file = tmp_path / "cluster.yaml"
    yaml_file.write_text("gateway:\n  candidates: 9\n  shard: ['a:1,a:2', 'b:1']\n")
    gateway = resolve(GatewaySettings, config=yaml_file, environ={})
    assert gateway.settings.candidates == 9 and gateway.settings.shard == ["a:1,a:2", "b:1"]
    assert gateway.sources["shard"] == "file" and gateway.sources["workers"] == "default"
    # a list from the environment: whitespace-separated
    env_shards = resolve(GatewaySettings, environ={"MODELVERSE_GATEWAY_SHARD": "a:1,a:2 b:1"})
    assert env_shards.settings.shard == ["a:1,a:2", "b:1"] and env_shards.sources["shard"] == "env"


@pytest.mark.parametrize("argv, environ, expected", [
    (["--nprobe", "many"], {}, "--nprobe='many': Input should be a valid integer"),
    ([], {"MODELVERSE_SHARD_LIFTED": "mgf,fm"}, "$MODELVERSE_SHARD_LIFTED='mgf,fm': unknown method fm"),
    (["--shard", "3"], {}, "--shard 3 is not in 0 .. 2 (--shards 3)"),
    (["--memory-budget", "0"], {}, "--memory-budget='0': must be at least 1, got 0"),
])
def test_a_bad_value_is_one_clear_line_naming_its_source(argv: list[str], environ: dict[str, str],
                                                         expected: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        load(ShardSettings, [*SHARD_REQUIRED, *argv], environ)
    assert exited.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("python -m modelverse.serving.shard: error: shard settings: ") and expected in message


def test_missing_and_unknown_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"--index-dir: required \(give --index-dir, \$MODELVERSE_SHARD_INDEX_DIR"):
        resolve(ShardSettings, {"store": "/s", "shard": 0, "shards": 1}, environ={})
    config = tmp_path / "bad.toml"
    config.write_text("[shard]\nnprob = 4\n")
    with pytest.raises(SettingsError, match="unknown setting 'nprob' \\(from file\\)"):
        resolve(ShardSettings, {"store": "/s", "shard": 0, "shards": 1, "index_dir": "/i"}, config, environ={})
    config.write_text("[shard\n")
    with pytest.raises(SettingsError, match="not valid .toml"):
        resolve(ShardSettings, {}, config, environ={})


# -- every setting reaches its process ------------------------------------------------------------

SAMPLES: dict[tuple[str, str], Any] = {
    ("shard", "lifted"): "gaussian",
    ("gateway", "generators"): "zoo",
    ("admin", "broker"): "redis://fleet:6380/2",
}


def sample(cls: type[ProcessSettings], process: str, name: str) -> Any:
    """A valid value other than the default, by the field's type (or SAMPLES)."""
    if (process, name) in SAMPLES:
        return SAMPLES[process, name]
    default = cls.default_of(name)
    kind = cls.model_fields[name].annotation
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    base = args[0] if typing.get_origin(kind) in (typing.Union, getattr(__import__("types"), "UnionType")) else kind
    if typing.get_origin(base) is typing.Literal:
        return next(c for c in typing.get_args(base) if c != default)
    if base is bool:
        return not default
    if base is int:
        return (default or 0) + 3
    if base is float:
        return (default or 0.0) * 2 + 0.25
    if base is Path:
        return Path(f"/from/cluster/{name}")
    if base is str:
        return f"value-of-{name}"
    raise AssertionError(f"{process}.{name}: add a sample value for type {kind} to SAMPLES")


def built(cluster: Cluster, process: str):
    if process == "shard":
        return cluster.shard_process(1, 0)
    cluster.shard_processes = [[cluster.shard_process(s, 0)] for s in range(cluster.spec.shards)]
    if process == "gateway":
        return cluster.gateway_process()
    if process == "admin":
        return cluster.admin_process()
    cluster.gateway = cluster.gateway_process()
    return cluster.web_process()


def parse_with_the_process_own_parser(process: str, argv: list[str]) -> ProcessSettings:
    """``python -m modelverse.<process>``'s own parse_args."""
    from modelverse.serving.admin.__main__ import parse_args as admin
    from modelverse.serving.gateway.__main__ import parse_args as gateway
    from modelverse.serving.shard.__main__ import parse_args as shard
    from modelverse.web.__main__ import parse_args as web

    return {"shard": shard, "gateway": gateway, "admin": admin, "web": web}[process](argv)


@pytest.mark.parametrize("process", list(SETTINGS))
def test_every_setting_of_a_cluster_spec_reaches_its_process(process: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELVERSE_API_KEYS_FILE", "MODELVERSE_JOB_SECRET_FILE", "MODELVERSE_API_KEY", "MODELVERSE_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    cls = SETTINGS[process]
    settable = [name for name in cls.model_fields if name not in SET_BY_CLUSTER[process]]
    assert settable, process
    for name in settable:
        value = sample(cls, process, name)
        spec = ClusterSpec(store=tmp_path / "store", run_dir=tmp_path / "run", shards=3, web_port=0,
                           encoder="bundled", **{process: {name: value}})
        launched = built(Cluster(spec), process)
        assert launched.argv[:3] == [sys.executable, "-m", launched.module]
        parsed = parse_with_the_process_own_parser(process, launched.argv[3:])
        expected = cls.model_validate({**launched.settings.model_dump(), name: value})
        assert getattr(parsed, name) == getattr(expected, name) != cls.default_of(name), (process, name)
        assert parsed == launched.settings, (process, name)


def test_the_cluster_decides_layout_and_access_and_refuses_them_in_a_spec(tmp_path: Path) -> None:
    spec = ClusterSpec(store=tmp_path / "store", run_dir=tmp_path / "run", shards=3, tls=True, auth=False)
    cluster = Cluster(spec)
    shard = parse_with_the_process_own_parser("shard", cluster.shard_process(2, 0).argv[3:])
    assert (shard.store, shard.shard, shard.shards) == (tmp_path / "store", 2, 3)
    assert shard.tls_cert == tmp_path / "run" / "tls" / "shard.pem" and shard.tls_client_ca == tmp_path / "run" / "ca.pem"
    cluster.shard_processes = [[cluster.shard_process(s, r) for r in range(2)] for s in range(3)]
    gateway = parse_with_the_process_own_parser("gateway", cluster.gateway_process().argv[3:])
    assert len(gateway.shard) == 3 and all(len(s.split(",")) == 2 for s in gateway.shard)
    assert gateway.insecure_no_auth and gateway.api_keys is None
    with pytest.raises(ClusterError, match="ClusterSpec.gateway: shard set by the cluster itself"):
        ClusterSpec(store=tmp_path, run_dir=tmp_path, gateway={"shard": ["a:1"]})
    with pytest.raises(ClusterError, match="no shard setting 'nprob'"):
        ClusterSpec(store=tmp_path, run_dir=tmp_path, shard={"nprob": 3})
    with pytest.raises(ClusterError, match="shard-0-r0: shard settings: --lift-columns=.many.: Input should be a valid integer"):
        Cluster(ClusterSpec(store=tmp_path, run_dir=tmp_path, shard={"lift_columns": "many"})).shard_process(0, 0)


def test_cluster_up_passes_its_flags_and_config_tables_to_the_processes(tmp_path: Path) -> None:
    from modelverse.cli.cluster import process_options
    from modelverse.cli.main import build_parser as cli_parser

    config = tmp_path / "cluster.toml"
    config.write_text('[shard]\nlift_columns = 7\n[gateway]\ncandidates = 11\n[web]\ntimeout = 3.5\n')
    args = cli_parser().parse_args(["cluster", "up", "--store", str(tmp_path), "--config", str(config),
                                    "--candidates", "40", "--nprobe", "6", "--generators", "zoo"])
    options = process_options(args)
    assert options["shard"] == {"lift_columns": 7, "nprobe": "6"}
    assert options["gateway"] == {"candidates": "40", "generators": "zoo"}  # the flag over the file
    assert options["web"] == {"timeout": 3.5} and options["admin"] == {}
    cluster = Cluster(ClusterSpec(store=tmp_path, run_dir=tmp_path / "run", **options))
    shard = parse_with_the_process_own_parser("shard", cluster.shard_process(0, 0).argv[3:])
    assert (shard.lift_columns, shard.nprobe) == (7, 6)
    cluster.shard_processes = [[cluster.shard_process(s, 0)] for s in range(2)]
    assert parse_with_the_process_own_parser("gateway", cluster.gateway_process().argv[3:]).candidates == 40


# -- the state's own configs are made from the settings field by field -----------------------------

def test_the_shard_state_config_is_made_from_every_shard_setting() -> None:
    settings = ShardSettings(store=Path("/s"), shard=0, shards=2, index_dir=Path("/i"))
    assert settings.shard_config() == ShardConfig(Path("/s"), 0, 2, Path("/i")), "defaults differ"
    changed = ShardSettings(store=Path("/s"), shard=0, shards=2, index_dir=Path("/i"), memory_budget=5, nprobe=4,
                            lifted="mgf,gaussian", lift_columns=3, lift_alpha=0.5, lifted_nprobe=2,
                            compact_index=False, exhaustive_threshold=9, second_order_probe_factor=7,
                            metadata_embeddings=False)
    config = changed.shard_config()
    assert (config.memory_budget_bytes, config.nprobe, config.lifted, config.lift_columns, config.lift_alpha,
            config.lifted_nprobe, config.compact_index, config.exhaustive_threshold, config.second_order_probe_factor,
            config.metadata_embeddings) == (5, 4, ("mgf", "gaussian"), 3, 0.5, 2, False, 9, 7, False)


def test_the_gateway_limits_are_every_limit_setting() -> None:
    from modelverse.serving.gateway.query import Limits

    settings = GatewaySettings(shard=["a:1"])
    assert settings.limits() == Limits()
    values = {f.name: getattr(Limits(), f.name) + 1 for f in dataclasses.fields(Limits)}
    assert GatewaySettings(shard=["a:1"], **values).limits() == Limits(**values)


def test_one_max_message_size_for_the_gateway_and_the_in_process_cluster() -> None:
    import inspect

    from modelverse.serving import grpc_server, inprocess

    default = GatewaySettings.default_of("max_message_bytes")
    assert default == ShardSettings.default_of("max_message_bytes") == grpc_server.DEFAULT_MAX_MESSAGE_BYTES
    assert inspect.signature(inprocess.serve_states).parameters["max_message_bytes"].default == default


def test_fleet_config_is_every_fleet_setting_and_survives_its_environment(tmp_path: Path) -> None:
    assert {f.name for f in dataclasses.fields(FleetConfig)} == set(FleetSettings.model_fields)
    changed = FleetConfig(broker_url="redis://b:1/2", result_backend="redis://r:2/3", store_url="redis://s:3/4",
                          store_prefix="pre", visibility_timeout_s=77, max_retries=3, retry_backoff_s=1.5,
                          retry_backoff_max_s=9.5, torch_threads=3, device="cuda:1", stall_timeout_s=11,
                          job_secret=b"k" * 24, allow_python_specs=True, oom_wait_s=4.5)
    for f in dataclasses.fields(FleetConfig):
        if f.name not in ("job_secret_file",):
            assert getattr(changed, f.name) != getattr(FleetConfig(), f.name), f.name
    assert FleetConfig.from_env(changed.to_env()) == changed
    secret = tmp_path / "job.secret"
    secret.write_text("f" * 32 + "\n")
    from_file = dataclasses.replace(changed, job_secret=b"f" * 32, job_secret_file=str(secret))
    assert FleetConfig.from_env(from_file.to_env()) == from_file


def test_the_worker_flags_make_its_fleet_config(tmp_path: Path) -> None:
    from modelverse.cli.worker import worker_config

    secret = tmp_path / "job.secret"
    secret.write_text("s" * 32)
    settings = load(WorkerSettings, ["--broker", "redis://b:1/0", "--retry-backoff-max", "30", "--device", "cpu",
                                     "--job-secret-file", str(secret), "--concurrency", "2"], environ={}).settings
    config = worker_config(settings)  # type: ignore[arg-type]
    assert (config.broker_url, config.retry_backoff_max_s, config.job_secret) == ("redis://b:1/0", 30.0, b"s" * 32)
    with pytest.raises(ValueError, match="no job secret"):
        worker_config(load(WorkerSettings, ["--device", "cpu"], environ={}).settings)  # type: ignore[arg-type]


def test_the_process_argv_round_trips_for_every_field_at_once() -> None:
    settings = ShardSettings(store=Path("/s"), shard=1, shards=2, index_dir=Path("/i"), nprobe=4,
                             compact_index=False, lifted="", tls_cert=Path("/c"))
    assert load(ShardSettings, to_argv(settings), environ={}).settings == settings
    assert load(ShardSettings, to_argv(settings, everything=True), environ={}).settings == settings


# -- config show -----------------------------------------------------------------------------------

REQUIRED = {
    "shard": SHARD_REQUIRED,
    "gateway": ["--shard", "127.0.0.1:1,127.0.0.1:2", "--insecure-no-auth"],
    "admin": ["--store", "/data/store", "--shard", "127.0.0.1:1", "--insecure-no-auth"],
    "worker": ["--insecure-unsigned-jobs"],
    "web": ["--gateway", "127.0.0.1:50051"],
}


@pytest.mark.parametrize("process", list(PROCESSES))
def test_config_show_prints_every_setting_with_its_source(process: str, tmp_path: Path, capsys,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from modelverse.cli.main import main

    cls = settings_class(process)
    first = next(n for n in cls.model_fields if cls.has_flag(n) and not cls.is_secret(n)
                 and cls.env_of(n) not in ("MODELVERSE_API_KEYS_FILE",) and not cls.model_fields[n].is_required()
                 and cls.flag_of(n) not in REQUIRED[process])
    monkeypatch.setenv(cls.env_of(first), str(sample(cls, process, first)))
    assert main(["config", "show", "--process", process, "--json", "--", *REQUIRED[process]]) == 0
    shown = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in shown["settings"]}
    assert shown["valid"] and set(rows) == set(cls.model_fields)
    assert rows[first]["source"] == "env" and rows[first]["env"] == cls.env_of(first)
    flagged = cls.flags()[REQUIRED[process][0]]
    assert rows[flagged]["source"] == "flag"
    assert main(["config", "show", "--process", process, "--", *REQUIRED[process]]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["setting", "value", "source", "flag", "env"]
    assert len(table) == 2 + len(cls.model_fields)


def test_config_show_masks_secrets_and_reports_what_is_missing(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelverse.cli.main import main

    monkeypatch.setenv("MODELVERSE_JOB_SECRET", "a-secret-that-is-long-enough")
    monkeypatch.delenv("MODELVERSE_JOB_SECRET_FILE", raising=False)
    assert main(["config", "show", "--process", "worker"]) == 0
    out = capsys.readouterr().out
    assert "a-secret-that-is-long-enough" not in out and "********" in out
    assert main(["config", "show", "--process", "shard", "--", "--nprobe", "4"]) == 1
    captured = capsys.readouterr()
    assert "missing" in captured.out and "--store: required" in captured.err.strip().splitlines()[-1]


def test_settings_of_the_servers_load_without_torch_or_the_fleet() -> None:
    code = ("import sys; from modelverse.settings import PROCESSES, settings_class\n"
            "[settings_class(p) for p in PROCESSES]\n"
            "from modelverse.cli.config import config_show\n"
            "bad = [m for m in ('torch', 'modelverse.fleet', 'modelverse.encoders.openclip_encoder') if m in sys.modules]\n"
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
