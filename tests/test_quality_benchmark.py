"""The quality benchmark end to end on a slice of the zoo: its feature cache holds the fleet's
samples, its numbers match an independent computation, and it rewrites only its own sections."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelverse.evaluation.sample_features import FeatureCache, plan_tasks
from modelverse.fleet.embedded import index_embedded
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.requests import bundled_requests
from modelverse.store.directory import DirectoryStore
from modelverse.zoo import bundled_manifest

# Slow tier: runs tools/bench_quality.py (zoo generators and the encoder) as a process, twice.
pytestmark = pytest.mark.slow

BENCH_QUALITY = Path(__file__).resolve().parents[1] / "tools" / "bench_quality.py"

# Three models of unrelated content, cheap to sample: 8 px digits, 28 px VAE bags, diffusion.
MODELS = ("digits-vae-one", "fashion-vae-bag", "animal-diffusion-elephant")
CHUNK = 8
SAMPLES = (8, 16)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("quality")
    benchmarks = root / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nhand-written text that must survive\n")
    argv = [
        "--samples", ",".join(map(str, SAMPLES)), "--chunk-size", str(CHUNK), "--models", ",".join(MODELS),
        "--cache", str(root / "cache"), "--precision", "fp32", "--processes", "1", "--per-group", "3",
        "--json", str(root / "quality.json"), "--tables", str(root / "QUALITY.md"), "--benchmarks", str(benchmarks),
    ]
    for _ in range(2):  # the second run finds every chunk cached and rewrites the sections
        result = subprocess.run([sys.executable, str(BENCH_QUALITY), *argv], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    return {"root": root, "report": json.loads((root / "quality.json").read_text()), "benchmarks": benchmarks}


def _cache(run: dict[str, object]) -> FeatureCache:
    report = run["report"]
    return FeatureCache(Path(run["root"]) / "cache", report["encoder"], "fp32", CHUNK)  # type: ignore[index]


def test_cached_samples_are_the_fleets_samples(run: dict[str, object], tmp_path: Path) -> None:
    """The first N cached features give the statistics `modelverse index` stores for N samples.

    The same images and the same float32 network, but not always the same last bit: oneDNN's
    kernels round differently from one process to another (1-2 ulp of a feature), so the bound
    is float32's, far below what another sample would change (~1e-2)."""
    request = next(r for r in bundled_requests() if r.model_id == "digits-vae-one")
    records = index_embedded(tmp_path / "store", [request], "bundled", SamplePlan(max_samples=16, chunk_size=CHUNK),
                             torch_threads=1)
    assert records[0].state.value == "done", records[0].error
    opened = DirectoryStore.open(tmp_path / "store")
    assert opened.config.tau == pytest.approx(run["report"]["tau"])  # type: ignore[index]  # the encoder's own
    stored = opened.get_stats("digits-vae-one")
    cached = _cache(run).moments("digits-vae-one", 16)
    np.testing.assert_allclose(cached.mean, stored.mean, rtol=0, atol=1e-7)
    np.testing.assert_allclose(cached.covariance(), stored.covariance, rtol=0, atol=1e-7)
    assert plan_tasks(_cache(run), MODELS, SAMPLES) == []


def test_every_modality_and_method_is_measured(run: dict[str, object]) -> None:
    rows = run["report"]["rows"]  # type: ignore[index]
    found = {(r["modality"], r["scorer"]) for r in rows if r["queries"] == "all"}
    for modality in ("text", "image", "sketch", "image_set"):
        for method in ("monte_carlo", "first_moment", "gaussian (full)", "gaussian (compressed)", "mgf (full)",
                       "mgf (compressed)"):
            assert (modality, method) in found
    assert ("image_set", "frechet (full)") in found and ("text", "metadata (TF-IDF)") in found
    for row in rows:
        assert row["samples"] in SAMPLES
        for metric in ("top1", "top5", "top10", "map5", "map10", "map_all"):
            assert 0.0 <= row[metric] <= 1.0
        assert row["top1"] <= row["top5"] <= row["top10"]


def test_first_moment_text_accuracy_matches_an_independent_count(run: dict[str, object]) -> None:
    """Recount top-1 of the text queries with plain numpy from the cached features."""
    from modelverse.encoders import load_encoder

    cache = _cache(run)
    means = np.stack([cache.features(m, 16).astype(np.float64).mean(axis=0) for m in MODELS])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    entries = {e.id: e for e in bundled_manifest()}
    texts = load_encoder("bundled").encode_texts([entries[m].query_text for m in MODELS]).astype(np.float64)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    expected = float(np.mean(np.argmax(texts @ means.T, axis=1) == np.arange(len(MODELS))))
    row = next(
        r for r in run["report"]["rows"]  # type: ignore[index]
        if r["modality"] == "text" and r["scorer"] == "first_moment" and r["queries"] == "all" and r["samples"] == 16
    )
    assert row["top1"] == pytest.approx(expected)


def test_held_out_images_find_their_model_above_chance(run: dict[str, object]) -> None:
    row = next(
        r for r in run["report"]["rows"]  # type: ignore[index]
        if r["modality"] == "image" and r["scorer"] == "gaussian (full)" and r["queries"] == "all" and r["samples"] == 16
    )
    assert row["count"] == 9 and row["top1"] > 1 / len(MODELS)


def test_generated_sections_replace_themselves(run: dict[str, object]) -> None:
    text = Path(run["benchmarks"]).read_text()
    assert "hand-written text that must survive" in text
    assert text.count("<!-- quality-headline:begin -->") == 1 and text.count("<!-- quality-headline:end -->") == 1
    assert "| image (9) | gaussian (full) |" in text
    tables = (Path(run["root"]) / "QUALITY.md").read_text()
    assert tables.count("<!-- quality-tables:begin -->") == 1 and "### Model queries" not in tables


def test_sample_counts_must_be_whole_chunks(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "enc:0", "fp32", 500)
    with pytest.raises(ValueError, match="whole number"):
        cache.chunks_for(750)
    with pytest.raises(FileNotFoundError, match="fill the cache first"):
        cache.features("digits-vae-one", 500)


def test_scores_use_the_encoders_own_temperature_and_compare_with_the_papers(run: dict[str, object]) -> None:
    from modelverse.encoders import load_encoder

    report = run["report"]
    temperature = load_encoder("bundled").temperature
    assert temperature is not None and 1.0 < temperature < 100.0  # trained here, not CLIP's 100
    assert report["tau"] == pytest.approx(temperature)  # type: ignore[index]
    compared = {(r["modality"], r["scorer"], round(r["tau"], 3)) for r in report["temperature_rows"]}  # type: ignore[index]
    for tau in (round(temperature, 3), 100.0):
        assert ("text", "mgf (full)", tau) in compared and ("image", "monte_carlo", tau) in compared
    assert "### The temperature tau" in (Path(run["root"]) / "QUALITY.md").read_text()
