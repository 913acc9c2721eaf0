"""A set of models' statistics as column arrays, the shape every scorer works on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from modelverse.core.scores import SampleSets
from modelverse.core.second_order import CompressedCovariances, FullCovariances
from modelverse.core.stats import ModelStats


@dataclass(frozen=True)
class Collection:
    ids: np.ndarray  # (M,) str
    means: np.ndarray  # (M, d) first moments, not normalised
    compressed: CompressedCovariances
    full: FullCovariances | None = None  # present only when every model kept its covariance
    samples: SampleSets | None = None  # present only when every model kept its samples
    # Rows to serve; None means all. A packed store keeps rows of replaced or removed models
    # until it compacts, and masking them is cheaper than copying the live ones out.
    live: np.ndarray | None = None

    def __post_init__(self) -> None:
        live_ids = self.ids if self.live is None else self.ids[self.live]
        if len(set(live_ids.tolist())) != len(live_ids):
            raise ValueError("model ids in a collection must be unique")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def take(self, rows: np.ndarray, *, second_order: bool = True) -> Collection:
        """Rows of a (memory-mapped) collection read into memory: ids, means and, unless the
        caller's method reads none (the first moment), the compressed second order. At a
        million models the factors do not fit the page cache; not touching them saves a disk
        read per row."""
        return Collection(
            ids=self.ids[rows],
            means=np.asarray(self.means[rows]),
            compressed=self.compressed.take(rows) if second_order else None,  # type: ignore[arg-type]
        )

    def live_mask(self) -> np.ndarray:
        return np.ones(len(self), dtype=bool) if self.live is None else self.live

    def row_of(self, model_id: str) -> int:
        rows = np.flatnonzero((self.ids == model_id) & self.live_mask())
        if rows.size == 0:
            raise KeyError(model_id)
        return int(rows[0])

    @classmethod
    def from_stats(cls, ids: Sequence[str], stats: Sequence[ModelStats]) -> Collection:
        if len(ids) != len(stats) or not stats:
            raise ValueError("need one statistics record per id, and at least one")
        dims = {s.dim for s in stats}
        if len(dims) != 1:
            raise ValueError(f"statistics of different dimensions in one collection: {dims}")
        full = None
        if all(s.covariance is not None for s in stats):
            full = FullCovariances.stack([s.covariance for s in stats])
        samples = None
        if all(s.samples is not None for s in stats):
            samples = SampleSets.from_list([s.samples for s in stats])
        return cls(
            ids=np.array(list(ids), dtype=str),
            means=np.stack([s.mean for s in stats]),
            compressed=CompressedCovariances.stack([s.compressed for s in stats]),
            full=full,
            samples=samples,
        )
