"""A client in another language (Node.js, @grpc/grpc-js) against a TLS cluster with API keys.

Needs node and the packages of tests/node_client (`make test` installs them with `npm ci`);
skipped, with the reason shown, where either is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from serving_fixtures import build_store

from modelverse.serving.loopback_cluster import Cluster, ClusterSpec

pytestmark = pytest.mark.slow

CLIENT = Path(__file__).parent / "node_client"


def test_a_node_client_searches_a_tls_cluster_with_a_key(tmp_path) -> None:
    node = shutil.which("node")
    if node is None or not (CLIENT / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.skip("node or tests/node_client/node_modules missing (make test runs npm ci there)")
    _, small = build_store(tmp_path / "store", count=5)
    with Cluster(ClusterSpec(store=tmp_path / "store", run_dir=tmp_path / "run", shards=1, tls=True)) as running:
        done = subprocess.run([node, str(CLIENT / "client.js"), f"localhost:{running.gateway.port}",
                               str(running.client_tls.ca), running.read_key, small.ids[2]],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["getModel"]["code"] == 0 and result["getModel"]["answer"]["id"] == small.ids[2]
    assert sorted(m["id"] for m in result["listModels"]["answer"]["models"]) == sorted(small.ids)
    assert result["withoutKey"]["code"] == 16  # UNAUTHENTICATED
    assert result["hugeId"]["code"] == 3 and len(result["hugeId"]["details"]) < 500  # INVALID_ARGUMENT
