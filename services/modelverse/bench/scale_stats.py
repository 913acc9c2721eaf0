"""Synthetic model statistics at scale (100,000 to 10,000,000 models), written straight into a
store's packed table: no per-model files, no samples, no covariances to decompose.

    .venv/bin/python tools/scale_stats.py --out /tmp/scale-100k --models 100000   (the command line)

How they are derived. A *profile* is measured on a store of real statistics (``--calibrate
STORE``: the bundled zoo's store when there is one; by default a store of 48 models of
``modelverse.synthetic.SyntheticZoo`` at d = 512, 2,000 samples each, built on the fly):

- the norm of the first moment (features are L2-normalised, so ||mu|| < 1 measures how
  concentrated a model's samples are): its empirical quantiles;
- the cluster structure of the normalised means: their mean cosine with the collection's
  mean direction (the "common direction" every image embedding shares) and the mean cosine
  within a tag;
- the covariance spectrum: the top-r eigenvalues (the squared column norms of the stored
  factor W, whose columns are orthogonal), as a curve relative to the largest, and the largest's
  spread; and the residual diagonal D's mean relative to the trace.

Then model m of the scale collection gets: a cluster c (one of ``--clusters`` concept
directions, Zipf-distributed sizes, as tags are in a hub), a direction
normalise(a * concept_c + b * common + own_m) with a, b set so the common and within-cluster
cosines match the profile, a norm drawn from the profile's quantiles; r random orthonormal
directions with the profile's eigenvalue curve scaled by a drawn lambda_1; a residual diagonal
around the profile's level. The Woodbury factors are computed by ``core.compression`` from the
rounded float16 values, exactly as for real models.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from modelverse.core.compression import woodbury_factors_many
from modelverse.core.moments import l2_normalize_rows
from modelverse.core.scores import normalized_means
from modelverse.core.stats import DEFAULT_EPS, stats_from_features
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.model_store import ModelStore
from modelverse.store.pack import SCALARS_DTYPE, PackWriter
from modelverse.synthetic import SyntheticZoo

BATCH = 8192


@dataclass(frozen=True)
class Profile:
    dim: int
    rank: int
    norm_quantiles: list[float]  # 21 quantiles (0, 5, ..., 100 %) of ||mu||
    common_cosine: float  # mean cos(mu_m / ||mu_m||, collection mean direction)
    within_cosine: float  # mean cos between normalised means sharing a tag
    spectrum: list[float]  # mean lambda_k / lambda_1, k = 1..r
    lambda1_log_mean: float
    lambda1_log_std: float
    residual_fraction: float  # mean sum(D) / trace


def measure_profile(store: ModelStore, tags: dict[str, tuple[str, ...]] | None = None) -> Profile:
    collection = store.collection()
    live = collection.live_mask()
    means = np.asarray(collection.means, dtype=np.float64)[live]
    factor = np.asarray(collection.compressed.factor, dtype=np.float64)[live]
    diag = np.asarray(collection.compressed.diag, dtype=np.float64)[live]
    traces = np.asarray(collection.compressed.traces)[live]
    ids = collection.ids[live]
    unit = normalized_means(means)
    common = unit.mean(axis=0)
    common /= np.linalg.norm(common)
    if tags is None:
        tags = {m: store.get(m).metadata.tags for m in ids}
    within = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if set(tags.get(ids[i], ())) & set(tags.get(ids[j], ())):
                within.append(float(unit[i] @ unit[j]))
    lam = np.sort((factor**2).sum(axis=1), axis=1)[:, ::-1]  # W's columns are orthogonal
    return Profile(
        dim=int(means.shape[1]),
        rank=int(factor.shape[2]),
        norm_quantiles=np.quantile(np.linalg.norm(means, axis=1), np.linspace(0, 1, 21)).tolist(),
        common_cosine=float(np.mean(unit @ common)),
        within_cosine=float(np.mean(within)) if within else float(np.mean(unit @ common)) ** 2,
        spectrum=(lam / lam[:, :1]).mean(axis=0).tolist(),
        lambda1_log_mean=float(np.log(lam[:, 0]).mean()),
        lambda1_log_std=float(np.log(lam[:, 0]).std()),
        residual_fraction=float((diag.sum(axis=1) / traces).mean()),
    )


def load_profile(path: Path) -> Profile:
    """A profile from JSON: a --save-profile file or a scale store's scale.json (its "profile")."""
    data = json.loads(Path(path).read_text())
    return Profile(**data.get("profile", data))


