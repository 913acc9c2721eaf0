"""How much a hit's score stands out: the confidence that some model fits the query at all.

A method's raw score does not say whether anything fits: a text about a mountain landscape gets
a best model too, with a score in the same range as a sneaker's (issue 17: ROC AUC 0.36 over the
unseen-style set's modalities). What serves (``mixture_evidence``): each hit's 1st + 2nd moment
score against that of the mixture of a fixed random sample of models (a log likelihood ratio),
mapped to (0, 1) by a logistic curve fitted on the unseen-style set (``CALIBRATION``), AUC 0.807.
Measured alternatives kept here for the benchmark's comparison table (docs/QUALITY.md):

- ``BackgroundModel``: one Gaussian for all samples of all models (AUC 0.64);
- ``z_scores``: the hit's score against the mean and spread of the sample's scores (AUC 0.73).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelverse.core import scores
from modelverse.core.collection import Collection
from modelverse.core.compression import compress_covariance
from modelverse.core.params import ScoringParams
from modelverse.core.second_order import CompressedCovariances
from modelverse.core.types import Method

REFERENCE_MODELS = 256  # models whose scores estimate a query's typical score
_SEED = 20261202


def reference_rows(collection_size: int, count: int = REFERENCE_MODELS, seed: int = _SEED) -> np.ndarray:
    """A fixed random sample of rows (all rows when the collection is small), sorted."""
    if collection_size <= count:
        return np.arange(collection_size)
    return np.sort(np.random.default_rng(seed).choice(collection_size, size=count, replace=False))


@dataclass(frozen=True)
class ScoreReference:
    """The scores of a fixed sample of models stand for the collection's score distribution."""

    reference: Collection

    @classmethod
    def of(cls, collection: Collection, count: int = REFERENCE_MODELS) -> ScoreReference:
        live = np.flatnonzero(collection.live_mask())
        rows = live[reference_rows(len(live), count)]
        return cls(collection.take(rows))



def z_scores(query_scores: np.ndarray, reference_scores: np.ndarray) -> np.ndarray:
    """(score - mean) / std of the reference models' scores for the same query."""
    spread = float(np.std(reference_scores))
    centre = float(np.mean(reference_scores))
    return (np.asarray(query_scores, dtype=np.float64) - centre) / max(spread, 1e-12)


@dataclass(frozen=True)
class BackgroundModel:
    """All samples of all models as one Gaussian: mean = the mean of the means, covariance =
    the mean within-model covariance plus the covariance of the means (law of total variance),
    compressed to the collection's rank. Estimated from ``REFERENCE_MODELS`` models."""

    mean: np.ndarray  # (1, d)
    second: CompressedCovariances  # one row

    @classmethod
    def of(cls, collection: Collection, eps: float, count: int = REFERENCE_MODELS) -> BackgroundModel:
        live = np.flatnonzero(collection.live_mask())
        part = collection.take(live[reference_rows(len(live), count)])
        means = np.asarray(part.means, dtype=np.float64)
        compressed = part.compressed
        diag = np.asarray(compressed.diag, dtype=np.float64)
        factor = np.asarray(compressed.factor, dtype=np.float64)
        within = np.diag(diag.mean(axis=0)) + np.einsum("mdr,mer->de", factor, factor) / len(means)
        between = np.cov(means, rowvar=False, bias=True) if len(means) > 1 else np.zeros_like(within)
        packed = compress_covariance(within + between, rank=compressed.rank, eps=eps)
        return cls(means.mean(axis=0, keepdims=True), CompressedCovariances.stack([packed]))

    def score(self, q: np.ndarray, method: Method, params: ScoringParams) -> float:
        """The background's score for one normalised query vector under ``method``."""
        if method is Method.FIRST_MOMENT:
            return float(scores.first_moment(q, self.mean)[0])
        if method is Method.MGF:
            return float(scores.mgf(q, self.mean, self.second, params.tau)[0])
        if method is Method.GAUSSIAN:
            return float(scores.gaussian(q, self.mean, self.second, params.eps)[0])
        raise ValueError(f"no background score for {method.value}")


def confidence(evidence: np.ndarray | float, centre: float, scale: float) -> np.ndarray:
    """A logistic map of the evidence (a z-score or a log likelihood ratio) to (0, 1)."""
    # The tanh form of the logistic: equal to 1 / (1 + exp(-z)), without exp overflowing (and
    # warning) for evidence far below the centre.
    z = (np.asarray(evidence, dtype=np.float64) - centre) / scale
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def logsumexp(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    top = float(values.max())
    return top + float(np.log(np.exp(values - top).sum()))


def mixture_evidence(mgf_scores: np.ndarray, reference_logsumexp: float, reference_count: int) -> np.ndarray:
    """The served confidence's evidence: log E_m[exp(tau q.z)] (the 1st + 2nd moment score)
    minus the same for the mixture of the reference models, log mean_r exp(score_r). It is the
    log likelihood ratio of "a sample of model m" against "a sample of any model" under the
    score's exponential model, whatever method ranks the hits; it measured best among the
    candidates (docs/QUALITY.md: raw score, cosine, z-score, Gaussian background)."""
    if reference_count <= 0:
        raise ValueError("the mixture needs at least one reference model")
    return np.asarray(mgf_scores, dtype=np.float64) - (reference_logsumexp - float(np.log(reference_count)))


# (centre, scale) of the logistic curve over ``mixture_evidence``: fitted by logistic regression
# on the unseen-style set's best hits, queries with and without a right model
# (tools/bench_unseen.py prints the fit). 0.5 = as likely to fit as not.
CALIBRATION = (2.63, 0.50)


def calibrated_confidence(evidence: np.ndarray | float) -> np.ndarray:
    """The confidence (0, 1) of hits with this evidence."""
    centre, scale = CALIBRATION
    return confidence(evidence, centre, scale)
