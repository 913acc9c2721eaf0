"""The directory store: round trips, replacement, removal, corruption, and the pack."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelverse.core.reference import ExactSearch
from modelverse.core.stats import stats_from_features
from modelverse.core.types import Method, QueryPart
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.errors import (
    IncompatibleStatsError,
    ModelExistsError,
    ModelNotFoundError,
    StoreCorruptError,
    StoreNotFoundError,
)
from modelverse.store.metadata import ModelMetadata
from modelverse.store.pack import Pack

DIM, RANK = 32, 4


def make_stats(seed: int, n: int = 60, **kwargs):
    rng = np.random.default_rng(seed)
    return stats_from_features(rng.standard_normal((n, DIM)) + rng.standard_normal(DIM), rank=RANK, **kwargs)


@pytest.fixture
def store(tmp_path) -> DirectoryStore:
    store = DirectoryStore.create(tmp_path / "store", StoreConfig(DIM, RANK))
    for i in range(5):
        store.put(ModelMetadata(f"owner/model-{i}", name=f"Model {i}", tags=("Face", "gan")), make_stats(i))
    return store


def test_round_trip_of_metadata_and_statistics(store) -> None:
    original = make_stats(2)
    stored = store.get("owner/model-2")
    assert stored.metadata.name == "Model 2" and stored.metadata.tags == ("face", "gan")
    assert stored.stats_version == 1 and stored.count == 60
    loaded = store.get_stats("owner/model-2")
    np.testing.assert_array_equal(loaded.mean, original.mean)
    np.testing.assert_array_equal(loaded.compressed.factor, original.compressed.factor)
    np.testing.assert_allclose(loaded.covariance, original.covariance, rtol=1e-6, atol=1e-7)
    reopened = DirectoryStore.open(store.root)
    assert reopened.config == StoreConfig(DIM, RANK) and reopened.ids() == [f"owner/model-{i}" for i in range(5)]


def test_pack_rows_match_the_per_model_files(store) -> None:
    collection = store.collection()
    for model_id in store.ids():
        row = collection.row_of(model_id)
        stats = store.get_stats(model_id)
        np.testing.assert_allclose(collection.means[row], stats.mean, rtol=1e-6)
        np.testing.assert_array_equal(collection.compressed.factor[row], stats.compressed.factor)
        assert collection.compressed.logdet[row] == pytest.approx(stats.compressed.logdet)


def test_replace_needs_the_flag_and_bumps_the_version(store) -> None:
    with pytest.raises(ModelExistsError, match="--replace"):
        store.put(ModelMetadata("owner/model-1"), make_stats(9))
    stored = store.put(ModelMetadata("owner/model-1", name="new"), make_stats(9), replace=True)
    assert stored.stats_version == 2 and stored.metadata.name == "new"
    np.testing.assert_array_equal(store.get_stats("owner/model-1").mean, make_stats(9).mean)
    files = sorted(p.name for p in (store._model_dir("owner/model-1")).iterdir())
    assert files == ["meta.json", "stats-v2.npz"]
    assert len(store) == 5
    collection = store.collection()
    np.testing.assert_allclose(collection.means[collection.row_of("owner/model-1")], make_stats(9).mean, rtol=1e-6)


def test_remove_takes_the_model_out_of_search(store) -> None:
    store.remove("owner/model-3")
    assert "owner/model-3" not in store and len(store) == 4
    with pytest.raises(ModelNotFoundError):
        store.get("owner/model-3")
    with pytest.raises(ModelNotFoundError):
        store.remove("owner/model-3")
    q = make_stats(3).mean
    hits = ExactSearch(store.collection(), store.config.scoring).search([QueryPart(q)], Method.FIRST_MOMENT, k=10)
    assert "owner/model-3" not in {h.id for h in hits} and len(hits) == 4


def test_incompatible_statistics_are_refused(store) -> None:
    other_dim = stats_from_features(np.random.default_rng(0).standard_normal((20, DIM + 1)), rank=RANK)
    with pytest.raises(IncompatibleStatsError, match="dimension"):
        store.put(ModelMetadata("x"), other_dim)
    with pytest.raises(IncompatibleStatsError, match="rank"):
        store.put(ModelMetadata("x"), stats_from_features(np.ones((5, DIM)) + np.eye(5, DIM), rank=RANK + 1))
    assert "x" not in store


def test_invalid_ids_are_refused(tmp_path) -> None:
    for bad in ("", " padded", "..", "a\nb", "x" * 201):
        with pytest.raises(ValueError):
            ModelMetadata(bad)


def test_missing_store_is_reported(tmp_path) -> None:
    with pytest.raises(StoreNotFoundError, match="no model store"):
        DirectoryStore.open(tmp_path / "nowhere")


def test_truncated_statistics_file_is_named_and_loses_nothing_else(store) -> None:
    stats_path = store._model_dir("owner/model-1") / "stats-v1.npz"
    stats_path.write_bytes(stats_path.read_bytes()[:100])
    with pytest.raises(StoreCorruptError, match="stats-v1.npz"):
        store.get_stats("owner/model-1")
    for other in ("owner/model-0", "owner/model-2"):
        assert store.get_stats(other).count == 60
    hits = ExactSearch(store.collection(), store.config.scoring).search([QueryPart(make_stats(1).mean)], Method.GAUSSIAN, k=5)
    assert len(hits) == 5  # the pack still serves every model


def test_corrupt_metadata_file_is_named(store) -> None:
    meta = store._model_dir("owner/model-4") / "meta.json"
    meta.write_text('{"format_version": 1, "metad')
    with pytest.raises(StoreCorruptError, match="meta.json"):
        store.get("owner/model-4")
    assert store.get("owner/model-0").metadata.name == "Model 0"


def test_truncated_pack_is_named_and_repack_restores_it(store) -> None:
    pack = store.pack()
    column = store.root / "pack" / f"g{pack.generation:06d}" / "factor.bin"
    column.write_bytes(column.read_bytes()[:50])
    with pytest.raises(StoreCorruptError, match="factor.bin.*repack"):
        store.collection()
    assert store.repack() == 5
    assert len(store.collection().ids) == 5


def test_crashed_append_leaves_no_visible_trace(store) -> None:
    """Bytes an interrupted append wrote past the manifest are invisible and then overwritten."""
    pack = store.pack()
    column = store.root / "pack" / f"g{pack.generation:06d}" / "means.bin"
    with open(column, "ab") as handle:
        handle.write(b"\x7f" * 1000)  # half a row of garbage, no manifest update
    assert store.pack().rows == 5
    store.put(ModelMetadata("late"), make_stats(42))
    collection = store.collection()
    np.testing.assert_allclose(collection.means[collection.row_of("late")], make_stats(42).mean, rtol=1e-6)


def test_reader_snapshot_is_stable_while_a_writer_appends_and_compacts(store) -> None:
    snapshot = store.pack()
    before = np.array(snapshot.arrays["means"])
    for i in range(5):
        store.put(ModelMetadata(f"owner/model-{i}"), make_stats(100 + i), replace=True)
    store._pack_writer().compact()
    np.testing.assert_array_equal(np.array(snapshot.arrays["means"]), before)
    assert store.pack().rows == 5 and store.pack().generation == snapshot.generation + 1


def test_compaction_keeps_exactly_the_live_models(tmp_path) -> None:
    store = DirectoryStore.create(tmp_path / "s", StoreConfig(DIM, RANK))
    items = [(ModelMetadata(f"m{i:03d}"), make_stats(i, n=10, keep_covariance=False)) for i in range(300)]
    store.put_many(items)
    for i in range(0, 300, 3):
        store.remove(f"m{i:03d}")
    pack = store.pack()
    assert pack.rows < 300  # compaction ran on the way
    assert sorted(pack.live_rows()) == sorted(f"m{i:03d}" for i in range(300) if i % 3)
    collection = store.collection()
    np.testing.assert_allclose(collection.means[collection.row_of("m004")], items[4][1].mean, rtol=1e-6)


def test_files_carry_format_versions(store) -> None:
    assert json.loads((store.root / "store.json").read_text())["format_version"] == 1
    assert json.loads((store.root / "pack" / "pack.json").read_text())["format_version"] == 1
    meta = json.loads((store._model_dir("owner/model-0") / "meta.json").read_text())
    assert meta["format_version"] == 1
    with np.load(store._model_dir("owner/model-0") / "stats-v1.npz") as data:
        assert int(data["format_version"]) == 1


def test_full_collection_requires_stored_covariances(tmp_path) -> None:
    store = DirectoryStore.create(tmp_path / "s", StoreConfig(DIM, RANK))
    store.put(ModelMetadata("a"), make_stats(1, keep_covariance=False))
    with pytest.raises(ValueError, match="full covariance"):
        store.collection(full=True)
    assert Pack.open(store.root / "pack").all_live_have(1) is False


def test_statistics_of_another_encoder_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    store = DirectoryStore.create(tmp_path / "s", StoreConfig(dim=8, rank=4, encoder="enc-a:0123"))
    store.put(ModelMetadata(id="a"), stats_from_features(rng.normal(size=(50, 8)), rank=4, encoder="enc-a:0123"))
    foreign = stats_from_features(rng.normal(size=(50, 8)), rank=4, encoder="enc-b:4567")
    with pytest.raises(IncompatibleStatsError, match="enc-b:4567"):
        store.put(ModelMetadata(id="b"), foreign)
    reopened = DirectoryStore.open(tmp_path / "s")
    assert reopened.ids() == ["a"]
    assert reopened.get_stats("a").encoder == "enc-a:0123"
    assert reopened.get("a").encoder == "enc-a:0123"
    reopened.check_query_encoder("enc-a:0123")
    with pytest.raises(IncompatibleStatsError, match="query was encoded with 'enc-b:4567'"):
        reopened.check_query_encoder("enc-b:4567")


def test_tau_is_kept_with_the_store_and_old_stores_read_the_papers(tmp_path: Path) -> None:
    created = DirectoryStore.create(tmp_path / "a", StoreConfig(dim=8, rank=2, tau=23.2))
    assert DirectoryStore.open(created.root).config.tau == 23.2
    manifest = json.loads((created.root / "store.json").read_text())
    del manifest["tau"]  # as written before the field existed
    (created.root / "store.json").write_text(json.dumps(manifest))
    assert DirectoryStore.open(created.root).config.tau == 100.0
    with pytest.raises(ValueError, match="invalid store configuration"):
        DirectoryStore.create(tmp_path / "b", StoreConfig(dim=8, rank=2, tau=0.0))


def test_prefetch_asks_for_each_candidate_row_once_and_reads_nothing_wrong(tmp_path) -> None:
    """Pack.prefetch issues one WILLNEED per row range not already covered (rows sharing pages
    are merged) and leaves the rows' values as they are."""
    from serving_fixtures import build_store

    from modelverse.store.pack import SECOND_ORDER_COLUMNS

    store, _ = build_store(tmp_path / "store", count=30)
    pack = store.pack()
    assert pack is not None
    before = {name: np.array(pack.arrays[name][[3, 4, 17]]) for name in SECOND_ORDER_COLUMNS}
    calls = pack.prefetch(np.array([17, 3, 4, 4]))
    assert 0 < calls <= 3 * len(SECOND_ORDER_COLUMNS)
    for name in SECOND_ORDER_COLUMNS:
        np.testing.assert_array_equal(pack.arrays[name][[3, 4, 17]], before[name])
    assert pack.prefetch(np.zeros(0, dtype=np.int64)) == 0
