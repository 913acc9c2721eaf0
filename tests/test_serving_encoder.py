"""Text, image and image-set queries through the gateway with the real bundled encoder.

The gateway encodes the parts; the answer must equal the exact reference search on the vectors
the same encoder makes of the same (decoded) inputs, with the method's default for each kind.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from serving_fixtures import start_in_process

from modelverse.core.reference import ExactSearch
from modelverse.core.stats import stats_from_features
from modelverse.core.types import Method, QueryPart
from modelverse.query.sketches import prepare_sketch
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import search_pb2

pytestmark = pytest.mark.slow

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (240, 220, 30), (20, 20, 20), (240, 240, 240)]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    from modelverse.encoders import encoder_id, load_encoder

    encoder = load_encoder("bundled")  # the process-wide cached encoder, as the gateway loads it
    root = tmp_path_factory.mktemp("encoded")
    store = DirectoryStore.create(root / "store", StoreConfig(dim=encoder.dim, rank=8, encoder=encoder_id(encoder)))
    rng = np.random.default_rng(0)
    items = []
    for i, colour in enumerate(COLOURS):
        images = [Image.fromarray(np.clip(np.array(colour) + rng.normal(0, 25, (48, 48, 3)), 0, 255).astype(np.uint8))
                  for _ in range(6)]
        stats = stats_from_features(encoder.encode_images(images), rank=8, keep_covariance=False, encoder=encoder_id(encoder))
        items.append((ModelMetadata(f"colour-{i}"), stats))
    store.put_many(items)
    cluster = start_in_process(root / "store", root / "index", shards=2, encoder=encoder)
    yield cluster, store, encoder
    cluster.close()


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def test_text_image_and_image_set_queries_equal_the_reference(encoded) -> None:
    cluster, store, encoder = encoded
    oracle = ExactSearch(store.collection(), store.config.scoring)
    image = png((230, 40, 30))
    members = [png((30, 190, 50)), png((20, 210, 30)), png((60, 200, 60))]
    cases = [
        ([search_pb2.QueryPart(text="a red square")], Method.MGF,
         [QueryPart(encoder.encode_texts(["a red square"])[0].astype(np.float64))]),
        ([search_pb2.QueryPart(image=image)], Method.GAUSSIAN,
         [QueryPart(encoder.encode_images([decoded(image)])[0].astype(np.float64))]),
        ([search_pb2.QueryPart(image_set=search_pb2.ImageSet(images=members))], Method.GAUSSIAN,
         [QueryPart(v.astype(np.float64), 1 / 3) for v in encoder.encode_images([decoded(m) for m in members])]),
        ([search_pb2.QueryPart(text="green", weight=0.5), search_pb2.QueryPart(sketch=image)], Method.MGF,
         [QueryPart(encoder.encode_texts(["green"])[0].astype(np.float64), 0.5),
          QueryPart(encoder.encode_images([prepare_sketch(decoded(image))])[0].astype(np.float64))]),
    ]
    for parts, method, reference_parts in cases:
        response = cluster.gateway.Search(search_pb2.SearchRequest(parts=parts, top_k=4, candidates_per_shard=100))
        expected = oracle.search(reference_parts, method, 4)
        assert search_pb2.Method.Name(response.method).lower() == method.value
        assert [h.model.id for h in response.hits] == [e.id for e in expected]
        np.testing.assert_allclose([h.score for h in response.hits], [e.score for e in expected], rtol=1e-5)


def test_a_transparent_sketch_is_flattened_onto_white_as_the_cli_does(encoded) -> None:
    """Black strokes on a transparent canvas: through the API they must stay black on white,
    exactly the picture the CLI's decoding makes (the same function), not black on black."""
    from modelverse.query.images import decode_image

    cluster, store, encoder = encoded
    canvas = np.zeros((40, 40, 4), dtype=np.uint8)  # transparent black everywhere
    canvas[10:30, 18:22] = (0, 0, 0, 255)  # an opaque black stroke
    buffer = io.BytesIO()
    Image.fromarray(canvas, "RGBA").save(buffer, format="PNG")
    sketch = buffer.getvalue()
    flattened = decode_image(sketch)
    assert np.asarray(flattened)[0, 0].tolist() == [255, 255, 255]
    response = cluster.gateway.Search(search_pb2.SearchRequest(
        parts=[search_pb2.QueryPart(sketch=sketch)], top_k=4, candidates_per_shard=100))
    expected = ExactSearch(store.collection(), store.config.scoring).search(
        [QueryPart(encoder.encode_images([prepare_sketch(flattened)])[0].astype(np.float64))], Method.MGF, 4)  # a sketch's default
    assert [h.model.id for h in response.hits] == [e.id for e in expected]
    np.testing.assert_allclose([h.score for h in response.hits], [e.score for e in expected], rtol=1e-5)
