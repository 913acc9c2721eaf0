"""The fidelity figure every serving benchmark reports: the fraction of top-k positions at which
a fast path returns the same model as the exhaustive exact search."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from modelverse.bench.queries import vector_request

TOP_K = 10


def positions_agreeing(found: Sequence[Sequence[Hashable]], exact: Sequence[Sequence[Hashable]],
                       k: int = TOP_K) -> float:
    """Over all queries, the share of positions 1..k where ``found`` names the model ``exact``
    names. Position by position (not set overlap): a swap of ranks 3 and 4 costs two positions.
    A shorter answer's missing positions disagree."""
    if len(found) != len(exact):
        raise ValueError(f"{len(found)} answers for {len(exact)} exact answers")
    if not exact:
        raise ValueError("no queries")
    same = sum(sum(a == b for a, b in zip(f[:k], e[:k])) for f, e in zip(found, exact))
    return same / (k * len(exact))


def answer_concentration(exact: Sequence[Sequence[Hashable]]) -> dict[str, int]:
    """How concentrated exact answers are over a query set: a few wide "hub" models that top many
    queries make a small query set say little. Distinct top-1 models, the most queries one model
    tops, and distinct models in all top lists."""
    if not exact:
        raise ValueError("no queries")
    firsts = Counter(answer[0] for answer in exact if len(answer))
    return {"queries": len(exact), "distinct_top1": len(firsts), "most_queries_one_top1": max(firsts.values(), default=0),
            "distinct_in_top_lists": len({model for answer in exact for model in answer})}


def two_stage_curve(stub: Any, queries: np.ndarray, exact: Sequence[Sequence[str]], method: int,
                    grid: Sequence[int], k: int = TOP_K, timeout: float = 60.0) -> dict[int, float]:
    """``positions_agreeing`` of a gateway's answers at each candidate count per shard in
    ``grid``, for raw-vector queries with the proto ``method``."""
    curve = {}
    for candidates in grid:
        found = [[h.model.id for h in stub.Search(vector_request(q, method, k, candidates), timeout=timeout).hits]
                 for q in queries]
        curve[candidates] = round(positions_agreeing(found, exact, k), 4)
    return curve
