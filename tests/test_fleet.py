"""The fleet's work functions in embedded mode: seeds, plans, exactness, adaptive stopping,
failures. Real torch models (fleet_support), no Redis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fleet_support import ENCODER_SPEC, conv_encoder, conv_generator
from modelverse.core.stats import stats_from_features
from modelverse.fleet.embedded import index_embedded, run_job
from modelverse.fleet.job_records import JobRecord, JobSpec, JobState
from modelverse.fleet.plan import SamplePlan, chunk_seed
from modelverse.fleet.requests import ManifestError, ModelRequest, read_manifest
from modelverse.fleet.resolve import Runtime, SpecError, load_generator
from modelverse.fleet.fleet_state import LocalState, partial_name
from modelverse.fleet.work import run_chunk
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata


def request(model_id: str, generator: str) -> ModelRequest:
    return ModelRequest(ModelMetadata(id=model_id, tags=("test",)), generator)


def good(model_id: str, seed: int) -> ModelRequest:
    return request(model_id, f"py:fleet_support:conv_generator?seed={seed}")


def test_chunk_seeds_depend_on_model_version_and_chunk_only() -> None:
    seeds = {chunk_seed(m, v, c) for m in ("a", "b") for v in (1, 2) for c in range(50)}
    assert len(seeds) == 200
    assert chunk_seed("a", 1, 3) == chunk_seed("a", 1, 3)
    assert all(0 <= s < 2**63 for s in seeds)


def test_plan_rounds_cover_chunks_once_within_floor_and_ceiling() -> None:
    plan = SamplePlan(max_samples=1050, chunk_size=100, min_samples=250, round_samples=200, tolerance=0.1)
    assert plan.total_chunks == 11 and plan.chunk_samples(10) == 50
    rounds, index = [], 0
    while True:
        rounds.append(list(plan.round_chunks(index)))
        if plan.is_last_round(index):
            break
        index += 1
    assert rounds == [[0, 1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    assert plan.samples_in_chunks(plan.total_chunks) == 1050
    fixed = SamplePlan(1050, 100)
    assert list(fixed.round_chunks(0)) == list(range(11)) and fixed.is_last_round(0)
    with pytest.raises(ValueError, match="floor"):
        SamplePlan(100, 10, min_samples=500, round_samples=10, tolerance=0.1)
    with pytest.raises(ValueError, match="chunk size"):
        SamplePlan(100, 0)


def test_embedded_statistics_equal_direct_computation(tmp_path: Path) -> None:
    plan = SamplePlan(max_samples=250, chunk_size=100)
    [record] = index_embedded(tmp_path, [good("m", 7)], ENCODER_SPEC, plan, torch_threads=1)
    assert record.state is JobState.DONE and record.samples_used == 250

    generator, encoder = conv_generator(7), conv_encoder()
    features = np.concatenate([
        encoder.encode_pixels(generator.sample(n, chunk_seed("m", 1, i))) for i, n in enumerate((100, 100, 50))
    ])
    direct = stats_from_features(features, rank=16)
    stored = DirectoryStore.open(tmp_path).get_stats("m")
    np.testing.assert_allclose(stored.mean, direct.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(stored.covariance, direct.covariance, rtol=0, atol=1e-6)  # stored as float32
    assert stored.encoder.startswith("test-conv-encoder:")


def test_reindexing_bumps_the_version_and_changes_the_seeds(tmp_path: Path) -> None:
    plan = SamplePlan(max_samples=200, chunk_size=100)
    first = index_embedded(tmp_path, [good("m", 1)], ENCODER_SPEC, plan, torch_threads=1)[0]
    second = index_embedded(tmp_path, [good("m", 1)], ENCODER_SPEC, plan, torch_threads=1)[0]
    assert (first.spec.stats_version, second.spec.stats_version) == (1, 2)
    store = DirectoryStore.open(tmp_path)
    assert store.get("m").stats_version == 2
    assert store.ids() == ["m"]


def test_adaptive_run_stops_early_and_equals_a_fixed_run_of_as_many_chunks(tmp_path: Path) -> None:
    # The toy features vary little (a typical query's score has a standard error of 0.004 nats
    # at 300 samples, 0.002 at 900), so a small tolerance makes the job go past its floor.
    adaptive = SamplePlan(max_samples=3000, chunk_size=100, min_samples=300, round_samples=200, tolerance=0.0025)
    [record] = index_embedded(tmp_path / "a", [good("m", 3)], ENCODER_SPEC, adaptive, torch_threads=1)
    assert record.state is JobState.DONE
    assert 300 < record.samples_used < 3000
    assert record.converged_change is not None and record.converged_change <= 0.0025

    fixed = SamplePlan(max_samples=record.samples_used, chunk_size=100)
    index_embedded(tmp_path / "f", [good("m", 3)], ENCODER_SPEC, fixed, torch_threads=1)
    a, f = DirectoryStore.open(tmp_path / "a").get_stats("m"), DirectoryStore.open(tmp_path / "f").get_stats("m")
    assert np.array_equal(a.mean, f.mean) and np.array_equal(a.covariance, f.covariance)


def test_adaptive_run_never_passes_the_ceiling(tmp_path: Path) -> None:
    plan = SamplePlan(max_samples=500, chunk_size=100, min_samples=200, round_samples=100, tolerance=1e-9)
    [record] = index_embedded(tmp_path, [good("m", 4)], ENCODER_SPEC, plan, torch_threads=1)
    assert record.state is JobState.DONE and record.samples_used == 500


def test_broken_generators_fail_their_job_with_the_reason_and_others_still_index(tmp_path: Path) -> None:
    plan = SamplePlan(max_samples=200, chunk_size=100)
    records = index_embedded(
        tmp_path,
        [
            request("raises", "py:fleet_support:raising_generator"),
            request("shape", "py:fleet_support:wrong_shape_generator"),
            request("missing", "py:fleet_support:no_such_factory"),
            good("fine", 2),
        ],
        ENCODER_SPEC,
        plan,
        torch_threads=1,
    )
    by_id = {r.spec.model_id: r for r in records}
    assert by_id["raises"].state is JobState.FAILED
    assert "ran out of latent codes" in by_id["raises"].error
    assert by_id["shape"].state is JobState.FAILED and "(200, 8, 8, 3)" not in by_id["shape"].error
    assert "shape (100, 8, 8, 3), expected (100, 16, 16, 3)" in by_id["shape"].error
    assert "cannot import no_such_factory" in by_id["missing"].error
    assert by_id["fine"].state is JobState.DONE
    assert DirectoryStore.open(tmp_path).ids() == ["fine"]


def test_a_chunk_delivered_twice_is_computed_and_counted_once(tmp_path: Path) -> None:
    state = LocalState(str(tmp_path))
    spec = JobSpec.new(ModelMetadata(id="m"), "py:fleet_support:conv_generator?seed=5", ENCODER_SPEC, 1,
                       SamplePlan(300, 100), 16, 1e-3)
    state.create_job(JobRecord(spec))
    runtime = Runtime(torch_threads=1)
    first = run_chunk(state, spec, 1, runtime)
    stored = state.get_partial(partial_name("m", 1, 1))
    second = run_chunk(state, spec, 1, runtime)
    assert first == second == partial_name("m", 1, 1)
    assert state.get_partial(first) is stored  # not recomputed, not replaced
    assert state.get_job(spec.job_id).chunks_done == frozenset({1})  # type: ignore[union-attr]


def test_run_job_reports_progress_per_chunk(tmp_path: Path) -> None:
    state = LocalState(str(tmp_path))
    spec = JobSpec.new(ModelMetadata(id="m"), "py:fleet_support:conv_generator?seed=5", ENCODER_SPEC, 1,
                       SamplePlan(300, 100), 16, 1e-3)
    seen: list[int] = []
    record = run_job(state, spec, Runtime(torch_threads=1), lambda r: seen.append(len(r.chunks_done)))
    assert seen == [1, 2, 3, 3] and record.state is JobState.DONE
    assert record.samples_per_second() is not None and record.samples_done == 300


def test_specs_and_manifests_fail_with_readable_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="a generator spec starts with zoo:, diffusers:, .* or py:"):
        load_generator("stylegan2-ffhq")
    with pytest.raises(SpecError, match="does not implement the Generator protocol"):
        load_generator("py:fleet_support:conv_encoder")
    manifest = tmp_path / "models.json"
    manifest.write_text(json.dumps({"encoder": ENCODER_SPEC, "models": [
        {"id": "a", "generator": "py:fleet_support:conv_generator?seed=1", "tags": ["Face"]}]}))
    requests, encoder = read_manifest(manifest)
    assert encoder == ENCODER_SPEC and requests[0].metadata.tags == ("face",)
    manifest.write_text(json.dumps([{"id": "a"}]))
    with pytest.raises(ManifestError, match="has no generator spec"):
        read_manifest(manifest)
    manifest.write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(manifest)


def test_bundled_zoo_models_index_through_the_fleet_functions(tmp_path: Path) -> None:
    pytest.importorskip("modelverse.zoo", reason="the bundled zoo is not installed")
    from modelverse.fleet.requests import bundled_requests

    requests = bundled_requests()
    assert len(requests) == len({r.model_id for r in requests}) > 0
    assert all(r.generator == f"zoo:{r.model_id}" for r in requests)
    chosen = [r for r in requests if r.model_id in ("digits-vae-zero", "digits-vae-one")]
    records = index_embedded(tmp_path, chosen, ENCODER_SPEC, SamplePlan(200, 100), torch_threads=1)
    assert [r.state for r in records] == [JobState.DONE, JobState.DONE], [r.error for r in records]
    store = DirectoryStore.open(tmp_path)
    assert store.get("digits-vae-zero").metadata == chosen[0].metadata


def test_index_here_indexes_a_manifest_and_reports_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from modelverse.cli import index as index_cli

    manifest = tmp_path / "models.json"
    manifest.write_text(json.dumps({"encoder": ENCODER_SPEC, "models": [
        {"id": "ok", "generator": "py:fleet_support:conv_generator?seed=1"},
        {"id": "bad", "generator": "py:fleet_support:raising_generator"},
    ]}))
    parser = argparse.ArgumentParser()
    index_cli.add_fleet_arguments(parser)
    parser.add_argument("--manifest")
    parser.add_argument("--store")
    args = parser.parse_args(["--manifest", str(manifest), "--store", str(tmp_path / "s"), "--samples", "400",
                              "--chunk-size", "100", "--no-adaptive"])
    assert index_cli.run_index(args) == 1
    out, err = capsys.readouterr()
    assert "[1/2] ok: 400 samples, stats version 1" in out and "indexed 1 of 2 model(s)" in out
    assert "bad failed: chunk 0 of bad: RuntimeError: the sampler ran out of latent codes" in err
    assert DirectoryStore.open(tmp_path / "s").ids() == ["ok"]


def test_jobs_without_a_reachable_redis_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    from modelverse.cli.main import main
    from modelverse.fleet.local_fleet import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["jobs", "--broker", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"modelverse jobs: error: cannot reach Redis at {url}") and err.count("\n") == 1


def test_statistics_of_another_encoder_fail_the_job_instead_of_mixing_feature_spaces(tmp_path: Path) -> None:
    plan = SamplePlan(max_samples=200, chunk_size=100)
    index_embedded(tmp_path, [good("a", 1)], ENCODER_SPEC, plan, torch_threads=1)
    other = "py:fleet_support:conv_encoder?seed=1"  # same architecture, other weights
    [record] = index_embedded(tmp_path, [good("b", 2)], other, plan, torch_threads=1)
    assert record.state is JobState.FAILED and "publishing b:" in record.error and "encoder" in record.error
    assert DirectoryStore.open(tmp_path).ids() == ["a"]
