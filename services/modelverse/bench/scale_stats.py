"""Synthetic model statistics at scale (100,000 to 10,000,000 models), written straight into a
store's packed table: no per-model files, no samples, no covariances to decompose.

    .venv/bin/python tools/scale_stats.py --out /tmp/scale-100k --models 100000   (the command line)

How they are derived. A *profile* is measured on a store of real statistics (``--calibrate
STORE``: the bundled zoo's store when there is one, docs/benchmarks/zoo-profile.json; by default a
store of 48 models of ``modelverse.synthetic.SyntheticZoo`` at d = 512, 2,000 samples each, built
on the fly):

- the norm of the first moment (features are L2-normalised, so ||mu|| < 1 measures how
  concentrated a model's samples are): its empirical quantiles;
- the cluster structure of the normalised means: their mean cosine with the collection's
  mean direction (the "common direction" every image embedding shares) and the mean cosine
  within a tag;
- the covariance spectrum: the top-r eigenvalues (the squared column norms of the stored
  factor W, whose columns are orthogonal), as a curve relative to the largest, and the largest's
  spread; and the residual diagonal D's mean relative to the trace;
- the cross-model structure of the factors (``modelverse.bench.structure``): the median fraction
  of each model's low-rank energy ||W||_F^2 that one shared basis of k = 16, 32, 64, 128
  directions keeps (fitted on all models, and without the model), and the energy fractions along
  the model's mean direction, its tag's concept direction and the common direction.

Then model m of the scale collection gets: a cluster c (one of ``--clusters`` concept
directions, Zipf-distributed sizes, as tags are in a hub), a direction
normalise(a * concept_c + b * common + own_m) with a, b set so the common and within-cluster
cosines match the profile, a norm drawn from the profile's quantiles; r orthonormal covariance
directions with the profile's eigenvalue curve scaled by a drawn lambda_1; a residual diagonal
around the profile's level. The Woodbury factors are computed by ``core.compression`` from the
rounded float16 values, exactly as for real models.

The covariance directions (``--structure``):

- ``structured`` (the default): drawn from a basis the whole collection shares, a random rotation
  R of R^d with a decaying spectrum (a power law with a soft cutoff), with more or less variance
  along the common, concept and mean directions (``StructureParams``). Its five parameters are
  fitted (``fit_structure``) so that a generated collection, measured by the same functions,
  keeps the profile's leave-one-out fractions at each k and its alignment energies; the fit is
  saved with the profile (``Profile.fitted``, for one dim and cluster count). The number of
  shared directions k and the fractions carry over unchanged from the profile's dim to ``--dim``.
  The columns of W stay orthonormal directions scaled by the eigenvalues, largest first, as
  ``core.compression`` stores them.
- ``random``: independent random orthonormal directions per model (QR of a Gaussian matrix), the
  generator as it was before issue 13: same numbers, same stores. A shared basis of k directions
  keeps about k/d of such a model.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from modelverse.bench.structure import (
    Structure,
    common_direction,
    concept_pairs,
    direction_energy,
    direction_gram,
    groups_of_assignment,
    groups_of_tags,
    kept_fractions,
    measure_structure,
    top_directions,
    unit_rows,
)
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
    # The cross-model structure of the factors (modelverse.bench.structure); None in profiles
    # saved before it was measured (the generator then has only --structure random).
    structure: Structure | None = None
    # The structured generator's parameters fitted to this profile (fit_structure), for one
    # generated dim and cluster count: kept here so a run with the same ones need not fit again.
    fitted: FittedStructure | None = None

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        data = dict(data)
        if data.get("structure") is not None:
            data["structure"] = Structure.from_dict(data["structure"])
        if data.get("fitted") is not None:
            fitted = dict(data["fitted"])
            data["fitted"] = FittedStructure(**{**fitted, "params": StructureParams(**fitted["params"])})
        return cls(**data)


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
        structure=measure_structure(factor, means, groups_of_tags([tags.get(m, ()) for m in ids])),
    )


def load_profile(path: Path) -> Profile:
    """A profile from JSON: a --save-profile file or a scale store's scale.json (its "profile")."""
    data = json.loads(Path(path).read_text())
    return Profile.from_dict(data.get("profile", data))


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


