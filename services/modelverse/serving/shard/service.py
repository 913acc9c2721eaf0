"""The ShardService gRPC servicer over a ShardState."""

from __future__ import annotations

import logging

import grpc
import numpy as np

from modelverse.core.params import ScoringParams
from modelverse.core.sentence_encoder import DIM as SENTENCE_DIM
from modelverse.core.types import Method, QueryPart
from modelverse.errors import InvalidInputError, ModelverseError
from modelverse.serving import metrics
from modelverse.serving.convert import METHOD_TO_CORE, filter_is_set, model_message, passes
from modelverse.serving.errors import status_code
from modelverse.serving.messages import bounded
from modelverse.serving.rerank import QueryModelStats, candidates_collection, rerank_scores
from modelverse.serving.shard.semantic_index import query_embedding
from modelverse.serving.shard.state import Recalled, ShardState
from modelverse.store.errors import ModelNotFoundError, StoreError
from modelverse.v1 import search_pb2, shard_pb2, shard_pb2_grpc

log = logging.getLogger("modelverse.shard")
SERVICE = "shard"


def query_vector(part: shard_pb2.WeightedVector) -> np.ndarray:
    """A query part's feature: ``values_f64`` when set, else ``values``."""
    if part.values_f64:
        if len(part.values_f64) % 8:
            raise InvalidInputError(f"values_f64 holds {len(part.values_f64)} bytes, not whole float64 values")
        return np.frombuffer(part.values_f64, dtype="<f8")
    return np.array(part.values, dtype=np.float64)


def decoded_query_model(qm: shard_pb2.QueryModel, eps: float) -> QueryModelStats:
    """A FRECHET query's model (the gateway copies it from the owning shard's GetQueryModel);
    arrays that do not fit their stated shape are the caller's error."""
    try:
        return QueryModelStats.from_arrays(
            qm.id, np.array(qm.mean, dtype=np.float64),
            np.frombuffer(qm.diag_f16, dtype="<f2").reshape(qm.dim),
            np.frombuffer(qm.factor_f16, dtype="<f2").reshape(qm.dim, qm.rank),
            qm.trace, eps,
        )
    except ValueError as exc:  # numpy's reshape and frombuffer: sizes that do not match
        raise InvalidInputError(f"query_model: {exc}") from exc


TEXT_CANDIDATES = 200  # BM25 matches, and dense matches, a shard adds to its candidates for METADATA / HYBRID


def text_query(request: shard_pb2.RecallRequest) -> str:
    """The text to match against metadata: set only for METADATA and HYBRID."""
    if request.text_mode in (search_pb2.METADATA, search_pb2.HYBRID):
        return request.query_text.strip()
    return ""


def text_embedding(request: shard_pb2.RecallRequest) -> np.ndarray | None:
    """The query text's sentence embedding, for METADATA and HYBRID when the gateway sent one."""
    if request.text_mode in (search_pb2.METADATA, search_pb2.HYBRID):
        return query_embedding(request.query_embedding_f32, SENTENCE_DIM)
    return None


def add_query_context(response: shard_pb2.RecallResponse, found: Recalled, parts: list[QueryPart] | None,
                      method: Method, query_text: str, embedding: np.ndarray | None, top_k: int,
                      params: ScoringParams, encoder: str) -> None:
    """Issue 17's fields: every candidate's BM25 score and dense metadata cosine and the metadata of
    the best matches by either (METADATA / HYBRID), and the reference scores' mean and spread
    (SearchHit.confidence)."""
    snap = found.snapshot
    if snap.context is None:
        return
    if query_text:
        rows = found.rows if found.rows is not None else np.zeros(0, dtype=np.int64)
        text_scores = snap.context.text_scores(query_text, rows)
        response.text_scores.extend(text_scores.tolist())
        best: list[int] = []
        if found.ids:
            ids = np.array(found.ids)
            best = [int(i) for i in np.lexsort((ids, -text_scores))[:top_k] if text_scores[i] > 0]
        semantic = None if embedding is None else snap.context.semantic_scores(embedding, rows)
        if semantic is not None:
            response.semantic_scores.extend(semantic.tolist())
            if found.ids:
                best += [int(i) for i in np.lexsort((ids, -semantic))[:top_k] if semantic[i] != 0]
        response.text_top.extend(model_message(snap.metadata[found.ids[i]], snap.versions[found.ids[i]], encoder)
                                 for i in dict.fromkeys(best))
    if parts and method is not Method.FRECHET:
        response.reference_logsumexp, response.reference_count = snap.context.reference_summary(parts, params)
        if method is Method.MGF:
            response.mgf_scores.extend(response.scores)
        elif found.ids and snap.collection is not None and found.rows is not None:
            mgf = rerank_scores(candidates_collection(snap.collection, found.rows, Method.MGF), Method.MGF, params,
                                parts=parts)
            response.mgf_scores.extend(np.asarray(mgf, dtype=np.float64).tolist())


