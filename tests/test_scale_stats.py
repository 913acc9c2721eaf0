"""The synthetic scale generator (modelverse.bench.scale_stats), measured by modelverse.bench.structure:
the structured mode reproduces the zoo profile's cross-model structure and the random mode does not
have one; the fit recovers a known collection's structure; draws are a function of the seed; the
store it writes opens and searches with the exact reference."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modelverse.bench.scale_stats import (
    Layout,
    Profile,
    StructureParams,
    covariance_directions,
    draw,
    fit_structure,
    generate_batch,
    load_profile,
    measure_scale_store,
    write_scale_store,
)
from modelverse.bench.structure import groups_of_assignment, measure_structure
from modelverse.core.reference import ExactSearch
from modelverse.core.types import Method, QueryPart
from modelverse.store.directory import DirectoryStore

ZOO_PROFILE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "zoo-profile.json"
EPS = 1e-3


def collection(profile: Profile, models: int, clusters: int, seed: int, params: StructureParams | None):
    layout = Layout.draw(profile.dim, models, clusters, seed, structured=params is not None)
    batch = generate_batch(profile, 0, models, layout, seed, EPS, params)
    return batch, layout.assignment


@pytest.fixture(scope="module")
def zoo() -> Profile:
    return load_profile(ZOO_PROFILE)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["structured", "random"])
def test_2000_models_at_d512_have_the_profiles_structure_or_none(zoo: Profile, mode: str) -> None:
    assert zoo.structure is not None and zoo.fitted is not None and zoo.dim == 512
    params = zoo.fitted.params if mode == "structured" else None
    # Seed 0: the layout (rotation, common and concept directions) the parameters were fitted in.
    batch, assignment = collection(zoo, 2000, zoo.fitted.clusters, 0, params)
    got = measure_structure(batch["factor"], batch["means"].astype(np.float64), groups_of_assignment(assignment),
                            loo_models=40)
    target = dict(zip(zoo.structure.sizes, zoo.structure.kept_loo_median))
    for k in (32, 64):
        i = got.sizes.index(k)
        if mode == "structured":
            # The fit matches what a basis keeps of models it was not fitted on (the zoo's
            # leave-one-out figure); 2,000 models are enough for in and out of sample to agree.
            assert got.kept_loo_median[i] == pytest.approx(target[k], abs=0.05)
            assert got.kept_median[i] == pytest.approx(target[k], abs=0.05)
        else:
            # Random spans: about k/d out of sample (+25 % in sample from fitting the basis on
            # 32,000 columns in 512 dimensions).
            assert k / 512 * 0.8 < got.kept_loo_median[i] < k / 512 * 1.25
            assert got.kept_median[i] < k / 512 * 1.5
    if mode == "structured":
        for name in ("mean", "concept", "common"):
            assert getattr(got, name).energy == pytest.approx(getattr(zoo.structure, name).energy, rel=0.3)
    else:
        assert got.mean.energy == pytest.approx(1 / 512, rel=0.2)


def small_profile(zoo: Profile) -> Profile:
    return replace(zoo, dim=64, rank=4, spectrum=[1.0, 0.6, 0.35, 0.2], structure=None, fitted=None)


def test_the_fit_recovers_a_known_collections_structure(zoo: Profile) -> None:
    profile = small_profile(zoo)
    truth = StructureParams(decay=0.8, cutoff=6.0, common_gain=2.0, concept_gain=3.0, mean_gain=1.5)
    batch, assignment = collection(profile, 1500, 20, 11, truth)
    measured = measure_structure(batch["factor"], batch["means"].astype(np.float64), groups_of_assignment(assignment),
                                 sizes=(4, 8, 16, 32), loo_models=60)
    params, report = fit_structure(replace(profile, structure=measured), clusters=20, models=800, seed=2)
    np.testing.assert_allclose(report["kept_held_out"], report["kept_target"], atol=0.03)
    for name, figures in report["alignment"].items():
        assert figures["fitted"] == pytest.approx(figures["target"], rel=0.15), name
    # And a fresh collection drawn with the fitted parameters measures the same.
    again, assignment = collection(profile, 1500, 20, 12, params)
    remeasured = measure_structure(again["factor"], again["means"].astype(np.float64), groups_of_assignment(assignment),
                                   sizes=(4, 8, 16, 32), loo_models=60)
    np.testing.assert_allclose(remeasured.kept_loo_median, measured.kept_loo_median, atol=0.05)


def test_directions_are_orthonormal_and_draws_a_function_of_the_seed(zoo: Profile) -> None:
    profile = small_profile(zoo)
    params = StructureParams(decay=1.0, cutoff=8.0, common_gain=2.0, concept_gain=2.0, mean_gain=2.0)
    layout = Layout.draw(profile.dim, 300, 10, 3, structured=True)
    basis = covariance_directions(draw(profile, 100, 200, layout, 3), layout, params)
    np.testing.assert_allclose(np.einsum("ndr,nds->nrs", basis, basis), np.broadcast_to(np.eye(4), (200, 4, 4)), atol=1e-12)
    one = generate_batch(profile, 100, 200, layout, 3, EPS, params)
    two = generate_batch(profile, 100, 200, Layout.draw(profile.dim, 300, 10, 3, structured=True), 3, EPS, params)
    other = generate_batch(profile, 100, 200, Layout.draw(profile.dim, 300, 10, 4, structured=True), 4, EPS, params)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    assert not np.array_equal(one["factor"], other["factor"])
    # The stored factor keeps orthogonal columns up to float16 rounding, largest first.
    w = one["factor"].astype(np.float64)
    gram = np.einsum("ndr,nds->nrs", w, w)
    norms = np.sqrt(np.einsum("nrr->nr", gram))
    off = gram / norms[:, :, None] / norms[:, None, :] - np.eye(4)
    assert np.abs(off).max() < 5e-3
    assert (np.diff(norms, axis=1) <= 1e-3 * norms[:, :1]).all()


def test_the_written_store_opens_and_searches_with_the_exact_reference(tmp_path, zoo: Profile) -> None:
    profile = small_profile(zoo)
    params = StructureParams(decay=1.0, cutoff=8.0, common_gain=2.0, concept_gain=2.0, mean_gain=2.0)
    write_scale_store(tmp_path / "store", 500, profile, clusters=10, seed=1, params=params)
    store = DirectoryStore.open(tmp_path / "store")
    collection = store.collection()
    assert len(collection) == 500
    query = np.asarray(collection.means[7], dtype=np.float64)
    query /= np.linalg.norm(query)
    search = ExactSearch(collection, store.config.scoring)
    for method in (Method.FIRST_MOMENT, Method.GAUSSIAN, Method.MGF):
        hits = search.search([QueryPart(query)], method, 10)
        assert len(hits) == 10 and len({h.id for h in hits}) == 10
    assert search.search([QueryPart(query)], Method.FIRST_MOMENT, 1)[0].id == collection.ids[7]
    measured = measure_scale_store(tmp_path / "store", loo_models=20)
    assert measured.models == 500 and measured.dim == 64 and measured.concept is not None
