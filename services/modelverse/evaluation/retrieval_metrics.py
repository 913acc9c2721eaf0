"""Retrieval metrics as in the paper: top-k accuracy of the ground truth, and mAP@k where a
retrieved model is relevant when it shares a tag with the ground-truth model."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np


def top_k_hit(ranking: Sequence[str], ground_truth: Collection[str], k: int) -> bool:
    """Whether a ground-truth model is among the first k."""
    return any(model_id in ground_truth for model_id in ranking[:k])


def average_precision(ranking: Sequence[str], relevant: Collection[str], k: int | None = None) -> float:
    """AP@k = sum over relevant positions i <= k of precision@i, divided by min(k, |relevant|).

    ``k=None`` is AP over the whole ranking (mAP@all). The normaliser min(k, R) makes a ranking
    that puts relevant models in every position it can score 1.
    """
    if not relevant:
        raise ValueError("average precision needs at least one relevant model")
    cutoff = len(ranking) if k is None else min(k, len(ranking))
    hits = 0
    total = 0.0
    for position, model_id in enumerate(ranking[:cutoff], start=1):
        if model_id in relevant:
            hits += 1
            total += hits / position
    return total / min(cutoff if k is not None else len(relevant), len(relevant))


def relevant_by_tags(ground_truth: Collection[str], tags: dict[str, frozenset[str]], content_tags: Collection[str]) -> set[str]:
    """Models sharing a content tag with any ground-truth model (the ground truth included)."""
    wanted = set().union(*(tags[g] & set(content_tags) for g in ground_truth))
    return {model_id for model_id, model_tags in tags.items() if model_tags & wanted} | set(ground_truth)


def summarize_queries(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over queries."""
    if not rows:
        return {}
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def query_metrics(ranking: Sequence[str], ground_truth: Collection[str], relevant: Collection[str]) -> dict[str, float]:
    return {
        "top1": float(top_k_hit(ranking, ground_truth, 1)),
        "top5": float(top_k_hit(ranking, ground_truth, 5)),
        "top10": float(top_k_hit(ranking, ground_truth, 10)),
        "map5": average_precision(ranking, relevant, 5),
        "map10": average_precision(ranking, relevant, 10),
        "map_all": average_precision(ranking, relevant, None),
    }
