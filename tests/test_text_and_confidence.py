"""Issue 17's core parts: the BM25 metadata index, rank fusion and the confidence of a hit."""

from __future__ import annotations

import numpy as np
import pytest

from modelverse.core.collection import Collection
from modelverse.core.confidence import (
    BackgroundModel,
    calibrated_confidence,
    confidence,
    logsumexp,
    mixture_evidence,
    reference_rows,
    z_scores,
)
from modelverse.core.fusion import (
    Fusion,
    Signal,
    Weights,
    fuse,
    metadata_ranking,
    ranks,
    reciprocal_rank_fusion,
    weighted_fusion,
)
from modelverse.core.params import ScoringParams
from modelverse.core.reference import ExactSearch
from modelverse.core.text_index import MetadataDocument, TextIndex
from modelverse.core.types import Method

DOCS = [
    MetadataDocument("fashion-vae-sneaker", "Sneaker VAE", "A VAE of sports shoes", ("shoe", "footwear"), "zalando"),
    MetadataDocument("fashion-vae-bag", "Bag VAE", "A VAE of handbags", ("bag", "accessory")),
    MetadataDocument("faces-gan", "Face GAN", "Portraits of people", ("human face",), "chien liu"),
]


def test_bm25_finds_stemmed_words_names_tags_and_creators() -> None:
    index = TextIndex(DOCS)
    assert list(index.top("running shoes", 3)[0]) == ["fashion-vae-sneaker"]  # "shoes" -> "shoe"
    assert list(index.top("handbag", 3)[0]) == ["fashion-vae-bag"]
    assert list(index.top("Chien Liu", 3)[0]) == ["faces-gan"]
    assert list(index.top("sneaker", 3)[0]) == ["fashion-vae-sneaker"]  # the model id's words too


def test_bm25_scores_nothing_for_unrelated_words_or_stop_words() -> None:
    index = TextIndex(DOCS)
    assert not index.scores("a mountain landscape").any()
    assert not index.scores("the of and").any()
    assert index.top("mountain", 5)[0].size == 0
    np.testing.assert_array_equal(index.scores("bag") > 0, index.ids == "fashion-vae-bag")


def test_an_empty_index_answers_empty() -> None:
    assert TextIndex([]).scores("bag").shape == (0,)


def test_ranks_are_one_based_with_ties_broken_by_id() -> None:
    ids = np.array(["b", "a", "c"])
    np.testing.assert_array_equal(ranks(np.array([1.0, 1.0, 3.0]), ids), [3, 2, 1])


def test_rrf_lets_a_text_match_overtake_and_ignores_unmatched_text() -> None:
    ids = np.array(["m0", "m1", "m2"])
    content = np.array([0.9, 0.8, 0.1])
    text = np.array([0.0, 5.0, 0.0])
    fused = reciprocal_rank_fusion([Signal(content, 1.0), Signal(text, 1.0, text > 0)], ids)
    assert ids[np.argmax(fused)] == "m1"  # second by content, first by text
    assert fused[1] == pytest.approx(1 / 62 + 1 / 61) and fused[0] == pytest.approx(1 / 61)  # m0 gets no text term
    unmatched = np.zeros(3)
    only_content = reciprocal_rank_fusion([Signal(content, 1.0), Signal(unmatched, 1.0, unmatched > 0)], ids)
    np.testing.assert_array_equal(np.argsort(-only_content), np.argsort(-content))


def test_weighted_fusion_moves_from_content_to_text_with_the_weights() -> None:
    ids = np.array(["m0", "m1", "m2"])
    content, bm25, dense = np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.0]), np.array([0.1, 0.2, 0.6])
    assert np.argmax(fuse(Fusion.WEIGHTED, ids, content, bm25, dense, Weights(0.8, 0.1, 0.1))) == 0
    assert np.argmax(fuse(Fusion.WEIGHTED, ids, content, bm25, dense, Weights(0.1, 0.8, 0.1))) == 1
    assert np.argmax(fuse(Fusion.WEIGHTED, ids, content, bm25, dense, Weights(0.1, 0.1, 0.8))) == 2
    # each score min-max scaled over the candidates: (1 - 0) * 0.5 + ... for m2
    np.testing.assert_allclose(weighted_fusion([Signal(content, 0.5), Signal(dense, 0.5)]),
                               [0.5 * 1 + 0.5 * 0.0, 0.5 * 0 + 0.5 * 0.2, 0.5 * 0.5 + 0.5 * 1.0])
    assert np.argmax(fuse(Fusion.RRF, ids, content, bm25, dense, Weights(1.0, 0.0, 3.0))) == 2
    for bad in ((1.0, -0.1, 0.0), (0.0, 0.0, 0.0), (np.nan, 1.0, 1.0)):
        with pytest.raises(ValueError, match="fusion weights"):
            Weights(*bad)


