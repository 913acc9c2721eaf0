"""What every model store offers: the directory store (embedded mode, the serving store) and
the Redis model store (the fleet's finished statistics) both stand behind this Protocol.

It is what the callers of both use: the admin's follower copies a model from the fleet's Redis
into the serving store through it, and the benchmarks profile either. Anything one store has
and the other lacks (the directory store's pack and repair, the Redis store's change feed) is
on that store's class, not here.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from modelverse.core.collection import Collection
from modelverse.core.stats import ModelStats
from modelverse.store.directory import StoreConfig, StoredModel
from modelverse.store.metadata import ModelMetadata


@runtime_checkable
class ModelStore(Protocol):
    @property
    def config(self) -> StoreConfig:
        """dim, rank, eps, encoder and tau: fixed by the store's first write."""
        ...

    def ids(self) -> list[str]:
        """Every model's id, sorted."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, model_id: str) -> bool: ...

    def get(self, model_id: str) -> StoredModel:
        """The model's record (ModelNotFoundError when it has none)."""
        ...

    def get_stats(self, model_id: str) -> ModelStats:
        """The model's statistics, checked against the record's checksum."""
        ...

    def get_thumbnails(self, model_id: str) -> list[bytes]:
        """The model's stored thumbnails (PNG files), [] when it has none."""
        ...

    def collection(self, *, full: bool = False, samples: bool = False) -> Collection:
        """Every model's statistics for scoring."""
        ...

    def put(self, metadata: ModelMetadata, stats: ModelStats, *, replace: bool = False,
            thumbnails: list[bytes] | None = None) -> StoredModel:
        """Add (or with ``replace``, replace) a model; its stats version goes up by one."""
        ...

    def remove(self, model_id: str) -> None: ...