def synthetic_reference_store(root: Path, models: int = 48, samples: int = 2000, dim: int = 512) -> tuple[DirectoryStore, dict]:
    """The default calibration source: SyntheticZoo models' real statistics from samples."""
    from modelverse.store.metadata import ModelMetadata

    zoo = SyntheticZoo(dim=dim)
    store = DirectoryStore.create(root, StoreConfig(dim=dim))
    items = []
    for i, model in enumerate(zoo.models(models)):
        stats = stats_from_features(l2_normalize_rows(model.sample_features(samples, seed=i)), keep_covariance=False)
        items.append((ModelMetadata(model.id, tags=model.tags), stats))
    store.put_many(items)
    return store, {m.id: m.tags for m, _ in items}


def generate_batch(profile: Profile, start: int, count: int, clusters: np.ndarray, concepts: np.ndarray,
                   common: np.ndarray, seed: int, eps: float) -> dict[str, np.ndarray]:
    d, r = profile.dim, profile.rank
    rng = np.random.default_rng([seed, start])
    # Directions: weights solve cos(dir, common) ~ c and cos within a cluster ~ w for unit,
    # mutually near-orthogonal concept, common and own vectors (high dimension).
    c, w = profile.common_cosine, max(profile.within_cosine, profile.common_cosine**2 + 1e-3)
    a2 = max(w - c**2, 1e-4)  # concept weight^2
    o2 = max(1.0 - c**2 - a2, 1e-4)  # own weight^2
    own = rng.standard_normal((count, d)) / np.sqrt(d)
    direction = np.sqrt(a2) * concepts[clusters[start:start + count]] + c * common + np.sqrt(o2) * own
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    quantiles = np.asarray(profile.norm_quantiles)
    norms = np.interp(rng.uniform(0, 1, count), np.linspace(0, 1, quantiles.size), quantiles)
    means = direction * norms[:, None]
    # Second order: random orthonormal directions with the profile's spectrum.
    basis, _ = np.linalg.qr(rng.standard_normal((count, d, r)))
    lam1 = np.exp(rng.normal(profile.lambda1_log_mean, profile.lambda1_log_std, count))
    lam = lam1[:, None] * np.asarray(profile.spectrum)[None, :]
    factor = (basis * np.sqrt(lam)[:, None, :]).astype(np.float16)
    top_trace = lam.sum(axis=1)
    residual_total = top_trace * profile.residual_fraction / max(1e-9, 1.0 - profile.residual_fraction)
    diag = (residual_total[:, None] / d * rng.gamma(4.0, 0.25, (count, d))).astype(np.float16)
    woodbury, logdet = woodbury_factors_many(diag, factor, eps)
    scalars = np.zeros(count, dtype=SCALARS_DTYPE)
    scalars["count"] = 50_000
    scalars["logdet"] = logdet
    scalars["trace"] = diag.astype(np.float64).sum(axis=1) + (factor.astype(np.float64) ** 2).sum(axis=(1, 2))
    scalars["stats_version"] = 1
    return {"means": means.astype("<f4"), "diag": diag, "factor": factor, "woodbury": woodbury, "scalars": scalars}


def write_scale_store(out: Path, models: int, profile: Profile, clusters: int, seed: int = 0) -> float:
    """Create a store at ``out`` holding ``models`` synthetic models; returns seconds taken."""
    started = time.perf_counter()
    store = DirectoryStore.create(out, StoreConfig(dim=profile.dim, rank=profile.rank, eps=DEFAULT_EPS))
    rng = np.random.default_rng(seed)
    concepts = rng.standard_normal((clusters, profile.dim))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    common = rng.standard_normal(profile.dim)
    common /= np.linalg.norm(common)
    sizes = 1.0 / np.arange(1, clusters + 1)  # Zipf: a few big tags, a long tail
    assignment = rng.choice(clusters, size=models, p=sizes / sizes.sum())
    writer = PackWriter(out / "pack", profile.dim, profile.rank, DEFAULT_EPS)

    def batches():
        for start in range(0, models, BATCH):
            count = min(BATCH, models - start)
            ids = [f"scale-{i:08d}" for i in range(start, start + count)]
            yield ids, generate_batch(profile, start, count, assignment, concepts, common, seed, DEFAULT_EPS)
            print(f"\r{start + count}/{models} models", end="", file=sys.stderr, flush=True)

    writer.rewrite(batches())
    print(file=sys.stderr)
    (out / "scale.json").write_text(json.dumps({"models": models, "clusters": clusters, "seed": seed,
                                                 "profile": asdict(profile)}, indent=1))
    del store
    return time.perf_counter() - started
