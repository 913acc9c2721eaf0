"""A small store and an in-process serving cluster (real gRPC servers on loopback)."""

from __future__ import annotations

from pathlib import Path

from small_collection import SmallCollection, build_small_collection

from modelverse.serving.inprocess import InProcessCluster, start_in_process  # noqa: F401  (for the tests)
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata

FAMILIES = ("gan", "diffusion", "vae")


def metadata_for(index: int, model_id: str, tags: tuple[str, ...]) -> ModelMetadata:
    return ModelMetadata(
        model_id, name=f"Model {index}", tags=tags, family=FAMILIES[index % 3], resolution=(64, 128, 256)[index % 3]
    )


def build_store(root: Path, count: int = 40, seed: int = 0) -> tuple[DirectoryStore, SmallCollection]:
    small = build_small_collection(count=count, samples=200, dim=64, rank=8, seed=seed)
    store = DirectoryStore.create(root, StoreConfig(dim=64, rank=8))
    store.put_many([(metadata_for(i, m, t), s) for i, (m, t, s) in enumerate(zip(small.ids, small.tags, small.stats))])
    return store, small
