"""One store, three ways to search it, one ranking: the CLI, the in-process cluster and the
cluster of processes read tau and eps from the store, never from a default of their own.

The store is created with a tau and an eps far from the paper's, so a path that scored with the
paper's values would rank differently (checked below: the test can fail).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from serving_fixtures import start_in_process

from modelverse.core.params import PAPER_SCORING
from modelverse.core.reference import ExactSearch
from modelverse.core.stats import stats_from_features
from modelverse.core.types import Method, QueryPart
from modelverse.serving.loopback_cluster import Cluster, ClusterSpec
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata
from modelverse.synthetic import SyntheticZoo
from modelverse.v1 import search_pb2, search_pb2_grpc

pytestmark = pytest.mark.slow

MODELVERSE = str(Path(sys.executable).with_name("modelverse"))
DIM, RANK, COUNT = 32, 6, 16
TAU, EPS = 7.5, 0.05  # the paper's are 100 and 1e-3
METHODS = {Method.MGF: search_pb2.MGF, Method.GAUSSIAN: search_pb2.GAUSSIAN}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("congruence")
    store = DirectoryStore.create(root / "store", StoreConfig(dim=DIM, rank=RANK, eps=EPS, tau=TAU))
    zoo = SyntheticZoo(dim=DIM, latent_dim=12, seed=7)
    models = zoo.models(COUNT)
    store.put_many([
        (ModelMetadata(m.id, name=m.name, tags=m.tags),
         stats_from_features(m.sample_features(150, seed=i), rank=RANK, eps=EPS))
        for i, m in enumerate(models)
    ])
    rng = np.random.default_rng(3)
    queries = [models[j].sample_features(1, seed=900 + j)[0] + 0.3 * rng.standard_normal(DIM) for j in range(4)]
    paths = []
    for j, q in enumerate(queries):
        paths.append(root / f"q{j}.npy")
        np.save(paths[-1], q.astype(np.float32))
    return root, store, [q.astype(np.float32).astype(np.float64) for q in queries], paths


def exact_ids(store: DirectoryStore, q: np.ndarray, method: Method, params) -> list[str]:
    return [h.id for h in ExactSearch(store.collection(), params).search([QueryPart(q)], method, k=COUNT)]


def grpc_ids(stub: search_pb2_grpc.SearchServiceStub, q: np.ndarray, method: Method) -> list[str]:
    part = search_pb2.QueryPart(vector=search_pb2.Vector(values=q.astype(np.float32).tolist()))
    response = stub.Search(search_pb2.SearchRequest(parts=[part], top_k=COUNT, method=METHODS[method],
                                                    candidates_per_shard=1000), timeout=30)
    return [h.model.id for h in response.hits]


def cli_ids(store: DirectoryStore, path: Path, method: Method) -> list[str]:
    result = subprocess.run([MODELVERSE, "search", "--store", str(store.root), "--vector", str(path),
                             "--method", method.value, "--second-order", "compressed", "--top-k", str(COUNT), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [hit["id"] for hit in json.loads(result.stdout)]


def test_the_store_fixes_the_ranking_the_paper_values_would_change_it(scene) -> None:
    _, store, queries, _ = scene
    assert store.config.scoring.tau == TAU and store.config.scoring.eps == EPS
    changed = [exact_ids(store, q, m, store.config.scoring) != exact_ids(store, q, m, PAPER_SCORING)
               for q in queries for m in METHODS]
    assert any(changed), "the store's tau and eps must matter for this test to mean anything"


def test_cli_in_process_and_process_clusters_rank_alike(scene) -> None:
    root, store, queries, paths = scene
    expected = {(j, m): exact_ids(store, q, m, store.config.scoring) for j, q in enumerate(queries) for m in METHODS}
    for (j, m), ids in expected.items():
        assert cli_ids(store, paths[j], m) == ids, f"CLI, query {j}, {m.value}"
    in_process = start_in_process(store.root, root / "in-process-index", shards=2)
    try:
        for (j, m), ids in expected.items():
            assert grpc_ids(in_process.gateway, queries[j], m) == ids, f"in-process cluster, query {j}, {m.value}"
    finally:
        in_process.close()
    with Cluster(ClusterSpec(store=store.root, run_dir=root / "run", shards=2)) as running:
        with running.channel(running.gateway, running.read_key) as channel:
            stub = search_pb2_grpc.SearchServiceStub(channel)
            for (j, m), ids in expected.items():
                assert grpc_ids(stub, queries[j], m) == ids, f"process cluster, query {j}, {m.value}"
