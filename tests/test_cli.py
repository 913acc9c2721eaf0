"""The installed `modelverse` console script, run as a subprocess, against the independent
float64 implementation of the paper's formulas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import independent
from modelverse.store.directory import DirectoryStore
from modelverse.synthetic import SyntheticZoo

# Slow tier: every test runs the `modelverse` console script as a process (about 1-2 s each).
pytestmark = pytest.mark.slow

MODELVERSE = str(Path(sys.executable).with_name("modelverse"))
DIM = 48
COUNT = 7
SAMPLES = 200


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MODELVERSE_STORE"}
    result = subprocess.run([MODELVERSE, *args], capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"modelverse {' '.join(args)} failed: {result.stderr}")
    return result


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {result.stderr}"
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def cli_collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    zoo = SyntheticZoo(dim=DIM, latent_dim=16, seed=3)
    store = root / "store"
    raw = {}
    for i, model in enumerate(zoo.models(COUNT)):
        features = model.sample_features(SAMPLES, seed=i)
        path = root / f"{model.id}.npy"
        np.save(path, features.astype(np.float32))
        raw[model.id] = features.astype(np.float32).astype(np.float64)
        run("add", "--store", str(store), "--id", model.id, "--features", str(path), "--name", model.name,
            "--tags", ",".join(model.tags), "--keep-samples", "--rank", "8")
    moments = {mid: independent.model_moments(f) for mid, f in raw.items()}
    queries = []
    rng = np.random.default_rng(11)
    for j, model in enumerate(zoo.models(COUNT)[:3]):
        vector = model.sample_features(1, seed=500 + j)[0] + 0.05 * rng.standard_normal(DIM)
        path = root / f"query-{j}.npy"
        np.save(path, vector)
        queries.append((path, vector))
    return store, moments, queries, root


@pytest.mark.parametrize("method", ["first_moment", "mgf", "gaussian", "monte_carlo"])
def test_search_vector_matches_independent_float64(cli_collection, method: str) -> None:
    store, moments, queries, _ = cli_collection
    ids = sorted(moments)
    for path, vector in queries:
        result = run("search", "--store", str(store), "--vector", str(path), "--method", method,
                     "--top-k", str(COUNT), "--json")
        hits = json.loads(result.stdout)
        q = independent.normalize(vector)
        expected = independent.ranking(ids, [independent.score(method, q, *moments[i]) for i in ids])
        assert [h["id"] for h in hits] == [i for i, _ in expected]
        assert [h["rank"] for h in hits] == list(range(1, COUNT + 1))
        np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], rtol=1e-4)
        assert all(isinstance(h["tags"], list) and h["name"] for h in hits)


@pytest.mark.parametrize("method", ["mgf", "monte_carlo"])
def test_a_stores_tau_is_the_temperature_of_its_scores(cli_collection, tmp_path: Path, method: str) -> None:
    """A store created with --tau 20 (an encoder trained at that temperature) scores with it."""
    _, moments, queries, root = cli_collection
    ids = sorted(moments)[:3]
    store = tmp_path / "store"
    for model_id in ids:
        run("add", "--store", str(store), "--id", model_id, "--features", str(root / f"{model_id}.npy"),
            "--keep-samples", "--rank", "8", "--tau", "20")
    assert DirectoryStore.open(store).config.tau == 20.0
    path, vector = queries[0]
    hits = json.loads(run("search", "--store", str(store), "--vector", str(path), "--method", method, "--json").stdout)
    q = independent.normalize(vector)
    expected = independent.ranking(ids, [independent.score(method, q, *moments[i], tau=20.0) for i in ids])
    np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], rtol=1e-4)
    refused = run("add", "--store", str(store), "--id", "another", "--features", str(root / f"{ids[0]}.npy"),
                  "--tau", "100", check=False)
    assert_user_error(refused, "--tau 100.0 differs from the store's tau 20.0")


def test_search_like_matches_independent_frechet(cli_collection) -> None:
    store, moments, _, _ = cli_collection
    ids = sorted(moments)
    query = ids[2]
    result = run("search", "--store", str(store), "--like", query, "--top-k", "100", "--json")
    hits = json.loads(result.stdout)
    mu_q, s_q, _ = moments[query]
    others = [i for i in ids if i != query]
    expected = independent.ranking(
        others, [independent.frechet_score(mu_q, s_q, moments[i][0], moments[i][1]) for i in others]
    )
    assert [h["id"] for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], rtol=1e-4)


def test_multimodal_vectors_sum_weighted_scores(cli_collection) -> None:
    store, moments, queries, _ = cli_collection
    ids = sorted(moments)
    (p1, v1), (p2, v2) = queries[0], queries[1]
    result = run("search", "--store", str(store), "--vector", str(p1), "--vector", str(p2),
                 "--weights", "1,0.5", "--method", "mgf", "--top-k", "3", "--json")
    hits = json.loads(result.stdout)
    q1, q2 = independent.normalize(v1), independent.normalize(v2)
    combined = [
        independent.score("mgf", q1, *moments[i]) + 0.5 * independent.score("mgf", q2, *moments[i])
        for i in ids
    ]
    expected = independent.ranking(ids, combined)[:3]
    assert [h["id"] for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], rtol=1e-4)


def test_compressed_second_order_is_selectable(cli_collection) -> None:
    store, _, queries, _ = cli_collection
    result = run("search", "--store", str(store), "--vector", str(queries[0][0]), "--method", "gaussian",
                 "--second-order", "compressed")
    assert "compressed second order" in result.stdout


def test_list_info_remove_and_replace(cli_collection, tmp_path) -> None:
    store, moments, _, root = cli_collection
    listing = json.loads(run("list", "--store", str(store), "--json").stdout)
    assert sorted(m["id"] for m in listing) == sorted(moments)
    first = sorted(moments)[0]
    info = json.loads(run("info", "--store", str(store), first, "--json").stdout)
    assert info["id"] == first and info["count"] == SAMPLES and info["has_samples"]
    # Work on a copy so the other tests keep the whole collection.
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(store), str(copy)], check=True)
    features = root / f"{first}.npy"
    assert_user_error(run("add", "--store", str(copy), "--id", first, "--features", str(features), check=False),
                      "already", "--replace")
    replaced = json.loads(run("add", "--store", str(copy), "--id", first, "--features", str(features),
                              "--replace", "--name", "renamed", "--json").stdout)
    assert replaced["stats_version"] == 2 and replaced["name"] == "renamed"
    run("remove", "--store", str(copy), first)
    remaining = json.loads(run("list", "--store", str(copy), "--json").stdout)
    assert first not in {m["id"] for m in remaining} and len(remaining) == COUNT - 1
    hits = json.loads(run("search", "--store", str(copy), "--like", sorted(moments)[1], "--json").stdout)
    assert first not in {h["id"] for h in hits}
    assert "repacked 6" in run("repack", "--store", str(copy)).stdout


def test_user_errors_are_one_line_and_exit_1(cli_collection, tmp_path) -> None:
    store, moments, queries, root = cli_collection
    query = str(queries[0][0])
    assert_user_error(run("search", "--store", str(tmp_path / "none"), "--vector", query, check=False),
                      "no model store")
    wrong_dim = tmp_path / "wrong.npy"
    np.save(wrong_dim, np.ones(DIM + 1))
    assert_user_error(run("search", "--store", str(store), "--vector", str(wrong_dim), check=False),
                      "dimension")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full(DIM, np.nan))
    assert_user_error(run("search", "--store", str(store), "--vector", str(nan), check=False), "NaN")
    assert_user_error(run("search", "--store", str(store), "--like", "no-such-model", check=False),
                      "no-such-model")
    assert_user_error(run("info", "--store", str(store), "no-such-model", check=False), "no-such-model")
    assert_user_error(run("remove", "--store", str(store), "no-such-model", check=False), "no-such-model")
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"this is not numpy")
    assert_user_error(run("search", "--store", str(store), "--vector", str(garbage), check=False), "garbage.npy")
    assert_user_error(run("add", "--store", str(store), "--id", "x", "--features", str(tmp_path / "missing.npy"),
                          check=False), "missing.npy")
    features_wrong_dim = tmp_path / "f.npy"
    np.save(features_wrong_dim, np.ones((10, DIM + 2)))
    assert_user_error(run("add", "--store", str(store), "--id", "x", "--features", str(features_wrong_dim),
                          check=False), "dimension")
    nan_features = tmp_path / "fnan.npy"
    bad = np.ones((10, DIM))
    bad[3, 4] = np.nan
    np.save(nan_features, bad)
    assert_user_error(run("add", "--store", str(store), "--id", "x", "--features", str(nan_features),
                          check=False), "NaN")
    assert_user_error(run("search", "--store", str(store), "--vector", query, "--top-k", "0", check=False),
                      "top-k")
    # Nothing above touched the store.
    assert len(json.loads(run("list", "--store", str(store), "--json").stdout)) == COUNT


def test_search_shows_confidence_and_min_confidence_filters(cli_collection) -> None:
    store, moments, queries, _ = cli_collection
    query = str(queries[0][0])
    hits = json.loads(run("search", "--store", str(store), "--vector", query, "--top-k", str(COUNT), "--json").stdout)
    confidences = [h["confidence"] for h in hits]
    assert all(0.0 <= c <= 1.0 for c in confidences) and "text_score" not in hits[0]
    cut = sorted(confidences)[COUNT // 2]
    kept = json.loads(run("search", "--store", str(store), "--vector", query, "--top-k", str(COUNT),
                          "--min-confidence", str(cut), "--json").stdout)
    assert [h["id"] for h in kept] == [h["id"] for h in hits if h["confidence"] >= cut]
    table = run("search", "--store", str(store), "--vector", query).stdout
    assert "confidence" in table.splitlines()[1]
    assert_user_error(run("search", "--store", str(store), "--vector", query, "--min-confidence", "1.5", check=False),
                      "--min-confidence")
    assert_user_error(run("search", "--store", str(store), "--vector", query, "--text-mode", "metadata", check=False),
                      "--text-mode", "needs a text part")
