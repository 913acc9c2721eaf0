"""The adaptive sample count's criterion (fleet.adaptive) and its replay over a feature cache.

Synthetic chunks check the rule itself; one cheap zoo model through the real embedded fleet
checks that the replay over the quality benchmark's cache stops where the
fleet stops, with the fleet's statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelverse.core.moments import PartialMoments, l2_normalize_rows
from modelverse.fleet.adaptive import CRITERION_TAU, replay, score_standard_error, typical_query_variance
from modelverse.fleet.plan import SamplePlan


DIM = 16


def unit_chunks(spread: float, chunks: int, size: int = 100, seed: int = 0) -> list[PartialMoments]:
    """Chunks of L2-normalised features around one direction; ``spread`` sets their variance."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(DIM)
    centre[0] = 1.0
    return [
        PartialMoments.from_samples(l2_normalize_rows(centre + spread * rng.standard_normal((size, DIM))))
        for _ in range(chunks)
    ]


def plan(tolerance: float, ceiling: int = 2000, floor: int = 300, rounds: int = 200) -> SamplePlan:
    return SamplePlan(max_samples=ceiling, chunk_size=100, min_samples=floor, round_samples=rounds, tolerance=tolerance)


def test_typical_query_variance_is_the_mean_over_the_models_own_samples() -> None:
    rng = np.random.default_rng(1)
    x = l2_normalize_rows(rng.standard_normal((4000, DIM)) + 2.0)
    moments = PartialMoments.from_samples(x)
    covariance = moments.covariance()
    per_sample = np.einsum("ni,ij,nj->n", x, covariance, x)
    assert typical_query_variance(moments) == pytest.approx(per_sample.mean(), rel=1e-3)


def test_standard_error_matches_the_spread_of_scores_over_independent_runs() -> None:
    """The Gaussian formula against 300 independent runs of 400 samples (tau = 100)."""
    rng = np.random.default_rng(2)
    scale = np.linspace(0.005, 0.03, DIM)
    q = np.ones(DIM) / np.sqrt(DIM)
    mean = np.full(DIM, 0.2)
    scores = []
    for _ in range(300):
        m = PartialMoments.from_samples(mean + scale * rng.standard_normal((400, DIM)))
        scores.append(100 * q @ m.mean + 0.5 * 100**2 * q @ m.covariance() @ q)
    truth = PartialMoments(400, mean, np.diag(scale**2) * 399)  # the population's moments
    predicted = score_standard_error(truth, variance=float(q @ np.diag(scale**2) @ q))
    assert np.std(scores) == pytest.approx(predicted, rel=0.15)


def test_a_low_variance_model_stops_at_the_floor() -> None:
    result = replay(plan(tolerance=1.0), unit_chunks(0.002, 20))
    assert result.converged and result.samples == 300  # the first check, which is at the floor
    assert [r.samples for r in result.rounds] == [300]


def test_a_high_variance_model_keeps_sampling_to_the_ceiling() -> None:
    result = replay(plan(tolerance=1.0), unit_chunks(0.3, 20))
    assert not result.converged and result.samples == 2000
    assert all(r.standard_error > 1.0 for r in result.rounds)
    assert result.rounds[-1].samples == 1900  # the ceiling's round is never checked, only summarised


def test_a_model_stops_at_the_first_round_within_tolerance_and_that_is_a_prefix_of_a_fixed_run() -> None:
    chunks = unit_chunks(0.05, 20)
    series = replay(plan(tolerance=1e-9), chunks).rounds
    errors = [r.standard_error for r in series]
    assert errors[3] < min(errors[:3]), errors
    tolerance = (min(errors[:3]) + errors[3]) / 2
    result = replay(plan(tolerance), chunks)
    assert result.converged and result.samples == series[3].samples == 900
    assert all(e > tolerance for e in errors[:3])
    fixed = replay(SamplePlan(max_samples=900, chunk_size=100), chunks)
    assert np.array_equal(result.moments.mean, fixed.moments.mean)
    assert np.array_equal(result.moments.m2, fixed.moments.m2)


def test_the_floor_holds_even_when_the_first_chunks_agree() -> None:
    low = unit_chunks(0.002, 20)
    assert replay(plan(tolerance=1.0, floor=1200), low).samples == 1200
    assert replay(plan(tolerance=1.0, floor=2000), low).samples == 2000  # floor = ceiling: a fixed run


@pytest.mark.slow
def test_replay_over_the_feature_cache_stops_where_the_embedded_fleet_stops(tmp_path: Path) -> None:
    """digits-vae-one (8 px, cheap) with the bundled encoder, chunks of 8: the quality cache's
    chunks replayed by bench_adaptive against index_embedded on the same model and plan."""
    from modelverse.encoders import encoder_id, load_encoder
    from modelverse.evaluation.sample_features import FeatureCache, fill
    from modelverse.fleet.embedded import index_embedded
    from modelverse.fleet.requests import bundled_requests
    from modelverse.store.directory import DirectoryStore

    model, chunk, ceiling = "digits-vae-one", 8, 64
    cache = FeatureCache(tmp_path / "cache", encoder_id(load_encoder("bundled")), "fp32", chunk)
    fill(cache, [model], [ceiling], encoder_spec="bundled", processes=1, report=lambda line: None)

    def adaptive(tolerance: float) -> SamplePlan:
        return SamplePlan(max_samples=ceiling, chunk_size=chunk, min_samples=16, round_samples=8, tolerance=tolerance)

    # Choose a tolerance that stops strictly between floor and ceiling: the first round whose
    # standard error is below every earlier round's.
    errors = [r.standard_error for r in cache.replay_adaptive(model, adaptive(1e-9)).rounds]
    stop = next((i for i in range(1, len(errors)) if errors[i] < min(errors[:i])), None)
    assert stop is not None, f"no round improved on the earlier ones: {errors}"
    tolerance = errors[stop] * (1 + 1e-6)  # well above the float32 rounding of the cached features
    expected = cache.replay_adaptive(model, adaptive(tolerance))
    assert expected.converged and 16 < expected.samples < ceiling

    [request] = [r for r in bundled_requests() if r.model_id == model]
    [record] = index_embedded(tmp_path / "store", [request], "bundled", adaptive(tolerance), torch_threads=1)
    assert record.samples_used == expected.samples
    assert record.converged_change == pytest.approx(expected.rounds[-1].standard_error, rel=1e-5)
    stored = DirectoryStore.open(tmp_path / "store").get_stats(model)
    # The cache keeps float32 features, the fleet reduces float64 ones: equal to their rounding.
    np.testing.assert_allclose(stored.mean, expected.moments.mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(stored.covariance, expected.moments.covariance(), rtol=0, atol=1e-6)


def test_the_criterion_at_the_papers_tau_is_conservative_for_a_lower_store_tau() -> None:
    """Stores score at their encoder's temperature (the bundled one's is 23.2); the criterion
    runs at 100, and a model it passes has a smaller standard error at every lower tau."""
    moments = unit_chunks(0.3, 4)[0]
    at_criterion = score_standard_error(moments)
    assert at_criterion == score_standard_error(moments, CRITERION_TAU)
    assert all(score_standard_error(moments, tau) < at_criterion for tau in (1.0, 23.2, 99.0))
