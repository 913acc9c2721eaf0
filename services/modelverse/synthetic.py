"""Synthetic "generative models" whose sample features look like image-encoder features.

Used where no real encoder and zoo are at hand yet (the foundation's demo, tests, and the
compression study). Each synthetic model is a small random nonlinear generator:

    h ~ N(0, I_k),   x = a * c_m + B_m tanh(A h) + noise,   z = x / ||x||

- c_m, the model's centre, mixes the unit "concept" directions of its tags with a model-specific
  direction, so models sharing a tag cluster on the sphere, as real CLIP first moments do;
- B_m has columns of decaying scale (power law), so the covariance spectrum decays like that of
  real sample features rather than being flat;
- tanh makes the distribution non-Gaussian, as a real generator's is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_TAGS = (
    "face", "cat", "dog", "car", "landscape", "painting", "sketch", "anime",
    "building", "flower", "bird", "clothing",
)


@dataclass(frozen=True)
class SyntheticModel:
    id: str
    name: str
    tags: tuple[str, ...]
    centre: np.ndarray
    mixing: np.ndarray  # (d, k)
    latent_map: np.ndarray  # (k, k)
    centre_weight: float
    noise: float

    def sample_features(self, n: int, seed: int) -> np.ndarray:
        """Raw (un-normalised) features of n samples, deterministic in seed."""
        rng = np.random.default_rng(seed)
        h = rng.standard_normal((n, self.latent_map.shape[0]))
        x = self.centre_weight * self.centre + np.tanh(h @ self.latent_map.T) @ self.mixing.T
        return x + self.noise * rng.standard_normal(x.shape)


@dataclass
class SyntheticZoo:
    """A family of synthetic models sharing concept directions."""

    dim: int = 512
    tags: tuple[str, ...] = DEFAULT_TAGS
    latent_dim: int = 96
    seed: int = 0
    concepts: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        vectors = rng.standard_normal((len(self.tags), self.dim))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        self.concepts = dict(zip(self.tags, vectors))
        common = rng.standard_normal(self.dim)
        # Real image embeddings of any content share a common direction (cosine between the
        # means of unrelated models is far from 0); this plays that part.
        self.common = common / np.linalg.norm(common)

    def model(self, index: int, tags: tuple[str, ...]) -> SyntheticModel:
        rng = np.random.default_rng([self.seed, index])
        own = rng.standard_normal(self.dim)
        centre = sum(self.concepts[t] for t in tags) / np.sqrt(len(tags))
        centre = centre + 0.6 * own / np.linalg.norm(own) + 0.9 * self.common
        centre /= np.linalg.norm(centre)
        scales = (1.0 + np.arange(self.latent_dim)) ** -0.45  # power-law spectrum
        mixing = rng.standard_normal((self.dim, self.latent_dim)) / np.sqrt(self.dim) * scales
        return SyntheticModel(
            id=f"synthetic-{index:04d}",
            name=f"Synthetic {' '.join(tags)} generator #{index}",
            tags=tags,
            centre=centre,
            mixing=mixing * rng.uniform(1.5, 3.0),
            latent_map=rng.standard_normal((self.latent_dim, self.latent_dim)) / np.sqrt(self.latent_dim),
            centre_weight=float(rng.uniform(2.4, 3.4)),
            noise=float(rng.uniform(0.02, 0.04)),
        )

    def models(self, count: int) -> list[SyntheticModel]:
        """count models, tagged round-robin with one or two tags."""
        rng = np.random.default_rng([self.seed, 10**6])
        out = []
        for i in range(count):
            first = self.tags[i % len(self.tags)]
            tags: tuple[str, ...] = (first,)
            if rng.random() < 0.3:
                second = self.tags[int(rng.integers(len(self.tags)))]
                if second != first:
                    tags = (first, second)
            out.append(self.model(i, tags))
        return out
