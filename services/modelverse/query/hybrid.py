"""Issue 17 over a whole collection in one process (the CLI's exact search): the text mode's
ranking (content; the metadata by BM25 and by sentence embeddings; or all fused) and each hit's
confidence, with the same core functions and constants as the gateway
(serving/gateway/hybrid.py), so both rank alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from modelverse.core.confidence import (
    calibrated_confidence,
    logsumexp,
    mixture_evidence,
    reference_rows,
)
from modelverse.core.fusion import hybrid_ranking, metadata_ranking
from modelverse.core.sentence_encoder import sentence_encoder
from modelverse.core.ranking import top_k
from modelverse.core.reference import ExactSearch
from modelverse.core.text_index import MetadataDocument, TextIndex
from modelverse.core.types import Method, QueryPart, SecondOrderForm
from modelverse.errors import InvalidInputError


class TextMode(str, Enum):
    CONTENT = "content"
    METADATA = "metadata"
    HYBRID = "hybrid"


def resolve_text_mode(requested: TextMode | None, has_text: bool) -> TextMode:
    """HYBRID for a query with text unless asked otherwise; METADATA and HYBRID need text."""
    if requested is None:
        return TextMode.HYBRID if has_text else TextMode.CONTENT
    if requested is not TextMode.CONTENT and not has_text:
        raise InvalidInputError(f"text mode {requested.value} needs a text part in the query")
    return requested


@dataclass(frozen=True)
class RankedHit:
    id: str
    score: float  # the method's content score
    rank: int
    confidence: float
    text_score: float
    semantic_score: float = 0.0


def rank_collection(
    engine: ExactSearch,
    parts: list[QueryPart],
    method: Method,
    form: SecondOrderForm,
    k: int,
    *,
    texts: Sequence[str] = (),
    text_mode: TextMode = TextMode.CONTENT,
    documents: Sequence[MetadataDocument] = (),
    document_vectors: np.ndarray | None = None,
    min_confidence: float | None = None,
) -> list[RankedHit]:
    """The top ``k`` live models for the query; ``documents`` (one per live model, in
    collection order) are needed for METADATA and HYBRID, and their sentence embeddings
    ``document_vectors`` (zero rows: not embedded; None: BM25 alone) for the dense match."""
    collection = engine.collection
    live = collection.live_mask()
    ids = collection.ids[live]
    content = engine.score_parts(parts, method, form)[live]
    # the confidence: MGF scores against the mixture of a fixed sample of the models (as each
    # shard keeps one); the method's own scores when it is MGF
    mgf = content if method is Method.MGF else engine.score_parts(parts, Method.MGF, form)[live]
    reference = mgf[reference_rows(len(ids))]
    confidence = calibrated_confidence(mixture_evidence(mgf, logsumexp(reference), len(reference)))
    text = semantic = np.zeros(len(ids), dtype=np.float32)
    if text_mode is not TextMode.CONTENT:
        if len(documents) != len(ids):
            raise ValueError(f"{len(documents)} metadata documents for {len(ids)} models")
        query_text = " ".join(texts)
        text = TextIndex(documents).scores(query_text)
        if document_vectors is not None:
            if document_vectors.shape[0] != len(ids):
                raise ValueError(f"{document_vectors.shape[0]} metadata embeddings for {len(ids)} models")
            semantic = (document_vectors @ sentence_encoder().encode([query_text])[0]).astype(np.float32)
    if text_mode is TextMode.METADATA:
        order_key = metadata_ranking(ids, content, text, semantic)
    elif text_mode is TextMode.HYBRID:
        order_key = hybrid_ranking(ids, content, text, semantic)
    else:
        order_key = content
    position = {model_id: i for i, model_id in enumerate(ids.tolist())}
    hits: list[RankedHit] = []
    for hit in top_k(ids, order_key, k):
        i = position[hit.id]
        if min_confidence is not None and confidence[i] < min_confidence:
            continue
        hits.append(RankedHit(hit.id, float(content[i]), len(hits) + 1, float(confidence[i]), float(text[i]),
                              float(semantic[i])))
    return hits
