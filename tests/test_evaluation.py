"""The quality metrics against hand computations and scikit-learn, and the metadata baseline."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from modelverse.evaluation.metadata_baseline import MetadataSearch
from modelverse.evaluation.retrieval_metrics import average_precision, query_metrics, relevant_by_tags, top_k_hit


def test_average_precision_by_hand() -> None:
    ranking = ["a", "x", "b", "y", "c"]
    relevant = {"a", "b", "c"}
    # relevant at 1, 3, 5: precisions 1, 2/3, 3/5
    assert average_precision(ranking, relevant, None) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert average_precision(ranking, relevant, 3) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision(ranking, {"a"}, 5) == 1.0
    assert average_precision(["x", "a"], {"a"}, 1) == 0.0


def test_average_precision_over_everything_equals_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = [f"m{i}" for i in range(30)]
        relevant = set(rng.choice(ids, size=int(rng.integers(1, 10)), replace=False))
        ranking = list(rng.permutation(ids))
        labels = [model_id in relevant for model_id in ranking]
        scores = -np.arange(len(ranking), dtype=float)
        assert average_precision(ranking, relevant) == pytest.approx(average_precision_score(labels, scores))


def test_top_k_and_relevance_by_shared_content_tag() -> None:
    tags = {
        "gan-sneaker": frozenset({"sneaker", "clothing", "gan"}),
        "vae-sneaker": frozenset({"sneaker", "clothing", "vae"}),
        "gan-face": frozenset({"face", "gan"}),
    }
    relevant = relevant_by_tags({"gan-sneaker"}, tags, content_tags={"sneaker", "clothing", "face"})
    assert relevant == {"gan-sneaker", "vae-sneaker"}  # "gan" is a family, not content
    assert top_k_hit(["gan-face", "vae-sneaker"], {"vae-sneaker"}, 2)
    assert not top_k_hit(["gan-face", "vae-sneaker"], {"vae-sneaker"}, 1)
    metrics = query_metrics(["vae-sneaker", "gan-face", "gan-sneaker"], {"gan-sneaker"}, relevant)
    assert metrics["top1"] == 0.0 and metrics["top5"] == 1.0
    assert metrics["map_all"] == pytest.approx((1 + 2 / 3) / 2)


def test_metadata_baseline_ranks_by_words_in_name_and_description() -> None:
    search = MetadataSearch(
        ["faces", "shoes", "cats"],
        ["Faces GAN: photos of human faces", "Sneaker VAE: sneakers and shoes", "Cat faces: grayscale cats"],
    )
    assert search.rank("a photo of a sneaker")[0] == "shoes"
    assert search.rank("grayscale cats")[0] == "cats"
    assert search.rank("zebra")[:3] == ["cats", "faces", "shoes"]  # no shared word: id order
