"""The retrieval-quality benchmark: every modality, every method, full and compressed second
order, against the number of samples per model.

Scores come from the exact reference search (``core.reference.ExactSearch`` and ``core.scores``),
never from a fast path, so the numbers measure the method, not an approximation of it. Every
ranking covers the whole zoo; the metrics are those of ``evaluation.retrieval_metrics`` (top-k accuracy of
the ground truth, mAP@k with relevance = sharing a tag with the ground truth, as in the paper).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modelverse.core import scores
from modelverse.core.collection import Collection
from modelverse.core.compression import compress_covariance
from modelverse.core.params import ScoringParams
from modelverse.core.ranking import top_k
from modelverse.core.reference import ExactSearch
from modelverse.core.second_order import CompressedCovariances
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK, summarize
from modelverse.core.types import Method, SecondOrderForm
from modelverse.encoders.base import Encoder
from modelverse.evaluation.metadata_baseline import MetadataSearch
from modelverse.evaluation.retrieval_metrics import query_metrics, relevant_by_tags, summarize_queries
from modelverse.evaluation.quality_queries import PictureGroup, QuerySuite
from modelverse.evaluation.sample_features import FeatureCache

FULL = SecondOrderForm.FULL
COMPRESSED = SecondOrderForm.COMPRESSED


@dataclass(frozen=True)
class Scorer:
    """One column of the benchmark: a method, and the second-order form it reads (if any)."""

    method: Method
    form: SecondOrderForm | None = None

    @property
    def label(self) -> str:
        return self.method.value if self.form is None else f"{self.method.value} ({self.form.value})"


POINT_SCORERS = (
    Scorer(Method.MONTE_CARLO),
    Scorer(Method.FIRST_MOMENT),
    Scorer(Method.GAUSSIAN, FULL),
    Scorer(Method.GAUSSIAN, COMPRESSED),
    Scorer(Method.MGF, FULL),
    Scorer(Method.MGF, COMPRESSED),
)
SET_SCORERS = POINT_SCORERS + (Scorer(Method.FRECHET, FULL), Scorer(Method.FRECHET, COMPRESSED))
MODEL_SCORERS = (Scorer(Method.FIRST_MOMENT), Scorer(Method.FRECHET, FULL), Scorer(Method.FRECHET, COMPRESSED))
METADATA = "metadata (TF-IDF)"


@dataclass(frozen=True)
class EncodedQuery:
    """One query, encoded: ``vectors`` are L2-normalised rows (one for a text or a picture, n for
    an image set, each weighing 1/n)."""

    name: str
    source: str
    vectors: np.ndarray
    ground_truth: frozenset[str]
    text: str = ""


def collection_at(cache: FeatureCache, model_ids: Sequence[str], samples: int | Mapping[str, int],
                  rank: int = DEFAULT_RANK, eps: float = DEFAULT_EPS) -> Collection:
    """Every model's statistics from its first ``samples`` cached samples, raw features kept.

    ``samples`` is one count for every model, or a count per model id (an adaptive run's)."""

    def count(model_id: str) -> int:
        return samples if isinstance(samples, int) else samples[model_id]

    stats = [
        summarize(cache.moments(m, count(m)), rank=rank, eps=eps, keep_covariance=True,
                  samples=cache.features(m, count(m)))
        for m in model_ids
    ]
    return Collection.from_stats(list(model_ids), stats)


def _normalize(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def encode_suite(suite: QuerySuite, encoder: Encoder) -> dict[str, list[EncodedQuery]]:
    """Texts, single pictures, sketches and image sets, encoded once for every sample count."""
    texts = _normalize(encoder.encode_texts([t.text for t in suite.texts]))
    out: dict[str, list[EncodedQuery]] = {
        "text": [
            EncodedQuery(t.model_id, "description", texts[i : i + 1], t.ground_truth, t.text)
            for i, t in enumerate(suite.texts)
        ]
    }

    def pictures(groups: Iterable[PictureGroup]) -> list[tuple[PictureGroup, np.ndarray]]:
        return [(g, _normalize(encoder.encode_images(list(g.pictures)))) for g in groups]

    images = pictures(suite.groups)
    sketches = pictures(suite.sketches())
    for modality, encoded in (("image", images), ("sketch", sketches)):
        out[modality] = [
            EncodedQuery(f"{g.name}#{k}", g.source, rows[k : k + 1], g.ground_truth)
            for g, rows in encoded
            for k in range(rows.shape[0])
        ]
    out["image_set"] = [
        EncodedQuery(g.name, g.source, rows, g.ground_truth) for g, rows in images if rows.shape[0] > 1
    ]
    return out


def _point_scores(search: ExactSearch, scorer: Scorer, queries: list[EncodedQuery]) -> list[np.ndarray]:
    """Each query's score for every model: the mean over its vectors (the image-set rule)."""
    collection = search.collection
    if scorer.method is Method.MONTE_CARLO:
        assert collection.samples is not None
        stacked = np.concatenate([q.vectors for q in queries])
        table = scores.monte_carlo_many(stacked, collection.samples, search.params.tau)
        bounds = np.cumsum([0] + [q.vectors.shape[0] for q in queries])
        return [table[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]
    form = scorer.form or COMPRESSED
    return [np.mean([search.score_vector(v, scorer.method, form) for v in q.vectors], axis=0) for q in queries]


def _frechet_set_scores(search: ExactSearch, form: SecondOrderForm, query: EncodedQuery) -> np.ndarray:
    """Frechet distance between the image set's own Gaussian and every model's."""
    collection = search.collection
    mean = query.vectors.mean(axis=0)
    covariance = np.cov(query.vectors, rowvar=False)
    if form is FULL:
        assert collection.full is not None
        return scores.frechet_full(mean, covariance, collection.means, collection.full)
    packed = CompressedCovariances.stack(
        [compress_covariance(covariance, rank=collection.compressed.rank, eps=search.params.eps)]
    )
    return scores.frechet_compressed(mean, packed, collection.means, collection.compressed)


def _ranking(ids: np.ndarray, values: np.ndarray) -> list[str]:
    return [hit.id for hit in top_k(ids, values, len(ids))]


def evaluate(
    collection: Collection,
    encoded: dict[str, list[EncodedQuery]],
    suite: QuerySuite,
    params: ScoringParams,
) -> list[dict[str, object]]:
    """Metric rows for every (modality, scorer, query source) at this collection's sample count."""
    search = ExactSearch(collection, params)
    ids = collection.ids
    all_tags = set().union(*suite.tags.values())
    rows: list[dict[str, object]] = []

    def record(modality: str, label: str, queries: list[EncodedQuery], rankings: list[list[str]],
               truth: Callable[[EncodedQuery], frozenset[str]] = lambda q: q.ground_truth,
               relevant: Callable[[EncodedQuery], set[str]] | None = None) -> None:
        if not queries:  # e.g. no model shares a tag with another in a small slice of the zoo
            return
        per_query = []
        for query, ranking in zip(queries, rankings):
            wanted = relevant(query) if relevant else relevant_by_tags(query.ground_truth, suite.tags, all_tags)
            per_query.append((query.source, query_metrics(ranking, truth(query), wanted)))
        for source in ["all", *sorted({s for s, _ in per_query})]:
            chosen = [m for s, m in per_query if source in ("all", s)]
            rows.append({"modality": modality, "scorer": label, "queries": source, "count": len(chosen),
                         **summarize_queries(chosen)})

    for modality in ("text", "image", "sketch", "image_set"):
        queries = encoded[modality]
        scorers = SET_SCORERS if modality == "image_set" else POINT_SCORERS
        for scorer in scorers:
            if scorer.method is Method.FRECHET:
                values = [_frechet_set_scores(search, scorer.form or COMPRESSED, q) for q in queries]
            else:
                values = _point_scores(search, scorer, queries)
            record(modality, scorer.label, queries, [_ranking(ids, v) for v in values])

    texts = encoded["text"]
    metadata = MetadataSearch(
        list(ids), [" ".join([suite.names[m], suite.descriptions[m], *sorted(suite.tags[m])]) for m in ids]
    )
    record("text", METADATA, texts, [metadata.rank(q.text) for q in texts])

    model_queries = [EncodedQuery(m, "model", np.empty((0, 0)), suite.similar_model_truth(m)) for m in ids]
    model_queries = [q for q in model_queries if q.ground_truth]
    for scorer in MODEL_SCORERS:
        rankings = []
        for query in model_queries:
            others = ids != query.name
            if scorer.method is Method.FIRST_MOMENT:
                row = collection.row_of(query.name)
                values = scores.first_moment(scores.normalized_means(collection.means)[row], collection.means)
            else:
                values = search.score_similar(query.name, scorer.form or COMPRESSED)
            rankings.append(_ranking(ids[others], values[others]))
        record("model", scorer.label, model_queries, rankings, relevant=lambda q: set(q.ground_truth))
    return rows


TEMPERATURE_SCORERS = (Scorer(Method.MONTE_CARLO), Scorer(Method.MGF, FULL), Scorer(Method.MGF, COMPRESSED))


def evaluate_temperatures(
    collection: Collection,
    encoded: dict[str, list[EncodedQuery]],
    suite: QuerySuite,
    taus: Sequence[float],
    *,
    eps: float,
) -> list[dict[str, object]]:
    """The two scores that depend on tau (Monte Carlo, 1st + 2nd moment) for text and image
    queries at each tau: tau is the temperature of exp(tau q.z), and an encoder trained with
    another temperature than CLIP's 100 ranks differently with the paper's value."""
    all_tags = set().union(*suite.tags.values())
    rows: list[dict[str, object]] = []
    for tau in taus:
        search = ExactSearch(collection, ScoringParams(tau=tau, eps=eps))
        for modality in ("text", "image"):
            queries = encoded[modality]
            for scorer in TEMPERATURE_SCORERS:
                values = _point_scores(search, scorer, queries)
                metrics = [
                    query_metrics(_ranking(collection.ids, v), q.ground_truth,
                                  relevant_by_tags(q.ground_truth, suite.tags, all_tags))
                    for q, v in zip(queries, values)
                ]
                rows.append({"modality": modality, "scorer": scorer.label, "queries": "all", "tau": float(tau),
                             "count": len(queries), **summarize_queries(metrics)})
    return rows