STRUCTURES = ("structured", "random")


@dataclass(frozen=True)
class StructureParams:
    """How ``--structure structured`` draws a model's covariance directions (``fit_structure``).

    The span of model m's W is that of A_m = R diag(s) Z_m (d x r, Z_m standard normal): R a random
    rotation of R^d the whole collection shares, s_j^2 = (1 + j)^-decay exp(-j / cutoff) its
    spectrum (j = 0 .. d - 1: a power law with a soft cutoff; the far tail is the isotropic
    residual). Then A_m's component along the common direction, the model's concept direction and
    its own mean direction is multiplied by the gains (1: no preference; > 1: more variance there).
    W takes A_m's left singular vectors, the largest eigenvalue on the largest singular value."""

    decay: float
    cutoff: float
    common_gain: float = 1.0
    concept_gain: float = 1.0
    mean_gain: float = 1.0

    def spectrum(self, dim: int) -> np.ndarray:
        j = np.arange(dim)
        return (1.0 + j) ** -self.decay * np.exp(-j / self.cutoff)


@dataclass(frozen=True)
class FittedStructure:
    dim: int
    clusters: int
    params: StructureParams
    report: dict  # fit_structure's figures beside the targets


def structure_params(profile: Profile, clusters: int, seed: int = 0) -> tuple[Profile, StructureParams]:
    """The profile's fitted parameters for its dim and ``clusters``, fitting them when the profile
    holds none for those (the returned profile then carries them, for --save-profile)."""
    fitted = profile.fitted
    if fitted is None or (fitted.dim, fitted.clusters) != (profile.dim, clusters):
        params, report = fit_structure(profile, clusters, seed=seed)
        fitted = FittedStructure(profile.dim, clusters, params, report)
        profile = replace(profile, fitted=fitted)
    return profile, fitted.params


@dataclass(frozen=True)
class Layout:
    """The collection-wide draws every batch shares."""

    assignment: np.ndarray  # (N,) cluster of each model
    concepts: np.ndarray  # (clusters, d) unit vectors
    common: np.ndarray  # (d,) unit vector
    rotation: np.ndarray | None  # (d, d) the shared basis R of the structured mode (None: random mode, or the identity)

    @classmethod
    def draw(cls, dim: int, models: int, clusters: int, seed: int, structured: bool) -> Layout:
        rng = np.random.default_rng(seed)
        concepts = rng.standard_normal((clusters, dim))
        concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
        common = rng.standard_normal(dim)
        common /= np.linalg.norm(common)
        sizes = 1.0 / np.arange(1, clusters + 1)  # Zipf: a few big tags, a long tail
        assignment = rng.choice(clusters, size=models, p=sizes / sizes.sum())
        # From its own stream: a random-mode collection is the same as before the mode existed, and
        # the rotation does not depend on the number of models (the fit draws fewer, in the same frame).
        rotation = np.linalg.qr(np.random.default_rng([seed, 1]).standard_normal((dim, dim)))[0] if structured else None
        return cls(assignment, concepts, common, rotation)


def structured_basis(params: StructureParams, layout: Layout, normals: np.ndarray, concepts: np.ndarray,
                     directions: np.ndarray) -> np.ndarray:
    """(n, d, r) orthonormal columns, largest singular value first (see StructureParams). Built in
    the frame of R (where the shared spectrum is diagonal), rotated once at the end; a layout
    without a rotation (the fit: every measure is rotation invariant) stays in that frame."""
    n, d, r = normals.shape
    rotation = layout.rotation
    spread = normals * np.sqrt(params.spectrum(d))[None, :, None]
    # The gains, one after the other: A <- (I + (g - 1) u u^T) A for u = common, concept, mean.
    # Each step adds u c^T with c from the projections of the A before it, so all three come
    # from U^T A and the u's dot products, and A is updated in one pass.
    units = np.stack(np.broadcast_arrays(layout.common[None, :], concepts, directions), axis=2)  # (n, d, 3)
    if rotation is not None:
        units = (units.transpose(0, 2, 1).reshape(-1, d) @ rotation).reshape(n, 3, d).transpose(0, 2, 1)
    gains = (params.common_gain, params.concept_gain, params.mean_gain)
    projections = np.einsum("nda,ndr->nar", units, spread)
    dots = np.einsum("nda,ndb->nab", units, units)
    coefficients = np.zeros_like(projections)
    for a in range(3):
        before = projections[:, a] + np.einsum("nb,nbr->nr", dots[:, a, :a], coefficients[:, :a])
        coefficients[:, a] = (gains[a] - 1.0) * before
    spread += np.einsum("nda,nar->ndr", units, coefficients)
    basis, _, _ = np.linalg.svd(spread, full_matrices=False)
    if rotation is None:
        return basis
    return (basis.transpose(0, 2, 1).reshape(n * r, d) @ rotation.T).reshape(n, r, d).transpose(0, 2, 1)


