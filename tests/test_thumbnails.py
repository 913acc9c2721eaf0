"""Thumbnails: the fleet keeps the first samples of chunk 0 beside the statistics (directory and
Redis stores), a model added from features has none, and the public API serves them
(GetThumbnails) with the status codes it documents. Real torch models, real gRPC on loopback."""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import numpy as np
import pytest
from fleet_support import ENCODER_SPEC, conv_generator
from PIL import Image
from serving_fixtures import start_in_process
from small_collection import build_small_collection

from modelverse.fleet.embedded import index_embedded
from modelverse.fleet.job_records import JobState
from modelverse.fleet.local_fleet import RedisServer
from modelverse.fleet.plan import SamplePlan, chunk_seed
from modelverse.fleet.requests import ModelRequest
from modelverse.fleet.thumbnails import THUMBNAIL_COUNT, make_thumbnails
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.errors import StoreCorruptError
from modelverse.store.metadata import ModelMetadata
from modelverse.store.redis_store import RedisModelStore
from modelverse.v1 import search_pb2

PLAN = SamplePlan(max_samples=40, chunk_size=20)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_thumbnails_are_small_pngs_of_the_first_samples() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(10, 128, 128, 3), dtype=np.uint8)
    thumbnails = make_thumbnails(images)
    assert len(thumbnails) == THUMBNAIL_COUNT
    assert all(pixels(t).shape == (96, 96, 3) for t in thumbnails)
    small = np.random.default_rng(1).integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.stack([pixels(t) for t in make_thumbnails(small)]), small)  # not upscaled


def test_the_embedded_fleet_stores_chunk_zeros_first_samples(tmp_path: Path) -> None:
    [record] = index_embedded(tmp_path, [ModelRequest(ModelMetadata("m"), "py:fleet_support:conv_generator?seed=3")],
                              ENCODER_SPEC, PLAN, torch_threads=1)
    assert record.state is JobState.DONE
    store = DirectoryStore.open(tmp_path)
    thumbnails = store.get_thumbnails("m")
    expected = conv_generator(3).sample(20, chunk_seed("m", 1, 0))[:THUMBNAIL_COUNT]
    np.testing.assert_array_equal(np.stack([pixels(t) for t in thumbnails]), expected)
    assert store.get("m").thumbnails == THUMBNAIL_COUNT


def test_a_model_replaced_from_features_loses_its_old_thumbnails(tmp_path: Path) -> None:
    small = build_small_collection(count=1, samples=50, dim=16, rank=4)
    store = DirectoryStore.create(tmp_path, StoreConfig(dim=16, rank=4))
    thumbnails = make_thumbnails(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    store.put(ModelMetadata("m"), small.stats[0], thumbnails=thumbnails)
    assert store.get_thumbnails("m") == thumbnails
    first_file = store.get("m").thumbnails_file
    store.put(ModelMetadata("m"), small.stats[0], replace=True)  # from features: no samples drawn
    assert store.get_thumbnails("m") == [] and store.get("m").thumbnails == 0
    assert not list(tmp_path.glob(f"models/*/{first_file}"))  # the old version's file went with it


def test_a_corrupt_thumbnails_file_is_reported_not_served(tmp_path: Path) -> None:
    small = build_small_collection(count=1, samples=50, dim=16, rank=4)
    store = DirectoryStore.create(tmp_path, StoreConfig(dim=16, rank=4))
    store.put(ModelMetadata("m"), small.stats[0], thumbnails=make_thumbnails(np.zeros((2, 8, 8, 3), np.uint8)))
    next(tmp_path.glob("models/*/thumbnails-v1.zip")).write_bytes(b"not a zip")
    with pytest.raises(StoreCorruptError, match="unreadable thumbnails"):
        store.get_thumbnails("m")


def test_the_redis_store_keeps_thumbnails_with_each_version(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        store = RedisModelStore.from_url(server.url)
        small = build_small_collection(count=1, samples=50, dim=16, rank=4)
        thumbnails = make_thumbnails(np.full((3, 8, 8, 3), 200, dtype=np.uint8))
        store.put(ModelMetadata("m"), small.stats[0], thumbnails=thumbnails)
        assert store.get_thumbnails("m") == thumbnails and store.get("m").thumbnails == 3
        store.put(ModelMetadata("m"), small.stats[0], replace=True)
        assert store.get_thumbnails("m") == []
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("thumbs")
    small = build_small_collection(count=3, samples=100, dim=64, rank=8)
    store = DirectoryStore.create(root / "store", StoreConfig(dim=64, rank=8))
    kept = make_thumbnails(np.random.default_rng(2).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8))
    store.put_many([(ModelMetadata(f"owner/m{i}"), s) for i, s in enumerate(small.stats)],
                   thumbnails={"owner/m0": kept})
    cluster = start_in_process(root / "store", root / "index", shards=2)
    yield cluster, kept
    cluster.close()


def test_get_thumbnails_serves_the_stored_pngs_and_none_for_features_only_models(served) -> None:
    cluster, kept = served
    answer = cluster.gateway.GetThumbnails(search_pb2.GetThumbnailsRequest(model_id="owner/m0"), timeout=10)
    assert list(answer.images) == kept and answer.stats_version == 1
    none = cluster.gateway.GetThumbnails(search_pb2.GetThumbnailsRequest(model_id="owner/m1"), timeout=10)
    assert list(none.images) == [] and none.stats_version == 1


@pytest.mark.parametrize("model_id, code", [
    ("", grpc.StatusCode.INVALID_ARGUMENT),
    ("x" * 20_000, grpc.StatusCode.INVALID_ARGUMENT),
    ("owner/unknown", grpc.StatusCode.NOT_FOUND),
])
def test_get_thumbnails_refuses_bad_ids_and_keeps_serving(served, model_id: str, code: grpc.StatusCode) -> None:
    cluster, kept = served
    with pytest.raises(grpc.RpcError) as caught:
        cluster.gateway.GetThumbnails(search_pb2.GetThumbnailsRequest(model_id=model_id), timeout=10)
    assert caught.value.code() == code
    assert len(caught.value.details()) < 200  # the id is never echoed whole
    answer = cluster.gateway.GetThumbnails(search_pb2.GetThumbnailsRequest(model_id="owner/m0"), timeout=10)
    assert list(answer.images) == kept


def test_get_model_says_how_many_samples_the_statistics_summarise(served) -> None:
    cluster, _ = served
    model = cluster.gateway.GetModel(search_pb2.GetModelRequest(id="owner/m0"), timeout=10)
    assert model.samples == 100  # build_small_collection(samples=100)
