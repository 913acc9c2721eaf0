"""TLS on real servers: a cluster with --tls (certificates made now by its throw-away CA), and a
server demanding client certificates (mutual TLS)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving_fixtures import build_store

from modelverse.client import connect
from modelverse.security.certs import LocalCA
from modelverse.security.tls import ClientTLS, ServerTLS
from modelverse.serving.loopback_cluster import Cluster, ClusterSpec, health_check
from modelverse.serving.grpc_server import build_server
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2, search_pb2_grpc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    _, small = build_store(root / "store", count=6)
    with Cluster(ClusterSpec(store=root / "store", run_dir=root / "run", shards=1, tls=True)) as running:
        yield running, small, root


def test_a_tls_cluster_answers_clients_that_trust_its_ca_and_send_a_key(tls_cluster) -> None:
    running, small, _ = tls_cluster
    ca = running.spec.run_dir / "ca.pem"
    assert ca.exists() and running.client_tls == ClientTLS(ca)
    search = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, running.read_key, ClientTLS(ca)))
    assert search.GetModel(search_pb2.GetModelRequest(id=small.ids[0]), timeout=10).id == small.ids[0]
    admin = admin_pb2_grpc.AdminServiceStub(connect(running.admin.address, running.admin_key, ClientTLS(ca)))
    with pytest.raises(grpc.RpcError) as caught:
        admin.GetJob(admin_pb2.GetJobRequest(id="none"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # past TLS and the key check
    # A key over TLS without a key is still refused.
    bare = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, None, ClientTLS(ca)))
    with pytest.raises(grpc.RpcError) as caught:
        bare.GetModel(search_pb2.GetModelRequest(id=small.ids[0]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_plaintext_clients_and_clients_of_another_ca_do_not_get_through(tls_cluster, tmp_path) -> None:
    running, small, _ = tls_cluster
    request = search_pb2.GetModelRequest(id=small.ids[0])
    plaintext = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, running.read_key))
    with pytest.raises(grpc.RpcError) as caught:
        plaintext.GetModel(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    other_ca = LocalCA.create("some other CA").write_ca(tmp_path / "other.pem")
    stranger = search_pb2_grpc.SearchServiceStub(connect(running.gateway.address, running.read_key, ClientTLS(other_ca)))
    with pytest.raises(grpc.RpcError) as caught:
        stranger.GetModel(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_shards_of_a_tls_cluster_demand_the_internal_client_certificate(tls_cluster) -> None:
    running, _, _ = tls_cluster
    shard = running.shard_processes[0][0].address
    assert health_check(shard, tls=running.internal_tls)
    assert not health_check(shard, timeout=2.0, tls=running.client_tls)  # CA only, no client certificate
    assert not health_check(shard, timeout=2.0)


def test_mutual_tls_server_accepts_only_clients_with_a_certificate_of_its_ca(tmp_path) -> None:
    ca = LocalCA.create()
    ca_file = ca.write_ca(tmp_path / "ca.pem")
    server_pair = ca.issue(tmp_path, "server", client=False)
    client_pair = ca.issue(tmp_path, "client", server=False)
    stranger = LocalCA.create("stranger").issue(tmp_path / "stranger", "client", server=False)
    server, port, _ = build_server([], [], tls=ServerTLS(server_pair.cert, server_pair.key, client_ca=ca_file))
    address = f"127.0.0.1:{port}"

    def healthy(tls: ClientTLS) -> bool:
        with connect(address, tls=tls) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            except grpc.RpcError:
                return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    try:
        assert healthy(ClientTLS(ca_file, client_pair.cert, client_pair.key))
        assert not healthy(ClientTLS(ca_file))
        assert not healthy(ClientTLS(ca_file, stranger.cert, stranger.key))
        # The server's certificate names localhost too: a client may dial it by name.
        with connect(f"localhost:{port}", tls=ClientTLS(ca_file, client_pair.cert, client_pair.key)) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        server.stop(grace=None)


def test_cluster_up_tls_from_the_command_line_prints_the_ca_and_serves_tls(tmp_path) -> None:
    import subprocess
    import sys

    build_store(tmp_path / "store", count=3)
    run_dir = tmp_path / "run"
    cli = [sys.executable, "-m", "modelverse.cli.main", "cluster"]
    up = subprocess.run([*cli, "up", "--store", str(tmp_path / "store"), "--run-dir", str(run_dir), "--shards", "1",
                         "--port", "0", "--admin-port", "0", "--web-port", "0", "--tls", "--detach"], capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        gateway = up.stdout.split()[1]
        assert f"CA {run_dir / 'ca.pem'}" in up.stdout and str(run_dir / "read.key") in up.stdout
        assert health_check(gateway, tls=ClientTLS(run_dir / "ca.pem"))
        assert not health_check(gateway, timeout=2.0)  # plaintext does not get through
        key = (run_dir / "read.key").read_text().strip()
        with connect(gateway, key, ClientTLS(run_dir / "ca.pem")) as channel:
            listed = search_pb2_grpc.SearchServiceStub(channel).ListModels(search_pb2.ListModelsRequest(), timeout=10)
        assert len(listed.models) == 3
    finally:
        subprocess.run([*cli, "down", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=60)
