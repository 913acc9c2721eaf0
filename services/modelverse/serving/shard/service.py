"""The ShardService gRPC servicer over a ShardState."""

from __future__ import annotations

import logging

import grpc
import numpy as np

from modelverse.core.reference import Method, QueryPart
from modelverse.serving import metrics
from modelverse.serving.convert import METHOD_TO_CORE, filter_is_set, model_message, passes
from modelverse.serving.messages import bounded
from modelverse.serving.rerank import QueryModelStats
from modelverse.serving.shard.state import ShardState, first_stage_of_model, first_stage_query
from modelverse.store.errors import ModelNotFoundError, StoreError
from modelverse.v1 import search_pb2, shard_pb2, shard_pb2_grpc

log = logging.getLogger("modelverse.shard")
SERVICE = "shard"


def query_vector(part: shard_pb2.WeightedVector) -> np.ndarray:
    """A query part's feature: ``values_f64`` when set, else ``values``."""
    if part.values_f64:
        if len(part.values_f64) % 8:
            raise ValueError(f"values_f64 holds {len(part.values_f64)} bytes, not whole float64 values")
        return np.frombuffer(part.values_f64, dtype="<f8")
    return np.array(part.values, dtype=np.float64)


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
        dim = self.state.store.config.dim
        try:
            if method is Method.FRECHET:
                qm = request.query_model
                query_model = QueryModelStats.from_arrays(
                    qm.id, np.array(qm.mean, dtype=np.float64),
                    np.frombuffer(qm.diag_f16, dtype="<f2").reshape(qm.dim),
                    np.frombuffer(qm.factor_f16, dtype="<f2").reshape(qm.dim, qm.rank),
                    qm.trace, self.state.store.config.eps,
                )
                parts, first_stage = None, first_stage_of_model(query_model)
            else:
                query_model = None
                parts = [QueryPart(query_vector(p), p.weight) for p in request.parts]
                if not parts:
                    raise ValueError("a query needs at least one part")
                first_stage = first_stage_query(parts, dim)
            flt = request.filter
            allowed = (lambda md: passes(md, flt)) if filter_is_set(flt) else None
            found = self.state.recall(
                first_stage, method, request.candidates, parts=parts, query_model=query_model, allowed=allowed
            )
        except ValueError as exc:
            self._fail(context, "Recall", grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        metrics.count_request(SERVICE, "Recall", "OK")
        encoder = self.state.store.config.encoder
        snap = found.snapshot
        return shard_pb2.RecallResponse(
            shard=self.state.config.shard, models=len(snap.row_of), ids=found.ids,
            first_stage_scores=found.first_stage_scores.tolist(), scores=found.scores.tolist(),
            top=[model_message(snap.metadata[m], snap.versions[m], encoder) for m in found.best(request.top_k or len(found))],
        )

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
