"""The dense metadata match with the real all-MiniLM-L6-v2: the NumPy encoder against transformers,
paraphrases found by meaning on a tiny store through a real shard (gRPC), the request's embedding
checked, the embeddings cached beside the index across restarts and embedded a slice at a time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from small_collection import build_small_collection

from modelverse.core.sentence_encoder import DIM, model_dir, sentence_encoder
from modelverse.serving.inprocess import serve_states
from modelverse.serving.shard import state as shard_state
from modelverse.serving.shard.semantic_index import SemanticIndex, semantic_plan
from modelverse.serving.shard.state import EMBEDDINGS_DIR, ShardConfig, ShardState
from modelverse.store import embedding_cache
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.embedding_cache import EmbeddingCache, embed_missing
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import search_pb2, shard_pb2

METADATA = [
    ModelMetadata("cat-vae", name="Cat faces VAE", description="A variational autoencoder of photos of cat faces",
                  tags=("cat", "animal")),
    ModelMetadata("sneaker-gan", name="Sneaker GAN", description="Product photos of sports shoes",
                  tags=("shoe", "footwear")),
    ModelMetadata("digits-vae", name="Handwritten digits", description="Scanned handwritten numerals",
                  tags=("digit",)),
    ModelMetadata("bare-000"),  # an id only, as bulk-written benchmark stores hold: not embedded
]


def embedding_of(text: str) -> bytes:
    return sentence_encoder().encode([text])[0].astype("<f4").tobytes()


@pytest.fixture()
def tiny_store(tmp_path: Path) -> DirectoryStore:
    small = build_small_collection(count=len(METADATA), samples=60, dim=32, rank=4)
    store = DirectoryStore.create(tmp_path / "store", StoreConfig(dim=32, rank=4))
    store.put_many(list(zip(METADATA, small.stats)))
    return store


def shard_config(tmp_path: Path, **changes: object) -> ShardConfig:
    return replace(ShardConfig(store=tmp_path / "store", shard=0, shards=1, index_dir=tmp_path / "index"), **changes)


def recall(text: str, embedding: bytes, mode: int = search_pb2.METADATA) -> shard_pb2.RecallRequest:
    query = np.zeros(32)
    query[0] = 1.0
    return shard_pb2.RecallRequest(method=search_pb2.FIRST_MOMENT, candidates=1, top_k=4, text_mode=mode,
                                   query_text=text, query_embedding_f32=embedding,
                                   parts=[shard_pb2.WeightedVector(values_f64=query.astype("<f8").tobytes(), weight=1.0)])


@pytest.mark.slow
def test_the_numpy_encoder_is_transformers_minilm_mean_pooled() -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["a kitten", "Sneaker GAN: product photos of sports shoes. shoe footwear", "", "x " * 400]
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
    model = AutoModel.from_pretrained(str(model_dir())).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    np.testing.assert_allclose(sentence_encoder().encode_fresh(texts), expected, atol=2e-5)


def test_a_paraphrase_lies_nearer_its_model_than_unrelated_ones() -> None:
    encoder = sentence_encoder()
    documents = encoder.encode(["Cat faces VAE photos of cat faces cat animal", "Sneaker GAN sports shoes shoe",
                                "Handwritten digits numerals digit"])
    for query, right in (("a kitten", 0), ("trainers for jogging", 1), ("the numeral seven", 2)):
        cosines = documents @ encoder.encode([query])[0]
        assert int(np.argmax(cosines)) == right, (query, cosines)
    assert np.allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(encoder.encode(["a kitten"]), encoder.encode_fresh(["a kitten"]))  # remembered


def test_a_shard_finds_a_paraphrase_s_model_by_meaning_where_bm25_finds_nothing(tiny_store, tmp_path) -> None:
    cluster = serve_states([ShardState(shard_config(tmp_path))])
    try:
        shard = cluster.pool.stubs[0][0]
        answer = shard.Recall(recall("a kitten", embedding_of("a kitten")), timeout=30)
        cosine = dict(zip(answer.ids, answer.semantic_scores))
        assert len(answer.semantic_scores) == len(answer.ids) and set(cosine) >= {"cat-vae", "sneaker-gan", "digits-vae"}
        assert cosine["cat-vae"] > max(cosine["sneaker-gan"], cosine["digits-vae"]) > 0
        assert cosine.get("bare-000", 0.0) == 0.0  # nothing to embed: never a dense match
        assert not any(answer.text_scores)  # no word shared: BM25 scores nothing
        assert "cat-vae" in [m.id for m in answer.text_top]
        without = shard.Recall(recall("a kitten", b""), timeout=30)
        assert not without.semantic_scores and "cat-vae" not in without.ids[1:]
        content = shard.Recall(recall("a kitten", embedding_of("a kitten"), search_pb2.CONTENT), timeout=30)
        assert not content.semantic_scores and list(content.ids) == list(without.ids[:1])
    finally:
        cluster.close()


@pytest.mark.parametrize("embedding, fragment", [
    (b"\x00" * 12, "holds 12 bytes"),
    (np.full(DIM, np.nan, dtype="<f4").tobytes(), "finite"),
    (np.zeros(DIM, dtype="<f4").tobytes(), "not zero"),
])
def test_a_bad_query_embedding_is_invalid_argument(tiny_store, tmp_path, embedding, fragment) -> None:
    cluster = serve_states([ShardState(shard_config(tmp_path))])
    try:
        with pytest.raises(grpc.RpcError) as caught:
            cluster.pool.stubs[0][0].Recall(recall("a kitten", embedding), timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "query_embedding_f32" in caught.value.details() and fragment in caught.value.details()
    finally:
        cluster.close()


def test_a_restarted_shard_reads_the_embeddings_from_its_cache(tiny_store, tmp_path) -> None:
    first = ShardState(shard_config(tmp_path))
    cache_dir = tmp_path / "index" / EMBEDDINGS_DIR
    segments = sorted(cache_dir.glob("segment-*.npz"))
    assert len(segments) == 1 and len(first.embeddings or []) == 3  # the three described models
    again = ShardState(shard_config(tmp_path))
    assert sorted(cache_dir.glob("segment-*.npz")) == segments  # nothing embedded again
    assert first.snapshot.context.semantic is not None and again.snapshot.context.semantic is not None
    np.testing.assert_array_equal(again.snapshot.context.semantic.vectors, first.snapshot.context.semantic.vectors)
    # a changed description is a new text: embedded (one new segment), the others read
    stats = tiny_store.get_stats("sneaker-gan")
    tiny_store.put(ModelMetadata("sneaker-gan", name="Sneaker GAN", description="Running shoes on white"), stats,
                   replace=True)
    again.sync()
    assert len(list(cache_dir.glob("segment-*.npz"))) == 2
    off = ShardState(shard_config(tmp_path, metadata_embeddings=False, index_dir=tmp_path / "index-off"))
    assert off.embeddings is None and not (tmp_path / "index-off" / EMBEDDINGS_DIR).exists()


def test_metadata_is_embedded_a_slice_at_a_time_until_the_dense_match_turns_on(tiny_store, tmp_path,
                                                                                 monkeypatch) -> None:
    monkeypatch.setattr(embedding_cache, "EMBED_BATCH", 1)
    monkeypatch.setattr(shard_state, "EMBED_SLICE_SECONDS", 0.0)  # one batch per sync
    state = ShardState(shard_config(tmp_path))
    assert state.semantic_pending and state.snapshot.context.semantic_scores(np.ones(DIM), np.arange(4)) is None
    state.sync()
    assert state.semantic_pending
    state.sync()
    assert not state.semantic_pending
    context = state.snapshot.context
    cosines = context.semantic_scores(sentence_encoder().encode(["a kitten"])[0], np.array(list(state.snapshot.row_of.values())))
    assert cosines is not None and np.count_nonzero(cosines) == 3


def test_the_cache_survives_a_torn_segment_merges_small_ones_and_forgets_dead_texts(tmp_path) -> None:
    def encode(texts: list[str]) -> np.ndarray:  # a stand-in encoder: the cache, not the model, is tested here
        out = np.zeros((len(texts), 4), dtype=np.float32)
        out[:, 0] = [len(t) for t in texts]
        return out

    cache = EmbeddingCache(tmp_path / "c", "test-encoder", dim=4)
    for i in range(embedding_cache.MAX_SEGMENTS + 1):
        assert embed_missing(cache, [f"text {i}"], encode) == 0
    assert len(cache) == embedding_cache.MAX_SEGMENTS + 1 and cache.segments <= embedding_cache.MAX_SEGMENTS
    (tmp_path / "c" / "segment-0-torn.npz").write_bytes(b"not a segment")
    reopened = EmbeddingCache(tmp_path / "c", "test-encoder", dim=4)
    assert len(reopened) == len(cache) and reopened.vectors(["text 3"])[0, 0] == len("text 3")
    assert EmbeddingCache(tmp_path / "c", "another-encoder", dim=4).missing(["text 3"]) == ["text 3"]
    reopened.prune(["text 0", "text 1"])
    assert len(EmbeddingCache(tmp_path / "c", "test-encoder", dim=4)) == 2


def test_the_inverted_file_finds_what_the_exhaustive_scan_does_and_skips_rows_not_embedded() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[::10] = 0.0  # not embedded
    embedded = np.flatnonzero(vectors.any(axis=1))
    exhaustive = SemanticIndex.build(vectors, embedded)
    plan = semantic_plan(embedded.size)
    ivf = SemanticIndex.build(vectors, embedded, exhaustive_threshold=0, nprobe=plan.nlist)  # every list scanned
    assert exhaustive.index is None and ivf.plan == semantic_plan(embedded.size, plan.nlist)
    for q in vectors[1:60:6]:  # embedded rows (not multiples of 10)
        exact, exact_cosines = exhaustive.top(q, 20)
        found, cosines = ivf.top(q, 20)
        assert list(found[:10]) == list(exact[:10]) and not np.isin(found, np.arange(0, 3000, 10)).any()
        np.testing.assert_allclose(cosines[:10], exact_cosines[:10], rtol=1e-6)  # exact cosines, not the codes'
        np.testing.assert_allclose(exact_cosines, np.sort(vectors[embedded] @ q)[::-1][:20], rtol=1e-5)
    allowed = np.arange(100, 200)
    chosen, _ = ivf.top(vectors[151], 5, allowed)
    assert chosen[0] == 151 and np.isin(chosen, allowed).all() and not np.isin(chosen, [100, 110, 120]).any()
    assert exhaustive.scores(vectors[1], np.array([1, 0, -1]))[1:].tolist() == [0.0, 0.0]
    again = SemanticIndex.build(vectors, embedded, exhaustive_threshold=0, previous=ivf)  # the training reused
    assert again.index is not ivf.index and again.index.ntotal == embedded.size
