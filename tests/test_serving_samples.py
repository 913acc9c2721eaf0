"""SampleImages draws fresh samples from a bundled zoo model's real generator, as PNG."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image
from serving_fixtures import start_in_process
from small_collection import build_small_collection

from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import search_pb2

ZOO_ID = "generateme-faces-dcgan"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from modelverse.zoo.loader import load_generator

    root = tmp_path_factory.mktemp("samples")
    small = build_small_collection(count=3, samples=100, dim=64, rank=8)
    store = DirectoryStore.create(root / "store", StoreConfig(dim=64, rank=8))
    ids = [ZOO_ID, "not-in-the-zoo", "third"]
    store.put_many([(ModelMetadata(i), s) for i, s in zip(ids, small.stats)])
    cluster = start_in_process(root / "store", root / "index", shards=1, generators=load_generator)
    yield cluster, load_generator(ZOO_ID)
    cluster.close()


def test_samples_are_the_generators_own_images_as_png(served) -> None:
    cluster, generator = served
    answer = cluster.gateway.SampleImages(search_pb2.SampleImagesRequest(model_id=ZOO_ID, count=3, seed=7), timeout=60)
    images = [np.asarray(Image.open(io.BytesIO(data))) for data in answer.images]
    assert len(images) == 3
    np.testing.assert_array_equal(np.stack(images), generator.sample(3, 7))  # PNG is lossless
    again = cluster.gateway.SampleImages(search_pb2.SampleImagesRequest(model_id=ZOO_ID, count=3, seed=8), timeout=60)
    assert again.images[0] != answer.images[0]


def test_a_stored_model_without_a_generator_is_a_failed_precondition(served) -> None:
    cluster, _ = served
    with pytest.raises(grpc.RpcError) as caught:
        cluster.gateway.SampleImages(search_pb2.SampleImagesRequest(model_id="not-in-the-zoo", count=1), timeout=30)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as caught:
        cluster.gateway.SampleImages(search_pb2.SampleImagesRequest(model_id=ZOO_ID, count=17), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
