"""Choosing how METADATA and HYBRID fuse their rankings (core.fusion), without flattering the
figures we report.

Every text query has three scores per model: content (the method's score of the encoded text),
BM25 (the metadata's words, core.text_index) and the dense match (the cosine of all-MiniLM-L6-v2
embeddings of the text and of the metadata, core.sentence_encoder). A rule (weighted sum of
min-max scaled scores, or reciprocal rank fusion) and its weights are chosen on ONE set, the
zoo's own descriptions, by (top-1, top-5, mean reciprocal rank) in that order; the paraphrases
play no part in the choice, so their figures at the chosen weights are held-out figures. The own
descriptions' figure at weights tuned on themselves flatters them: ``cross_validated`` gives
the honest one (each fold ranked with weights chosen on the other folds).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelverse.core.fusion import RRF_K, Fusion, Signal, Weights, reciprocal_rank_fusion, unit_rank, weighted_fusion
from modelverse.core.sentence_encoder import SentenceEncoder
from modelverse.core.text_index import MetadataDocument, TextIndex
from modelverse.evaluation.unseen import ScoredQuery


@dataclass(frozen=True)
class TextScores:
    """One text query's three scores of every model (collection order)."""

    query: ScoredQuery
    content: np.ndarray
    bm25: np.ndarray
    semantic: np.ndarray


@dataclass(frozen=True)
class Rule:
    fusion: Fusion
    weights: Weights
    k: float = RRF_K  # RRF only

    @property
    def label(self) -> str:
        w = self.weights
        shown = f"content {w.content:g}, BM25 {w.bm25:g}, dense {w.semantic:g}"
        return f"{self.fusion.value}, {shown}" + (f", k = {self.k:g}" if self.fusion is Fusion.RRF else "")

    def scores(self, ids: np.ndarray, s: TextScores) -> np.ndarray:
        w = self.weights
        signals = [Signal(s.content, w.content), Signal(s.bm25, w.bm25, s.bm25 > 0),
                   Signal(s.semantic, w.semantic, s.semantic != 0)]
        fused = (reciprocal_rank_fusion(signals, ids, self.k) if self.fusion is Fusion.RRF
                 else weighted_fusion(signals))
        # content breaks ties (a metadata-only rule leaves many models at 0), as the servers do
        return fused + 1e-9 * unit_rank(s.content, ids)


def text_scores(ids: np.ndarray, documents: Sequence[MetadataDocument], scored: Sequence[ScoredQuery],
                encoder: SentenceEncoder) -> list[TextScores]:
    index = TextIndex(documents)
    vectors = encoder.encode([d.text() for d in documents])
    queries = encoder.encode([s.query.text or "" for s in scored])
    return [TextScores(s, s.values, index.scores(s.query.text or ""), (vectors @ q).astype(np.float32))
            for s, q in zip(scored, queries)]


def rates(ids: np.ndarray, members: Sequence[TextScores], score: Callable[[TextScores], np.ndarray]) -> dict[str, float]:
    """count, top-1, top-5 and mean reciprocal rank of the first right model."""
    matched = [m for m in members if m.query.query.has_match]
    if not matched:
        return {}
    top1, top5, reciprocal = [], [], []
    for m in matched:
        order = ids[np.lexsort((ids, -score(m)))]
        first = next(i for i, model in enumerate(order) if model in m.query.query.ground_truth)
        top1.append(first == 0)
        top5.append(first < 5)
        reciprocal.append(1.0 / (first + 1))
    return {"count": len(matched), "top1": float(np.mean(top1)), "top5": float(np.mean(top5)),
            "mrr": float(np.mean(reciprocal))}


def _simplex(step: float, with_content: bool) -> list[Weights]:
    units = round(1 / step)
    out = []
    for c, b in itertools.product(range(units + 1), repeat=2):
        s = units - c - b
        if s < 0 or (c and not with_content):
            continue
        out.append(Weights(round(c * step, 3), round(b * step, 3), round(s * step, 3)))
    return out


def hybrid_rules() -> list[Rule]:
    """The weighted sums on a 0.1 grid of the simplex, and RRF with weights 0-3 and k 1, 10, 60."""
    rules = [Rule(Fusion.WEIGHTED, w) for w in _simplex(0.1, with_content=True)]
    levels = (0.0, 0.5, 1.0, 2.0, 3.0)
    for c, b, s in itertools.product(levels, repeat=3):
        if c + b + s > 0:
            rules += [Rule(Fusion.RRF, Weights(c, b, s), k) for k in (1.0, 10.0, RRF_K)]
    return rules


def metadata_rules() -> list[Rule]:
    """Rules over BM25 and the dense match alone (content breaks ties only)."""
    rules = [Rule(Fusion.WEIGHTED, w) for w in _simplex(0.1, with_content=False)]
    for b, s in itertools.product((0.0, 0.5, 1.0, 2.0, 3.0), repeat=2):
        if b + s > 0:
            rules += [Rule(Fusion.RRF, Weights(0.0, b, s), k) for k in (1.0, 10.0, RRF_K)]
    return rules


def choose(ids: np.ndarray, rules: Sequence[Rule], members: Sequence[TextScores]) -> Rule:
    """The rule of best (top-1, top-5, MRR) on ``members``; the first listed among equals."""
    def key(rule: Rule) -> tuple[float, float, float]:
        r = rates(ids, members, lambda m: rule.scores(ids, m))
        return r["top1"], r["top5"], r["mrr"]
    return max(rules, key=key)  # max keeps the first of equal keys


def cross_validated(ids: np.ndarray, rules: Sequence[Rule], members: Sequence[TextScores],
                    folds: int = 5) -> dict[str, float]:
    """Each fold (every ``folds``-th query) ranked by the rule chosen on the other folds."""
    ranked: list[tuple[TextScores, Rule]] = []
    for fold in range(folds):
        held = [m for i, m in enumerate(members) if i % folds == fold]
        rule = choose(ids, rules, [m for i, m in enumerate(members) if i % folds != fold])
        ranked += [(m, rule) for m in held]
    by_query = {id(m): rule for m, rule in ranked}
    return rates(ids, members, lambda m: by_query[id(m)].scores(ids, m))
