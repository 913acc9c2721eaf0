"""Issue 17 in the gateway: the text mode of a request, the fusion of the shards' content, BM25
and dense metadata rankings, and each hit's confidence; kept apart from the fan-out and the plain
merge.

Fusion needs global ranks, so it runs here over all shards' candidates: each shard adds its best
BM25 and dense matches to its content candidates and reports every candidate's BM25 score and
metadata cosine (shard.proto). The query text is embedded here, once (``query_text_embedding``).
Confidence compares each candidate's MGF score with the mixture of the reference models the
shards report (a fixed sample of models per shard), through ``core.confidence``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from modelverse.core.confidence import calibrated_confidence, logsumexp, mixture_evidence
from modelverse.core.fusion import hybrid_ranking, metadata_ranking
from modelverse.core.sentence_encoder import sentence_encoder
from modelverse.core.ranking import top_k
from modelverse.core.types import Method
from modelverse.errors import InvalidInputError
from modelverse.v1 import search_pb2, shard_pb2

TEXT_MODES = {search_pb2.CONTENT, search_pb2.METADATA, search_pb2.HYBRID}


def resolve_text_mode(request: search_pb2.SearchRequest, has_text: bool) -> int:
    """The request's text mode, the default resolved: HYBRID when the query has text."""
    mode = request.text_mode
    if mode != search_pb2.TEXT_MODE_UNSPECIFIED and mode not in TEXT_MODES:
        raise InvalidInputError(f"unknown text_mode {mode}; use CONTENT, METADATA or HYBRID")
    if mode == search_pb2.TEXT_MODE_UNSPECIFIED:
        return search_pb2.HYBRID if has_text else search_pb2.CONTENT
    if mode in (search_pb2.METADATA, search_pb2.HYBRID) and not has_text:
        raise InvalidInputError(f"text_mode {search_pb2.TextMode.Name(mode)} needs a text part in the query")
    return mode


def query_text_embedding(text: str) -> bytes:
    """RecallRequest.query_embedding_f32: the text's sentence embedding, little-endian float32."""
    return sentence_encoder().encode([text])[0].astype("<f4").tobytes()


def _parallel(answers: list[shard_pb2.RecallResponse], field: str) -> np.ndarray:
    """A per-candidate float field of every answer, concatenated; zeros for an answer without it."""
    return np.concatenate([np.asarray(getattr(a, field), dtype=np.float32) if len(getattr(a, field)) == len(a.ids)
                           else np.zeros(len(a.ids), dtype=np.float32) for a in answers])


def min_confidence(request: search_pb2.SearchRequest) -> float | None:
    if not request.HasField("min_confidence"):
        return None
    value = float(request.min_confidence)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"min_confidence must be between 0 and 1, got {value}")
    return value


def pooled_mixture(answers: Iterable[shard_pb2.RecallResponse]) -> tuple[float, int] | None:
    """All shards' reference MGF scores together: (log-sum-exp, count)."""
    parts = [(a.reference_logsumexp, a.reference_count) for a in answers if a.reference_count > 0]
    if not parts:
        return None
    return logsumexp(np.array([lse for lse, _ in parts])), sum(n for _, n in parts)


def merge_hybrid(
    answers: Iterable[shard_pb2.RecallResponse],
    k: int,
    method: Method,
    text_mode: int,
    least_confidence: float | None,
    fetch_model: Callable[[str], search_pb2.Model],
) -> search_pb2.SearchResponse:
    """All shards' candidates -> the top k by the text mode's ranking (content score, the metadata
    match (BM25 and dense), or all fused), each hit with its confidence; hits under ``least_confidence`` are dropped.
    ``fetch_model`` supplies the metadata of a hit that no shard sent (a fused answer may hold
    a model that was in neither of its shard's short lists)."""
    answers = list(answers)
    id_list = [i for a in answers for i in a.ids]
    response = search_pb2.SearchResponse(candidates=len(id_list), text_mode=text_mode)
    if not id_list:
        return response
    ids = np.array(id_list)
    first = np.array([s for a in answers for s in a.first_stage_scores], dtype=np.float32)
    content = np.array([s for a in answers for s in a.scores], dtype=np.float64)
    if text_mode == search_pb2.CONTENT:
        text = semantic = np.zeros(len(ids), dtype=np.float32)
    else:
        text, semantic = _parallel(answers, "text_scores"), _parallel(answers, "semantic_scores")
    if text_mode == search_pb2.METADATA:
        ranking = metadata_ranking(ids, content, text, semantic)
    elif text_mode == search_pb2.HYBRID:
        ranking = hybrid_ranking(ids, content, text, semantic)
    else:
        ranking = content
    mixture = pooled_mixture(answers) if method is not Method.FRECHET else None
    if mixture is not None and all(len(a.mgf_scores) == len(a.ids) for a in answers):
        mgf = np.array([s for a in answers for s in a.mgf_scores], dtype=np.float64)
        confidence = calibrated_confidence(mixture_evidence(mgf, *mixture))
    else:
        confidence = np.zeros(len(ids))
    models = {m.id: m for a in answers for m in (*a.top, *a.text_top)}
    position = {model_id: i for i, model_id in enumerate(id_list)}
    first_rank = np.empty(len(id_list), dtype=np.int64)
    first_rank[np.lexsort((ids, -first))] = np.arange(1, len(id_list) + 1)
    rank = 0
    for hit in top_k(ids, ranking, k):
        i = position[hit.id]
        # at float32, the precision of both SearchHit.confidence and min_confidence on the wire
        if least_confidence is not None and np.float32(confidence[i]) < np.float32(least_confidence):
            continue
        rank += 1
        model = models.get(hit.id) or fetch_model(hit.id)
        response.hits.add(model=model, score=float(content[i]), rank=rank, first_stage_rank=int(first_rank[i]),
                          first_stage_score=float(first[i]), confidence=float(confidence[i]),
                          text_score=float(text[i]), semantic_score=float(semantic[i]))
    return response