@dataclass(frozen=True)
class Draws:
    """The random numbers of models start .. start + n - 1, before the covariance directions are made."""

    means: np.ndarray  # (n, d)
    directions: np.ndarray  # (n, d) the means' unit directions
    concepts: np.ndarray  # (n, d) each model's concept direction
    normals: np.ndarray  # (n, d, r) standard normal: the covariance directions' raw material
    eigenvalues: np.ndarray  # (n, r) largest first
    rng: np.random.Generator  # what the rest of the batch draws from


def draw(profile: Profile, start: int, count: int, layout: Layout, seed: int) -> Draws:
    d, r = profile.dim, profile.rank
    rng = np.random.default_rng([seed, start])
    # Directions: weights solve cos(dir, common) ~ c and cos within a cluster ~ w for unit,
    # mutually near-orthogonal concept, common and own vectors (high dimension).
    c, w = profile.common_cosine, max(profile.within_cosine, profile.common_cosine**2 + 1e-3)
    a2 = max(w - c**2, 1e-4)  # concept weight^2
    o2 = max(1.0 - c**2 - a2, 1e-4)  # own weight^2
    own = rng.standard_normal((count, d)) / np.sqrt(d)
    concepts = layout.concepts[layout.assignment[start:start + count]]
    direction = np.sqrt(a2) * concepts + c * layout.common + np.sqrt(o2) * own
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    quantiles = np.asarray(profile.norm_quantiles)
    norms = np.interp(rng.uniform(0, 1, count), np.linspace(0, 1, quantiles.size), quantiles)
    means = direction * norms[:, None]
    normals = rng.standard_normal((count, d, r))
    lam1 = np.exp(rng.normal(profile.lambda1_log_mean, profile.lambda1_log_std, count))
    lam = lam1[:, None] * np.asarray(profile.spectrum)[None, :]
    return Draws(means, direction, concepts, normals, lam, rng)


def covariance_directions(draws: Draws, layout: Layout, params: StructureParams | None) -> np.ndarray:
    """(n, d, r) orthonormal: random (QR of the normals; the generator before the structured mode)
    or drawn from the collection's shared basis (structured)."""
    if params is None:
        return np.linalg.qr(draws.normals)[0]
    return structured_basis(params, layout, draws.normals, draws.concepts, draws.directions)


def generate_batch(profile: Profile, start: int, count: int, layout: Layout, seed: int, eps: float,
                   params: StructureParams | None = None) -> dict[str, np.ndarray]:
    d = profile.dim
    draws = draw(profile, start, count, layout, seed)
    lam = draws.eigenvalues
    factor = (covariance_directions(draws, layout, params) * np.sqrt(lam)[:, None, :]).astype(np.float16)
    top_trace = lam.sum(axis=1)
    residual_total = top_trace * profile.residual_fraction / max(1e-9, 1.0 - profile.residual_fraction)
    diag = (residual_total[:, None] / d * draws.rng.gamma(4.0, 0.25, (count, d))).astype(np.float16)
    woodbury, logdet = woodbury_factors_many(diag, factor, eps)
    scalars = np.zeros(count, dtype=SCALARS_DTYPE)
    scalars["count"] = 50_000
    scalars["logdet"] = logdet
    scalars["trace"] = diag.astype(np.float64).sum(axis=1) + (factor.astype(np.float64) ** 2).sum(axis=(1, 2))
    scalars["stats_version"] = 1
    return {"means": draws.means.astype("<f4"), "diag": diag, "factor": factor, "woodbury": woodbury, "scalars": scalars}


