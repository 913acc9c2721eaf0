"""Issue 17 through the gateway with the real bundled encoder: text modes (content, metadata,
hybrid), each hit's confidence, min_confidence, and the refusals of bad values."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
from PIL import Image
from serving_fixtures import start_in_process

from modelverse.core.reference import ExactSearch
from modelverse.core.sentence_encoder import sentence_encoder
from modelverse.core.stats import stats_from_features
from modelverse.core.types import Method, QueryPart, SecondOrderForm
from modelverse.query.hybrid import TextMode, rank_collection
from modelverse.serving.shard.query_context import document_of
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import search_pb2

pytestmark = pytest.mark.slow

MODELS = [  # colour, name, description, tags
    ((220, 30, 30), "Crimson fields", "Flat red pictures", ("red",)),
    ((30, 200, 40), "Meadow", "Flat green pictures", ("green",)),
    ((40, 60, 220), "Ocean", "Flat blue pictures", ("blue",)),
    ((240, 220, 30), "Sunflower", "Flat yellow pictures", ("yellow",)),
    ((20, 20, 20), "Midnight", "Flat black pictures", ("black", "zebra")),
    ((240, 240, 240), "Snowfield", "Flat white pictures", ("white",)),
]


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    from modelverse.encoders import encoder_id, load_encoder

    encoder = load_encoder("bundled")
    root = tmp_path_factory.mktemp("hybrid")
    store = DirectoryStore.create(root / "store", StoreConfig(dim=encoder.dim, rank=8, encoder=encoder_id(encoder)))
    rng = np.random.default_rng(0)
    items = []
    for i, (colour, name, description, tags) in enumerate(MODELS):
        images = [Image.fromarray(np.clip(np.array(colour) + rng.normal(0, 25, (48, 48, 3)), 0, 255).astype(np.uint8))
                  for _ in range(6)]
        stats = stats_from_features(encoder.encode_images(images), rank=8, keep_covariance=False,
                                    encoder=encoder_id(encoder))
        items.append((ModelMetadata(f"colour-{i}", name=name, description=description, tags=tags), stats))
    store.put_many(items)
    cluster = start_in_process(root / "store", root / "index", shards=2, encoder=encoder)
    yield cluster, store, encoder
    cluster.close()


def search(cluster, text: str, **fields) -> search_pb2.SearchResponse:
    return cluster.gateway.Search(search_pb2.SearchRequest(parts=[search_pb2.QueryPart(text=text)], top_k=6,
                                                           candidates_per_shard=1, **fields))


def test_a_text_query_is_hybrid_by_default_and_metadata_finds_what_content_does_not(hybrid) -> None:
    cluster, _, _ = hybrid
    response = search(cluster, "zebra")
    assert response.text_mode == search_pb2.HYBRID
    # one content candidate per shard: the metadata match joins the candidates all the same
    metadata = search(cluster, "zebra", text_mode=search_pb2.METADATA)
    assert metadata.text_mode == search_pb2.METADATA
    assert metadata.hits[0].model.id == "colour-4" and metadata.hits[0].text_score > 0
    assert metadata.hits[0].model.name == "Midnight"
    assert "colour-4" in [h.model.id for h in response.hits]
    assert all(h.text_score == 0 for h in search(cluster, "zebra", text_mode=search_pb2.CONTENT).hits)


def test_content_mode_and_confidence_equal_the_in_process_ranking(hybrid) -> None:
    cluster, store, encoder = hybrid
    collection = store.collection()
    engine = ExactSearch(collection, store.config.scoring)
    for text in ("a red square", "something green"):
        response = cluster.gateway.Search(search_pb2.SearchRequest(
            parts=[search_pb2.QueryPart(text=text)], top_k=6, candidates_per_shard=100, text_mode=search_pb2.CONTENT))
        parts = [QueryPart(encoder.encode_texts([text])[0].astype(np.float64))]
        parts = [QueryPart(encoder.encode_texts([text])[0].astype(np.float64))]
        expected = rank_collection(engine, parts, Method.MGF, SecondOrderForm.COMPRESSED, 6)
        assert [h.model.id for h in response.hits] == [e.id for e in expected]
        np.testing.assert_allclose([h.confidence for h in response.hits], [e.confidence for e in expected], rtol=1e-4,
                                   atol=1e-6)
        assert all(0.0 <= h.confidence <= 1.0 for h in response.hits)


def test_hybrid_text_scores_match_the_in_process_metadata_search(hybrid) -> None:
    cluster, store, encoder = hybrid
    collection = store.collection()
    documents = [document_of(store.get(m).metadata) for m in collection.ids.tolist()]
    engine = ExactSearch(collection, store.config.scoring)
    vectors = sentence_encoder().encode([d.text() for d in documents])
    for text, mode in (("black zebra", TextMode.METADATA), ("the sea", TextMode.METADATA), ("the sea", TextMode.HYBRID)):
        parts = [QueryPart(encoder.encode_texts([text])[0].astype(np.float64))]
        expected = rank_collection(engine, parts, Method.MGF, SecondOrderForm.COMPRESSED, 6, texts=[text],
                                   text_mode=mode, documents=documents, document_vectors=vectors)
        response = search(cluster, text, text_mode=search_pb2.TextMode.Value(mode.name))
        assert response.hits[0].model.id == expected[0].id
        got = {h.model.id: h.semantic_score for h in response.hits}
        np.testing.assert_allclose([got[e.id] for e in expected if e.id in got],
                                   [e.semantic_score for e in expected if e.id in got], atol=1e-5)
    assert response.hits[0].model.id == "colour-2"


def test_min_confidence_leaves_out_hits_below_it(hybrid) -> None:
    cluster, _, _ = hybrid
    everything = search(cluster, "a red square", text_mode=search_pb2.CONTENT)
    cut = sorted(h.confidence for h in everything.hits)[len(everything.hits) // 2]
    kept = search(cluster, "a red square", text_mode=search_pb2.CONTENT, min_confidence=cut)
    assert [h.model.id for h in kept.hits] == [h.model.id for h in everything.hits if h.confidence >= cut]
    assert [h.rank for h in kept.hits] == list(range(1, len(kept.hits) + 1))
    assert all(h.confidence >= 0.999 for h in search(cluster, "a red square", min_confidence=0.999).hits)


@pytest.mark.parametrize("fields, fragment", [
    ({"text_mode": 7}, "unknown text_mode"),
    ({"min_confidence": 1.5}, "min_confidence"),
    ({"min_confidence": math.nan}, "min_confidence"),
    ({"min_confidence": -0.1}, "min_confidence"),
])
def test_bad_text_mode_or_min_confidence_is_invalid_argument(hybrid, fields, fragment) -> None:
    cluster, _, _ = hybrid
    with pytest.raises(grpc.RpcError) as caught:
        search(cluster, "red", **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in caught.value.details() and len(caught.value.details()) < 200
    assert search(cluster, "red").hits  # still serving


def test_a_metadata_search_needs_text(hybrid) -> None:
    cluster, _, encoder = hybrid
    vector = search_pb2.Vector(values=encoder.encode_texts(["red"])[0].tolist())
    with pytest.raises(grpc.RpcError) as caught:
        cluster.gateway.Search(search_pb2.SearchRequest(parts=[search_pb2.QueryPart(vector=vector)],
                                                        text_mode=search_pb2.METADATA))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "needs a text part" in caught.value.details()
    plain = cluster.gateway.Search(search_pb2.SearchRequest(parts=[search_pb2.QueryPart(vector=vector)]))
    assert plain.text_mode == search_pb2.CONTENT and plain.hits


def test_a_model_added_to_the_store_is_found_by_its_metadata_after_the_shards_sync(hybrid) -> None:
    cluster, store, encoder = hybrid
    assert not [h for h in search(cluster, "aubergine", text_mode=search_pb2.METADATA).hits if h.text_score > 0]
    images = [Image.new("RGB", (32, 32), (90, 30, 110)) for _ in range(4)]
    from modelverse.encoders import encoder_id

    stats = stats_from_features(encoder.encode_images(images), rank=8, keep_covariance=False, encoder=encoder_id(encoder))
    store.put_many([(ModelMetadata("colour-new", name="Aubergine", tags=("purple",)), stats)])
    for state in cluster.states:  # what the admin asks of every shard after a write
        state.sync()
    hits = search(cluster, "aubergine", text_mode=search_pb2.METADATA).hits
    assert hits[0].model.id == "colour-new" and hits[0].text_score > 0 and hits[0].model.name == "Aubergine"
    store.remove("colour-new")
    for state in cluster.states:
        state.sync()
    assert "colour-new" not in [h.model.id for h in search(cluster, "aubergine", text_mode=search_pb2.METADATA).hits]


def test_a_paraphrase_finds_its_model_by_meaning_through_the_gateway(hybrid) -> None:
    cluster, _, _ = hybrid
    for text, right in (("the sea", "colour-2"), ("grass", "colour-1")):  # no word of their metadata
        metadata = search(cluster, text, text_mode=search_pb2.METADATA)
        top = metadata.hits[0]
        assert top.model.id == right and top.text_score == 0 and top.semantic_score > 0.3, (text, top)
        assert top.semantic_score == max(h.semantic_score for h in metadata.hits)
        hybrid_hits = search(cluster, text).hits  # HYBRID, one content candidate per shard: found all the same
        assert right in [h.model.id for h in hybrid_hits] and all(h.semantic_score != 0 for h in hybrid_hits)
    assert all(h.semantic_score == 0 for h in search(cluster, "the sea", text_mode=search_pb2.CONTENT).hits)


@pytest.mark.parametrize("text, fragment", [("   ", "empty text"), ("sea " * 600, "characters is over 2000")])
def test_an_empty_or_oversize_text_is_invalid_argument(hybrid, text, fragment) -> None:
    cluster, _, _ = hybrid
    for mode in (search_pb2.HYBRID, search_pb2.METADATA):
        with pytest.raises(grpc.RpcError) as caught:
            search(cluster, text, text_mode=mode)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in caught.value.details()
