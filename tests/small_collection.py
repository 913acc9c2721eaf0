"""Small collections of synthetic models with known raw features (the ``small`` fixture of
conftest.py is one; tests build others with their own sizes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelverse.core.collection import Collection
from modelverse.core.moments import l2_normalize_rows
from modelverse.core.stats import ModelStats, stats_from_features
from modelverse.synthetic import SyntheticZoo


@dataclass(frozen=True)
class SmallCollection:
    ids: list[str]
    tags: list[tuple[str, ...]]
    features: list[np.ndarray]  # L2-normalised, float64
    stats: list[ModelStats]
    collection: Collection
    zoo: SyntheticZoo


def build_small_collection(
    count: int = 8, samples: int = 300, dim: int = 64, rank: int = 8, seed: int = 0
) -> SmallCollection:
    zoo = SyntheticZoo(dim=dim, latent_dim=24, seed=seed)
    models = zoo.models(count)
    features = [l2_normalize_rows(m.sample_features(samples, seed=i)) for i, m in enumerate(models)]
    stats = [stats_from_features(f, rank=rank, keep_samples=True) for f in features]
    ids = [m.id for m in models]
    return SmallCollection(
        ids=ids,
        tags=[m.tags for m in models],
        features=features,
        stats=stats,
        collection=Collection.from_stats(ids, stats),
        zoo=zoo,
    )