def write_scale_store(out: Path, models: int, profile: Profile, clusters: int, seed: int = 0,
                      params: StructureParams | None = None) -> float:
    """Create a store at ``out`` holding ``models`` synthetic models; returns seconds taken.
    ``params``: structured covariance directions (``fit_structure``); None: random ones."""
    started = time.perf_counter()
    store = DirectoryStore.create(out, StoreConfig(dim=profile.dim, rank=profile.rank, eps=DEFAULT_EPS))
    layout = Layout.draw(profile.dim, models, clusters, seed, structured=params is not None)
    writer = PackWriter(out / "pack", profile.dim, profile.rank, DEFAULT_EPS)

    def batches():
        for start in range(0, models, BATCH):
            count = min(BATCH, models - start)
            ids = [f"scale-{i:08d}" for i in range(start, start + count)]
            yield ids, generate_batch(profile, start, count, layout, seed, DEFAULT_EPS, params)
            print(f"\r{start + count}/{models} models", end="", file=sys.stderr, flush=True)

    writer.rewrite(batches())
    print(file=sys.stderr)
    (out / "scale.json").write_text(json.dumps({
        "models": models, "clusters": clusters, "seed": seed,
        "structure": "random" if params is None else "structured",
        "structure_params": None if params is None else asdict(params),
        "profile": asdict(profile)}, indent=1))
    del store
    return time.perf_counter() - started


def held_out_structure(factors: np.ndarray, means: np.ndarray, assignment: np.ndarray,
                       sizes: list[int]) -> dict[str, list[float] | float]:
    """What the fit matches, by the functions of modelverse.bench.structure: the median fraction
    kept by shared bases fitted on the first half of the models and applied to the second (what a
    basis keeps of a model it has not seen, as the profile's leave-one-out figure), and the mean
    energy fractions along the common, concept and own mean directions."""
    half = len(factors) // 2
    kept = kept_fractions(factors[half:], top_directions(direction_gram(factors[:half]), max(sizes)), sizes)
    concept_rows, concept_dirs = concept_pairs(means, groups_of_assignment(assignment))
    return {
        "kept": [float(np.median(kept[k])) for k in sizes],
        "common": float(direction_energy(factors, common_direction(means)).mean()),
        "concept": float(direction_energy(factors[concept_rows], concept_dirs).mean()),
        "mean": float(direction_energy(factors, unit_rows(means)).mean()),
    }


