"""SearchService: the public API, answered from the shards."""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable

import grpc
import numpy as np

from modelverse.core.ranking import top_k
from modelverse.core.types import Method
from modelverse.encoders.base import Encoder
from modelverse.errors import FailedPreconditionError, InvalidInputError, UnavailableError
from modelverse.serving import metrics
from modelverse.serving.convert import CORE_TO_METHOD
from modelverse.serving.errors import answer_for
from modelverse.serving.first_stage import default_candidates
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.gateway.hybrid import merge_hybrid, min_confidence, query_text_embedding, resolve_text_mode
from modelverse.serving.gateway.ids import checked_model_id, page_start, page_token
from modelverse.serving.gateway.query import Limits, ParsedQuery, parse_query
from modelverse.serving.partition import shard_of
from modelverse.v1 import search_pb2, search_pb2_grpc, shard_pb2

if TYPE_CHECKING:  # the generators package imports torch; a gateway without one needs none
    from modelverse.generators.base import Generator

log = logging.getLogger("modelverse.gateway")
SERVICE = "gateway"
DEFAULT_TIMEOUT = 10.0
MAX_PAGE_SIZE = 1000
MAX_SAMPLES = 16

GeneratorSource = Callable[[str], "Generator"]


def encoder_identity(encoder: Encoder) -> str:
    """The identity statistics records store (``name:16 hex of the fingerprint``)."""
    from modelverse.encoders import encoder_id  # imports torch: only with an encoder

    return encoder_id(encoder)


class GatewayServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(
        self,
        pool: ShardPool,
        *,
        encoder: Encoder | None = None,
        generators: GeneratorSource | None = None,
        candidates_per_shard: int | None = None,  # None: default_candidates(method)
        limits: Limits = Limits(),
    ) -> None:
        self.pool = pool
        self.encoder = encoder
        self.generators = generators
        self.candidates_per_shard = candidates_per_shard
        self.limits = limits
        self._description: shard_pb2.ShardDescription | None = None
        self._description_lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _deadline(context: grpc.ServicerContext) -> float:
        remaining = context.time_remaining()
        if remaining is None or remaining > 1e6:
            remaining = DEFAULT_TIMEOUT
        return time.monotonic() + remaining

    def describe(self, deadline: float) -> shard_pb2.ShardDescription:
        """What the shards serve (dimension, encoder); asked once, from any shard that answers."""
        with self._description_lock:
            if self._description is None:
                result = self.pool.fan_out("Describe", shard_pb2.DescribeRequest(), deadline)
                if not result.answers:
                    raise UnavailableError("no recall shard is answering")
                description = next(iter(result.answers.values()))
                if description.shards != len(self.pool):
                    raise FailedPreconditionError(
                        f"the shards are partitioned {description.shards} ways, the gateway knows {len(self.pool)}"
                    )
                if self.encoder is not None:
                    if self.encoder.dim != description.dim:
                        raise FailedPreconditionError(f"the encoder makes {self.encoder.dim}-d features, the store "
                                                      f"holds {description.dim}-d")
                    if description.encoder and description.encoder != encoder_identity(self.encoder):
                        raise FailedPreconditionError(f"the gateway's encoder is {encoder_identity(self.encoder)!r}, "
                                                      f"the store's statistics come from {description.encoder!r}")
                self._description = description
            return self._description

    def _run(self, rpc: str, context: grpc.ServicerContext, body: Callable[[float], object]) -> object:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        message = ""
        try:
            return body(self._deadline(context))
        except Exception as exc:  # a user error with its code; a bug (or a failing encoder) logged, INTERNAL
            code, message = answer_for(exc, rpc, log)
        finally:
            metrics.count_request(SERVICE, rpc, code.name)
            # Every request at DEBUG (200 QPS of INFO lines costs CPU); refusals at INFO.
            fields = {"rpc": rpc, "code": code.name, "ms": round(1000 * (time.perf_counter() - started), 3)}
            if message:
                fields["error"] = message
            (log.debug if code == grpc.StatusCode.OK else log.info)(rpc, extra=fields)
        context.abort(code, message)  # answer_for bounds it

    # -- Search -----------------------------------------------------------------------------

    def Search(self, request: search_pb2.SearchRequest, context: grpc.ServicerContext) -> search_pb2.SearchResponse:
        return self._run("Search", context, lambda deadline: self._search(request, deadline))

    def _recall_request(self, parsed: ParsedQuery, request: search_pb2.SearchRequest, deadline: float) -> shard_pb2.RecallRequest:
        candidates = request.candidates_per_shard or self.candidates_per_shard or default_candidates(parsed.method)
        if not 0 < candidates <= self.limits.max_candidates_per_shard:
            raise InvalidInputError(f"candidates_per_shard must be between 1 and {self.limits.max_candidates_per_shard}, got {candidates}")
        recall = shard_pb2.RecallRequest(
            method=CORE_TO_METHOD[parsed.method], candidates=max(candidates, parsed.top_k), filter=request.filter,
            top_k=parsed.top_k,
        )
        text_mode = resolve_text_mode(request, bool(parsed.texts))
        min_confidence(request)  # refused before any shard is asked
        if text_mode != search_pb2.CONTENT:
            recall.text_mode, recall.query_text = text_mode, " ".join(parsed.texts)
            with metrics.stage(SERVICE, "embed_text"):
                recall.query_embedding_f32 = query_text_embedding(recall.query_text)
        if parsed.method is Method.FRECHET:
            owner = shard_of(parsed.model_id, len(self.pool))
            recall.query_model.CopyFrom(
                self.pool.call(owner, "GetQueryModel", search_pb2.GetModelRequest(id=parsed.model_id), deadline)
            )
        else:
            for part in parsed.parts:
                recall.parts.add(values_f64=np.asarray(part.vector, dtype="<f8").tobytes(), weight=part.weight)
        return recall

    def _search(self, request: search_pb2.SearchRequest, deadline: float) -> search_pb2.SearchResponse:
        description = self.describe(deadline)
        with metrics.stage(SERVICE, "encode"):
            parsed = parse_query(request, description.dim, self.encoder, self.limits, deadline)
        recall = self._recall_request(parsed, request, deadline)
        with metrics.stage(SERVICE, "recall"):
            result = self.pool.fan_out("Recall", recall, deadline)
        if not result.answers:
            raise UnavailableError(f"none of the {len(self.pool)} recall shards answered")
        with metrics.stage(SERVICE, "merge"):
            response = merge_hybrid(
                result.answers.values(), parsed.top_k, parsed.method, recall.text_mode or search_pb2.CONTENT,
                min_confidence(request),
                lambda model_id: self.pool.call(shard_of(model_id, len(self.pool)), "GetModel",
                                                search_pb2.GetModelRequest(id=model_id), deadline),
            )
        response.method = CORE_TO_METHOD[parsed.method]
        if result.missing:
            response.partial = True
            response.missing_shards.extend(sorted(result.missing))
            metrics.PARTIAL_RESPONSES.labels(SERVICE).inc()
        return response

    # -- models -----------------------------------------------------------------------------

    def GetModel(self, request: search_pb2.GetModelRequest, context: grpc.ServicerContext) -> search_pb2.Model:
        def body(deadline: float) -> search_pb2.Model:
            if not request.id:
                raise InvalidInputError("a model id is required")
            checked_model_id(request.id, "id")
            return self.pool.call(shard_of(request.id, len(self.pool)), "GetModel", request, deadline)

        return self._run("GetModel", context, body)

    def ListModels(self, request: search_pb2.ListModelsRequest, context: grpc.ServicerContext) -> search_pb2.ListModelsResponse:
        def body(deadline: float) -> search_pb2.ListModelsResponse:
            size = request.page_size or 100
            if not 0 < size <= MAX_PAGE_SIZE:
                raise InvalidInputError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {request.page_size}")
            # Shards page by the last id seen; clients get it wrapped in an opaque token.
            shard_request = search_pb2.ListModelsRequest(page_size=size, page_token=page_start(request.page_token))
            result = self.pool.fan_out("ListModels", shard_request, deadline)
            if result.missing:
                raise UnavailableError(
                    f"shards {result.missing} are not answering; a listing without them would be incomplete")
            models = sorted((m for answer in result.answers.values() for m in answer.models), key=lambda m: m.id)
            more = len(models) > size or any(a.next_page_token for a in result.answers.values())
            page = models[:size]
            return search_pb2.ListModelsResponse(models=page, next_page_token=page_token(page[-1].id) if more and page else "")

        return self._run("ListModels", context, body)

    def SampleImages(self, request: search_pb2.SampleImagesRequest, context: grpc.ServicerContext) -> search_pb2.SampleImagesResponse:
        def body(deadline: float) -> search_pb2.SampleImagesResponse:
            if not 1 <= request.count <= MAX_SAMPLES:
                raise InvalidInputError(f"count must be between 1 and {MAX_SAMPLES}, got {request.count}")
            if not request.model_id:
                raise InvalidInputError("a model_id is required")
            checked_model_id(request.model_id, "model_id")
            self.pool.call(shard_of(request.model_id, len(self.pool)), "GetModel",
                           search_pb2.GetModelRequest(id=request.model_id), deadline)
            if self.generators is None:
                raise FailedPreconditionError("this gateway has no generators to sample from")
            try:
                generator = self.generators(request.model_id)
            except KeyError as exc:
                raise FailedPreconditionError(f"model {request.model_id!r} has no generator here ({exc})") from exc
            with metrics.stage(SERVICE, "sample"):
                pixels = generator.sample(request.count, int(request.seed))
            return search_pb2.SampleImagesResponse(images=[png_bytes(image) for image in pixels])

        return self._run("SampleImages", context, body)

    def GetThumbnails(self, request: search_pb2.GetThumbnailsRequest,
                      context: grpc.ServicerContext) -> search_pb2.GetThumbnailsResponse:
        def body(deadline: float) -> search_pb2.GetThumbnailsResponse:
            if not request.model_id:
                raise InvalidInputError("a model_id is required")
            checked_model_id(request.model_id, "model_id")
            return self.pool.call(shard_of(request.model_id, len(self.pool)), "GetThumbnails", request, deadline)

        return self._run("GetThumbnails", context, body)


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def merge(answers: Iterable[shard_pb2.RecallResponse], k: int) -> search_pb2.SearchResponse:
    """All shards' candidates -> the top k by the method's score (ties by id, as core ranks),
    each with its rank among all candidates by first-stage score (the same order)."""
    answers = list(answers)
    id_list = [i for answer in answers for i in answer.ids]
    response = search_pb2.SearchResponse(candidates=len(id_list))
    if not id_list:
        return response
    ids = np.array(id_list)
    first = np.array([s for a in answers for s in a.first_stage_scores], dtype=np.float32)
    scores = np.array([s for a in answers for s in a.scores], dtype=np.float64)
    models = {m.id: m for answer in answers for m in answer.top}
    position = {model_id: i for i, model_id in enumerate(id_list)}
    # first-stage rank: 1 + candidates ahead by first-stage score (float32), ties by id (ids
    # are unique across shards): each candidate's place in that one sort of all of them
    first_rank = np.empty(len(id_list), dtype=np.int64)
    first_rank[np.lexsort((ids, -first))] = np.arange(1, len(id_list) + 1)
    for hit in top_k(ids, scores, k):
        i = position[hit.id]
        response.hits.add(model=models[hit.id], score=float(scores[i]), rank=hit.rank,
                          first_stage_rank=int(first_rank[i]), first_stage_score=float(first[i]))
    return response