class ShardServicer(shard_pb2_grpc.ShardServiceServicer):
    def __init__(self, state: ShardState) -> None:
        self.state = state

    def _fail(self, context: grpc.ServicerContext, rpc: str, code: grpc.StatusCode, message: str) -> None:
        metrics.count_request(SERVICE, rpc, code.name)
        context.abort(code, bounded(message))  # ids from callers other than our gateway are unchecked

    def Recall(self, request: shard_pb2.RecallRequest, context: grpc.ServicerContext) -> shard_pb2.RecallResponse:
        method = METHOD_TO_CORE.get(request.method)
        if method is None:
            self._fail(context, "Recall", grpc.StatusCode.INVALID_ARGUMENT, f"unknown method {request.method}")
        try:
            if method is Method.FRECHET:
                qm = request.query_model
                query_model = decoded_query_model(qm, self.state.store.config.eps)
                parts = None
            else:
                query_model = None
                parts = [QueryPart(query_vector(p), p.weight) for p in request.parts]
                if not parts:
                    raise InvalidInputError("a query needs at least one part")
            flt = request.filter
            allowed = (lambda md: passes(md, flt)) if filter_is_set(flt) else None
            query_text = text_query(request)
            embedding = text_embedding(request) if query_text else None
            found = self.state.recall(
                method, request.candidates, parts=parts, query_model=query_model, allowed=allowed,
                query_text=query_text, text_candidates=max(request.top_k, TEXT_CANDIDATES), query_embedding=embedding,
            )
        except ModelverseError as exc:  # the caller's (dimension, NaN, ...); a bug goes on: INTERNAL (serving/errors.py)
            self._fail(context, "Recall", status_code(exc), exc.message)
        metrics.count_request(SERVICE, "Recall", "OK")
        encoder = self.state.store.config.encoder
        snap = found.snapshot
        response = shard_pb2.RecallResponse(
            shard=self.state.config.shard, models=len(snap.row_of), ids=found.ids,
            first_stage_scores=found.first_stage_scores.tolist(), scores=found.scores.tolist(),
            top=[model_message(snap.metadata[m], snap.versions[m], encoder) for m in found.best(request.top_k or len(found))],
        )
        add_query_context(response, found, parts, method, query_text, embedding, request.top_k or len(found),
                          self.state.store.config.scoring, encoder)
        return response

    def Describe(self, request: shard_pb2.DescribeRequest, context: grpc.ServicerContext) -> shard_pb2.ShardDescription:
        config = self.state.store.config
        snap = self.state.snapshot
        return shard_pb2.ShardDescription(
            shard=self.state.config.shard, shards=self.state.config.shards, dim=config.dim,
            rank=config.rank, eps=config.eps, encoder=config.encoder, models=self.state.models(),
            index_type=self.state.index.plan.factory,
            store_generation=0 if snap.pack is None else snap.pack.generation,
        )

    def GetModel(self, request: search_pb2.GetModelRequest, context: grpc.ServicerContext) -> search_pb2.Model:
        try:
            metadata, version = self.state.metadata(request.id)
        except ModelNotFoundError as exc:
            self._fail(context, "GetModel", grpc.StatusCode.NOT_FOUND, str(exc))
        model = model_message(metadata, version, self.state.store.config.encoder)
        model.samples = self.state.samples(request.id)
        return model

    def GetQueryModel(self, request: search_pb2.GetModelRequest, context: grpc.ServicerContext) -> shard_pb2.QueryModel:
        try:
            qm = self.state.query_model(request.id)
        except ModelNotFoundError as exc:
            self._fail(context, "GetQueryModel", grpc.StatusCode.NOT_FOUND, str(exc))
        diag = qm.compressed.diag[0].astype("<f2")
        factor = qm.compressed.factor[0].astype("<f2")
        return shard_pb2.QueryModel(
            id=qm.id, mean=qm.mean.tolist(), diag_f16=diag.tobytes(), factor_f16=factor.tobytes(),
            trace=float(qm.compressed.traces[0]), dim=int(factor.shape[0]), rank=int(factor.shape[1]),
        )

    def ListModels(self, request: search_pb2.ListModelsRequest, context: grpc.ServicerContext) -> search_pb2.ListModelsResponse:
        limit = request.page_size or 100
        ids = self.state.list_ids(request.page_token, limit)
        encoder = self.state.store.config.encoder
        snap = self.state.snapshot
        models = [model_message(snap.metadata[m], snap.versions[m], encoder) for m in ids if m in snap.metadata]
        return search_pb2.ListModelsResponse(
            models=models, next_page_token=ids[-1] if len(ids) == limit else ""
        )

    def GetThumbnails(self, request: search_pb2.GetThumbnailsRequest,
                      context: grpc.ServicerContext) -> search_pb2.GetThumbnailsResponse:
        try:
            _, version = self.state.metadata(request.model_id)  # only a model this shard serves
            images = self.state.store.get_thumbnails(request.model_id)
        except ModelNotFoundError as exc:
            self._fail(context, "GetThumbnails", grpc.StatusCode.NOT_FOUND, str(exc))
        except StoreError as exc:  # a corrupt file: this model's thumbnails only, the rest serves
            log.warning("unreadable thumbnails", extra={"model_id": request.model_id, "error": str(exc)})
            self._fail(context, "GetThumbnails", grpc.StatusCode.DATA_LOSS, "the model's thumbnails are unreadable")
        metrics.count_request(SERVICE, "GetThumbnails", "OK")
        return search_pb2.GetThumbnailsResponse(images=images, stats_version=version)

    def Sync(self, request: shard_pb2.SyncRequest, context: grpc.ServicerContext) -> shard_pb2.SyncResponse:
        result = self.state.sync()
        return shard_pb2.SyncResponse(models=result.models, added=result.added, removed=result.removed)