def fit_structure(profile: Profile, clusters: int, models: int = 1000, seed: int = 0,
                  rounds: int = 3, spectrum_evaluations: int = 40) -> tuple[StructureParams, dict]:
    """StructureParams whose collection (``models`` of them at the profile's dim, the same random
    numbers at every step) matches the profile's structure: the leave-one-out kept fractions at
    each k (absolute k: the number of shared directions does not grow with the feature dimension)
    and the mean energy fractions along the common, concept and mean directions (absolute too).

    Each round fits the spectrum (decay, cutoff) to the kept fractions by Nelder-Mead on their
    logs, then moves each gain by sqrt(target / fitted) of its energy fraction a few times (the
    fraction grows about as the gain squared). Returns the parameters and the fitted collection's
    figures beside the targets."""
    from scipy.optimize import minimize

    target = profile.structure
    if target is None:
        raise ValueError("the profile has no measured structure: measure it again (--calibrate) or use --structure random")
    sizes = [k for k in target.sizes if k < profile.dim]
    goal = dict(zip(target.sizes, target.kept_loo_median))
    # The generated collection's own rotation, common and concept directions (the alignments
    # depend on where those few vectors fall in the spectrum, not only on the parameters), and
    # the same numbers at every step. Everything is expressed in R's frame, so that no step rotates.
    layout = Layout.draw(profile.dim, models, clusters, seed, structured=True)
    frame = layout.rotation
    drawn = draw(profile, 0, models, layout, seed)
    layout = Layout(layout.assignment, layout.concepts @ frame, layout.common @ frame, None)
    draws = replace(drawn, means=drawn.means @ frame, directions=drawn.directions @ frame, concepts=drawn.concepts @ frame)
    aligned = {"common": target.common.energy, "mean": target.mean.energy}
    if target.concept is not None:
        aligned["concept"] = target.concept.energy
    evaluations = 0

    def figures(params: StructureParams) -> dict:
        nonlocal evaluations
        evaluations += 1
        factors = covariance_directions(draws, layout, params) * np.sqrt(draws.eigenvalues)[:, None, :]
        return held_out_structure(factors, draws.means, layout.assignment, sizes)

    def kept_loss(got: dict) -> float:
        return float(sum((g - goal[k]) ** 2 for k, g in zip(sizes, got["kept"])))

    params = StructureParams(decay=0.7, cutoff=40.0)
    for _ in range(rounds):
        def loss(x: np.ndarray, gains: StructureParams = params) -> float:
            return kept_loss(figures(replace(gains, decay=float(np.exp(x[0])), cutoff=float(np.exp(x[1])))))

        x0 = np.log([params.decay, params.cutoff])
        # An explicit first simplex: scipy's default steps 5 % of each coordinate, nothing at log 1 = 0.
        simplex = np.stack([x0, x0 + [0.4, 0.0], x0 + [0.0, 0.4]])
        result = minimize(loss, x0, method="Nelder-Mead",
                          options={"maxfev": spectrum_evaluations, "initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-7})
        params = replace(params, decay=float(np.exp(result.x[0])), cutoff=float(np.exp(result.x[1])))
        for _ in range(3):
            got = figures(params)
            params = replace(params, **{f"{name}_gain": getattr(params, f"{name}_gain") * float(np.sqrt(value / got[name]))
                                        for name, value in aligned.items()})
    got = figures(params)
    report = {"sizes": sizes, "kept_held_out": got["kept"], "kept_target": [goal[k] for k in sizes],
              "alignment": {name: {"fitted": got[name], "target": value} for name, value in aligned.items()},
              "evaluations": evaluations, "kept_loss": kept_loss(got), "models": models}
    return params, report


def measure_scale_store(out: Path, models: int | None = None, loo_models: int = 200) -> Structure:
    """The structure of a store written by write_scale_store (its first ``models`` rows; all when
    None), with the clusters of its layout (scale.json) as the tags."""
    meta = json.loads((out / "scale.json").read_text())
    collection = DirectoryStore.open(out).collection()
    count = len(collection) if models is None else min(models, len(collection))
    # The assignment is drawn before the structured mode's rotation: the same in both modes.
    layout = Layout.draw(int(collection.dim), int(meta["models"]), int(meta["clusters"]), int(meta["seed"]), structured=False)
    return measure_structure(collection.compressed.factor[:count], np.asarray(collection.means[:count], dtype=np.float64),
                             groups_of_assignment(layout.assignment[:count]), loo_models=loo_models)


def structure_rows(generated: Structure, profile: Structure) -> list[tuple[str, float, float]]:
    """(measure, generated, profile) for a side-by-side table: kept fractions in and out of sample
    at each k both share, and the alignment energies (with the random expectation 1/d)."""
    rows = []
    for k in [k for k in generated.sizes if k in profile.sizes]:
        i, j = generated.sizes.index(k), profile.sizes.index(k)
        rows.append((f"kept by {k} shared directions (median)", generated.kept_median[i], profile.kept_median[j]))
        rows.append(("  the same, basis fitted without the model", generated.kept_loo_median[i], profile.kept_loo_median[j]))
    for name in ("mean", "concept", "common"):
        mine, theirs = getattr(generated, name), getattr(profile, name)
        if mine is not None and theirs is not None:
            rows.append((f"energy along the {name} direction", mine.energy, theirs.energy))
            rows.append(("  its part inside span(W)", mine.capture, theirs.capture))
    rows.append(("random: energy along a direction (1/d)", generated.random_energy, profile.random_energy))
    rows.append(("random: part inside span(W) (r/d)", generated.random_capture, profile.random_capture))
    return rows
