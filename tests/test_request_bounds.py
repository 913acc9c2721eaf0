"""The work one search may ask of a gateway is bounded: images per request (image sets included)
and decoded pixels in all. Over a bound: a clear error with the documented code, refused before
the work (from the request's shape, or an image's header), and the gateway keeps serving."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from modelverse.serving.gateway.query import Limits
from modelverse.v1 import search_pb2
from serving_fixtures import build_store, start_in_process

SMALL = Limits(max_images=4, max_request_pixels=3 * 64 * 64)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("bounds")
    _, small = build_store(root / "store", count=12)
    default = start_in_process(root / "store", root / "index-default", shards=2)
    bounded = start_in_process(root / "store", root / "index-small", shards=2, limits=SMALL)
    yield default, bounded, small
    default.close()
    bounded.close()


def png(size: int, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def image_set_request(images: list[bytes]) -> search_pb2.SearchRequest:
    return search_pb2.SearchRequest(parts=[search_pb2.QueryPart(image_set=search_pb2.ImageSet(images=images))])


def refusal(cluster, request: search_pb2.SearchRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        cluster.gateway.Search(request, timeout=30)
    return caught.value


def still_serving(cluster, small) -> None:
    values = np.asarray(small.features[2][:10].mean(axis=0), np.float32).tolist()
    answer = cluster.gateway.Search(search_pb2.SearchRequest(
        parts=[search_pb2.QueryPart(vector=search_pb2.Vector(values=values))]), timeout=30)
    assert answer.hits and not answer.partial


def test_too_many_images_is_invalid_before_any_is_decoded(served) -> None:
    default, bounded, small = served
    # 256 tiny PNGs (the 11 s of gateway CPU): refused from the request's shape.
    error = refusal(default, image_set_request([png(8)] * 256))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 64 images per request" in error.details() and "got 256" in error.details()
    # Counted across parts: two sets of 3 against a bound of 4.
    request = search_pb2.SearchRequest(parts=[search_pb2.QueryPart(image_set=search_pb2.ImageSet(images=[png(8)] * 3))] * 2)
    error = refusal(bounded, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "got 6" in error.details()
    still_serving(default, small)
    still_serving(bounded, small)


def test_decoded_pixels_of_a_request_are_bounded_in_all(served) -> None:
    _, bounded, small = served
    # Each 64 x 64 image is within the per-image bound; the fourth takes the request over 3 of them.
    error = refusal(bounded, image_set_request([png(64)] * 4))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "image 4" in error.details() and f"more than the {3 * 64 * 64} pixels allowed in all" in error.details()
    # Within the budget, the images are decoded and the request fails only for want of an encoder.
    error = refusal(bounded, image_set_request([png(64)] * 3))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    still_serving(bounded, small)


def test_one_image_over_the_per_image_bound_keeps_its_own_message(served) -> None:
    default, _, small = served
    # 16 KB that decode to 4097 x 4097 pixels: refused from its header.
    error = refusal(default, image_set_request([png(4097)]))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "4097x4097 pixels" in error.details()
    still_serving(default, small)
