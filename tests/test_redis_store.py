"""The Redis model store against a real redis-server on a free port, and against the directory
store on the same statistics (the same ModelStore interface must give the same answers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from modelverse.core.stats import stats_from_features
from modelverse.fleet.local_fleet import RedisServer
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.errors import IncompatibleStatsError, ModelExistsError, ModelNotFoundError, StoreCorruptError
from modelverse.store.metadata import ModelMetadata
from modelverse.store.model_store import ModelStore
from modelverse.store.redis_store import MODEL_READY, MODEL_REMOVED, RedisModelStore


@pytest.fixture
def store(redis_server: RedisServer, request: pytest.FixtureRequest) -> RedisModelStore:
    return RedisModelStore.from_url(redis_server.url, prefix=f"t-{request.node.name}")


def test_put_get_and_collection_match_the_directory_store(store: RedisModelStore, small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = DirectoryStore.create(tmp_path / "d", StoreConfig(dim=64, rank=8))
    for model_id, tags, stats in zip(small.ids, small.tags, small.stats):
        metadata = ModelMetadata(id=model_id, tags=tags)
        stored = store.put(metadata, stats)
        directory.put(metadata, stats)
        assert stored.stats_version == 1 and stored.metadata == metadata
    # After the first write: isinstance reads every member, and an empty Redis store has no config.
    assert isinstance(store, ModelStore) and isinstance(directory, ModelStore)
    assert store.ids() == directory.ids() == sorted(small.ids)
    assert len(store) == len(small.ids) and small.ids[0] in store and "nope" not in store
    for model_id in small.ids:
        a, b = store.get_stats(model_id), directory.get_stats(model_id)
        assert np.array_equal(a.mean, b.mean) and np.array_equal(a.covariance, b.covariance)
        assert np.array_equal(a.compressed.factor, b.compressed.factor)
    ours, theirs = store.collection(full=True), directory.collection(full=True)
    assert list(ours.ids) == list(theirs.ids)
    np.testing.assert_array_equal(ours.means, theirs.means)


def test_replace_remove_and_errors(store: RedisModelStore, small) -> None:  # type: ignore[no-untyped-def]
    metadata = ModelMetadata(id="owner/model:v1", name="first")
    store.put(metadata, small.stats[0])
    with pytest.raises(ModelExistsError):
        store.put(metadata, small.stats[1])
    replaced = store.put(ModelMetadata(id="owner/model:v1", name="second"), small.stats[1], replace=True)
    assert replaced.stats_version == 2 and replaced.metadata.name == "second"
    assert np.array_equal(store.get_stats("owner/model:v1").mean, small.stats[1].mean)
    store.remove("owner/model:v1")
    with pytest.raises(ModelNotFoundError):
        store.get("owner/model:v1")
    with pytest.raises(ModelNotFoundError):
        store.remove("owner/model:v1")
    other_dim = stats_from_features(np.random.default_rng(0).standard_normal((50, 32)), rank=8)
    with pytest.raises(IncompatibleStatsError, match="dim 32"):
        store.put(ModelMetadata(id="x"), other_dim)


def test_put_version_writes_each_version_once_and_announces_it(store: RedisModelStore, small) -> None:  # type: ignore[no-untyped-def]
    metadata = ModelMetadata(id="owner/versioned")
    assert store.put_version(metadata, small.stats[0], 2, announce={"job_id": "j"}) == 2
    assert store.put_version(metadata, small.stats[1], 2) == 2  # already there: nothing written
    assert store.put_version(metadata, small.stats[1], 1) == 2  # an older version never overwrites
    assert np.array_equal(store.get_stats("owner/versioned").mean, small.stats[0].mean)
    assert store.stats_version("owner/versioned") == 2 and store.stats_version("owner/none") == 0
    events = [fields for _, fields in store.events()]
    assert events == [{"event": MODEL_READY, "model_id": "owner/versioned", "stats_version": "2", "job_id": "j"}]
    last = store.last_event_id()
    store.remove("owner/versioned")
    assert [f["event"] for _, f in store.events(after=last)] == [MODEL_REMOVED]


def test_a_malformed_record_is_reported_as_corrupt(store: RedisModelStore, small) -> None:  # type: ignore[no-untyped-def]
    store.put(ModelMetadata(id="owner/damaged"), small.stats[0])
    store.client.hset(store._model_key("owner/damaged"), "meta", b'{"metadata": {"id": "owner/damaged"}}')
    with pytest.raises(StoreCorruptError, match="malformed model record"):
        store.get("owner/damaged")
