"""Access control on real processes: a cluster (shard, gateway, admin) started with its own keys.

Every call goes over loopback gRPC to the real servers; keys are made by the real keys file code
and the `modelverse keys` command.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from serving_fixtures import build_store

from modelverse.client import connect
from modelverse.serving.loopback_cluster import Cluster, ClusterSpec, health_check
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2, search_pb2_grpc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    _, small = build_store(root / "store", count=8)
    with Cluster(ClusterSpec(store=root / "store", run_dir=root / "run", shards=1)) as running:
        yield running, small


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_cluster_writes_private_key_files_and_a_hashed_keys_file(cluster) -> None:
    running, _ = cluster
    run = running.spec.run_dir
    for name in ("admin.key", "read.key", "api-keys.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o600, name
    assert (run / "admin.key").read_text().strip() == running.admin_key
    keys_text = (run / "api-keys.json").read_text()
    assert running.admin_key not in keys_text and running.read_key not in keys_text
    assert running.admin_key.split("_", 2)[2] not in keys_text  # not even the secret part


def test_search_needs_a_key_and_the_read_role_is_enough(cluster) -> None:
    running, small = cluster
    request = search_pb2.GetModelRequest(id=small.ids[0])
    bare = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address))
    code, details = code_of(lambda: bare.GetModel(request, timeout=10))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "authorization: Bearer" in details
    forged = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, "mv_000000000000_forged"))
    assert code_of(lambda: forged.GetModel(request, timeout=10))[0] == grpc.StatusCode.UNAUTHENTICATED
    # A real key id with a wrong secret, a long key, another scheme: all refused the same way.
    wrong_secret = running.read_key[:-4] + "AAAA"
    for key in (wrong_secret, "mv_" + "x" * 4000 + "_y"):  # (over ~8 KB gRPC itself refuses the header)
        stub = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, key))
        assert code_of(lambda: stub.GetModel(request, timeout=10))[0] == grpc.StatusCode.UNAUTHENTICATED
    basic = code_of(lambda: bare.GetModel(request, timeout=10, metadata=[("authorization", f"Basic {running.read_key}")]))
    assert basic[0] == grpc.StatusCode.UNAUTHENTICATED
    for key in (running.read_key, running.admin_key):
        stub = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, key))
        assert stub.GetModel(request, timeout=10).id == small.ids[0]
        assert len(stub.ListModels(search_pb2.ListModelsRequest(page_size=100), timeout=10).models) == 8


def test_admin_calls_need_the_admin_role_and_a_refused_remove_loses_nothing(cluster) -> None:
    running, small = cluster
    target = small.ids[1]
    for key, expected in ((None, grpc.StatusCode.UNAUTHENTICATED), (running.read_key, grpc.StatusCode.PERMISSION_DENIED)):
        admin = admin_pb2_grpc.AdminServiceStub(connect(running.admin.address, key))
        code, details = code_of(lambda: admin.RemoveModel(admin_pb2.RemoveModelRequest(id=target), timeout=10))
        assert code == expected, (key, code, details)
        assert code_of(lambda: admin.GetJob(admin_pb2.GetJobRequest(id="x"), timeout=10))[0] == expected
    assert "role 'admin'" in details and running.read_key not in details
    reader = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, running.read_key))
    assert reader.GetModel(search_pb2.GetModelRequest(id=target), timeout=10).id == target
    admin = admin_pb2_grpc.AdminServiceStub(connect(running.admin.address, running.admin_key))
    # The admin key passes the check: the admin answers on the merits (unknown job -> NOT_FOUND).
    assert code_of(lambda: admin.GetJob(admin_pb2.GetJobRequest(id="no-such-job"), timeout=10))[0] == grpc.StatusCode.NOT_FOUND
    # The admin's log keeps who did what (the key id, never the key) and who was refused.
    admin_id = running.admin_key.split("_", 2)[1]
    deadline = time.monotonic() + 10
    while True:
        entries = [json.loads(line) for line in running.admin.log_file.read_text().splitlines() if line.startswith("{")]
        calls = [e for e in entries if e.get("msg") == "admin call" and e.get("key_id") == admin_id]
        if calls or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert calls and calls[-1]["method"] == "/modelverse.v1.AdminService/GetJob"
    assert any(e.get("msg") == "call refused" and e.get("denial") == "permission_denied" for e in entries)
    assert running.admin_key not in running.admin.log_file.read_text()


def test_health_stays_open_and_reflection_serves_v1_and_v1alpha_on_the_gateway_only(cluster) -> None:
    running, _ = cluster
    for process in (running.gateway, running.admin):
        with connect(process.address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING

    def list_services(address: str, package: str) -> list[str]:
        with connect(address) as channel:
            call = channel.stream_stream(
                f"/{package}.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            answers = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
        return [s.name for s in answers[0].list_services_response.service]

    for package in ("grpc.reflection.v1", "grpc.reflection.v1alpha"):
        names = list_services(running.gateway.address, package)
        assert "modelverse.v1.SearchService" in names and f"{package}.ServerReflection" in names
        with pytest.raises(grpc.RpcError) as caught:
            list_services(running.admin.address, package)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_keys_command_creates_lists_and_revokes_and_a_running_server_drops_a_revoked_key(cluster, tmp_path) -> None:
    running, small = cluster
    keys_file = running.spec.run_dir / "api-keys.json"
    cli = [sys.executable, "-m", "modelverse.cli.main", "keys"]
    created = subprocess.run([*cli, "create", "--role", "read", "--keys", str(keys_file), "--label", "rotation test"],
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    new_key = created.stdout.strip()
    key_id = new_key.split("_", 2)[1]
    listed = subprocess.run([*cli, "list", "--keys", str(keys_file)], capture_output=True, text=True, timeout=60)
    assert key_id in listed.stdout and "rotation test" in listed.stdout and new_key not in listed.stdout
    stub = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, new_key))
    request = search_pb2.GetModelRequest(id=small.ids[0])
    deadline = time.monotonic() + 10
    while True:  # the gateway re-reads the keys file within about a second
        try:
            stub.GetModel(request, timeout=10)
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED and time.monotonic() < deadline
            time.sleep(0.2)
    revoked = subprocess.run([*cli, "revoke", "--keys", str(keys_file), key_id], capture_output=True, text=True, timeout=60)
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + 10
    while True:
        try:
            stub.GetModel(request, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
            break
        assert time.monotonic() < deadline, "the revoked key is still accepted"
        time.sleep(0.2)
    again = subprocess.run([*cli, "revoke", "--keys", str(keys_file), key_id], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "no key with id" in again.stderr
    # The cluster's own keys still work.
    reader = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, running.read_key))
    assert reader.GetModel(request, timeout=10).id == small.ids[0]


def start_server(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def health_answers(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return False
    return True


@pytest.mark.parametrize("module", ["modelverse.serving.admin", "modelverse.serving.gateway"])
def test_servers_refuse_to_start_without_keys_and_insecure_mode_only_on_loopback(module, tmp_path) -> None:
    build_store(tmp_path / "store", count=2)
    common = ["--shard", "127.0.0.1:1"] + (["--store", str(tmp_path / "store")] if module.endswith("admin") else [])
    env = {"MODELVERSE_API_KEYS_FILE": ""}
    no_keys = start_server(module, *common, env=env)
    assert no_keys.returncode != 0 and "no API keys" in no_keys.stderr
    wide = start_server(module, *common, "--insecure-no-auth", "--host", "0.0.0.0", env=env)
    assert wide.returncode != 0 and "loopback" in wide.stderr
    empty = tmp_path / "empty.json"
    empty.write_text('{"version": 1, "keys": []}')
    no_key_in_file = start_server(module, *common, "--api-keys", str(empty), env=env)
    assert no_key_in_file.returncode != 0 and "holds no keys" in no_key_in_file.stderr
    port_file = tmp_path / "port"
    loopback = subprocess.Popen([sys.executable, "-m", module, *common, "--insecure-no-auth", "--port-file", str(port_file)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        # The health service answers (a gateway whose one shard does not exist says NOT_SERVING)
        while not (port_file.exists() and health_answers(f"127.0.0.1:{port_file.read_text().strip()}")):
            assert loopback.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        loopback.terminate()
        loopback.wait(timeout=30)