def test_a_metadata_ranking_uses_no_content_but_to_break_ties() -> None:
    ids = np.array(["a", "b", "c"])
    content = np.array([3.0, 2.0, 1.0])
    nothing = np.zeros(3)
    assert list(ids[np.argsort(-metadata_ranking(ids, content, nothing, nothing))]) == ["a", "b", "c"]
    assert ids[np.argmax(metadata_ranking(ids, content, np.array([0.0, 0.0, 2.0]), nothing))] == "c"
    assert ids[np.argmax(metadata_ranking(ids, content, nothing, np.array([0.1, 0.5, 0.2])))] == "b"


def test_reference_rows_are_a_fixed_sample() -> None:
    np.testing.assert_array_equal(reference_rows(10), np.arange(10))
    big = reference_rows(100_000)
    assert big.size == 256 and np.array_equal(big, reference_rows(100_000)) and np.all(np.diff(big) > 0)


def test_a_hit_that_stands_out_from_the_mixture_is_confident_and_a_typical_one_is_not() -> None:
    reference = np.random.default_rng(0).normal(10.0, 0.5, 256)
    mixture = (logsumexp(reference), reference.size)
    assert mixture[0] == pytest.approx(np.log(np.exp(reference).sum()))
    typical, outstanding = calibrated_confidence(mixture_evidence(np.array([10.0, 30.0]), *mixture))
    assert 0 < typical < 0.5 < outstanding < 1
    assert confidence(0.0, 0.0, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one reference"):
        mixture_evidence(np.zeros(1), 0.0, 0)
    z = z_scores(np.array([10.0, 30.0]), reference)  # the z-score, a measured alternative
    assert abs(z[0]) < 0.2 and z[1] > 8


def test_the_background_model_sits_in_the_middle_of_the_collection(small) -> None:
    collection: Collection = small.collection
    params = ScoringParams(tau=10.0, eps=1e-3)
    background = BackgroundModel.of(collection, params.eps)
    centre = np.asarray(collection.means, dtype=np.float64).mean(axis=0)
    np.testing.assert_allclose(background.mean[0], centre)
    q = centre / np.linalg.norm(centre)
    scores = ExactSearch(collection, params).score_vector(q, Method.FIRST_MOMENT)
    assert background.score(q, Method.FIRST_MOMENT, params) >= scores.max() - 1e-9  # the mean's own direction
    assert np.isfinite(background.score(q, Method.GAUSSIAN, params))
    with pytest.raises(ValueError, match="no background score"):
        background.score(q, Method.FRECHET, params)


@pytest.mark.slow  # the evaluation package imports the zoo (torch): seconds before the test starts
def test_the_fusion_rule_is_chosen_on_one_set_and_cross_validated_on_held_out_folds() -> None:
    from modelverse.evaluation.text_fusion import Rule, TextScores, choose, cross_validated, hybrid_rules, rates
    from modelverse.evaluation.unseen import ScoredQuery
    from modelverse.evaluation.unseen_queries import UnseenQuery

    ids = np.array(["a", "b", "c", "d"])
    rng = np.random.default_rng(0)
    members = []
    for i in range(10):  # the dense match knows the right model; content and BM25 are noise
        right = i % 4
        query = UnseenQuery(f"q{i}", "text", "own-description", frozenset({str(ids[right])}), text="t")
        dense = rng.uniform(0.0, 0.3, 4)
        dense[right] = 0.6
        members.append(TextScores(ScoredQuery(query, Method.MGF, [], {}, np.zeros(4)), rng.normal(size=4),
                                  np.maximum(rng.normal(size=4), 0), dense))
    rules = [r for r in hybrid_rules() if r.fusion is Fusion.WEIGHTED  # a coarse grid (halves): the logic, not the grid
             and all(float(2 * w).is_integer() for w in (r.weights.content, r.weights.bm25, r.weights.semantic))]
    assert any(r.weights.semantic == 1.0 for r in rules)
    chosen = choose(ids, rules, members)
    assert rates(ids, members, lambda m: chosen.scores(ids, m))["top1"] == 1.0 and chosen.weights.semantic > 0
    assert isinstance(chosen, Rule) and chosen.label.startswith(chosen.fusion.value)
    held_out = cross_validated(ids, rules, members, folds=5)
    assert held_out["count"] == 10 and held_out["top1"] == 1.0  # every fold's rule learned "dense"
    content_only = [r for r in rules if r.weights.semantic == 0 and r.weights.bm25 == 0]
    assert cross_validated(ids, content_only, members)["top1"] < 1.0
