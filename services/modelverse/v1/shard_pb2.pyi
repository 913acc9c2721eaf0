from modelverse.v1 import search_pb2 as _search_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WeightedVector(_message.Message):
    __slots__ = ("values", "weight", "values_f64")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VALUES_F64_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    weight: float
    values_f64: bytes
    def __init__(self, values: _Optional[_Iterable[float]] = ..., weight: _Optional[float] = ..., values_f64: _Optional[bytes] = ...) -> None: ...

class QueryModel(_message.Message):
    __slots__ = ("id", "mean", "diag_f16", "factor_f16", "trace", "dim", "rank")
    ID_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    DIAG_F16_FIELD_NUMBER: _ClassVar[int]
    FACTOR_F16_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    id: str
    mean: _containers.RepeatedScalarFieldContainer[float]
    diag_f16: bytes
    factor_f16: bytes
    trace: float
    dim: int
    rank: int
    def __init__(self, id: _Optional[str] = ..., mean: _Optional[_Iterable[float]] = ..., diag_f16: _Optional[bytes] = ..., factor_f16: _Optional[bytes] = ..., trace: _Optional[float] = ..., dim: _Optional[int] = ..., rank: _Optional[int] = ...) -> None: ...

class RecallRequest(_message.Message):
    __slots__ = ("parts", "query_model", "method", "candidates", "filter", "top_k", "query_text", "text_mode", "query_embedding_f32")
    PARTS_FIELD_NUMBER: _ClassVar[int]
    QUERY_MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    QUERY_TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXT_MODE_FIELD_NUMBER: _ClassVar[int]
    QUERY_EMBEDDING_F32_FIELD_NUMBER: _ClassVar[int]
    parts: _containers.RepeatedCompositeFieldContainer[WeightedVector]
    query_model: QueryModel
    method: _search_pb2.Method
    candidates: int
    filter: _search_pb2.Filter
    top_k: int
    query_text: str
    text_mode: _search_pb2.TextMode
    query_embedding_f32: bytes
    def __init__(self, parts: _Optional[_Iterable[_Union[WeightedVector, _Mapping]]] = ..., query_model: _Optional[_Union[QueryModel, _Mapping]] = ..., method: _Optional[_Union[_search_pb2.Method, str]] = ..., candidates: _Optional[int] = ..., filter: _Optional[_Union[_search_pb2.Filter, _Mapping]] = ..., top_k: _Optional[int] = ..., query_text: _Optional[str] = ..., text_mode: _Optional[_Union[_search_pb2.TextMode, str]] = ..., query_embedding_f32: _Optional[bytes] = ...) -> None: ...

class RecallResponse(_message.Message):
    __slots__ = ("shard", "models", "ids", "first_stage_scores", "scores", "top", "text_scores", "reference_logsumexp", "reference_count", "mgf_scores", "text_top", "semantic_scores")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_STAGE_SCORES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    TEXT_SCORES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_LOGSUMEXP_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MGF_SCORES_FIELD_NUMBER: _ClassVar[int]
    TEXT_TOP_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SCORES_FIELD_NUMBER: _ClassVar[int]
    shard: int
    models: int
    ids: _containers.RepeatedScalarFieldContainer[str]
    first_stage_scores: _containers.RepeatedScalarFieldContainer[float]
    scores: _containers.RepeatedScalarFieldContainer[float]
    top: _containers.RepeatedCompositeFieldContainer[_search_pb2.Model]
    text_scores: _containers.RepeatedScalarFieldContainer[float]
    reference_logsumexp: float
    reference_count: int
    mgf_scores: _containers.RepeatedScalarFieldContainer[float]
    text_top: _containers.RepeatedCompositeFieldContainer[_search_pb2.Model]
    semantic_scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, shard: _Optional[int] = ..., models: _Optional[int] = ..., ids: _Optional[_Iterable[str]] = ..., first_stage_scores: _Optional[_Iterable[float]] = ..., scores: _Optional[_Iterable[float]] = ..., top: _Optional[_Iterable[_Union[_search_pb2.Model, _Mapping]]] = ..., text_scores: _Optional[_Iterable[float]] = ..., reference_logsumexp: _Optional[float] = ..., reference_count: _Optional[int] = ..., mgf_scores: _Optional[_Iterable[float]] = ..., text_top: _Optional[_Iterable[_Union[_search_pb2.Model, _Mapping]]] = ..., semantic_scores: _Optional[_Iterable[float]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShardDescription(_message.Message):
    __slots__ = ("shard", "shards", "dim", "rank", "eps", "encoder", "models", "index_type", "store_generation")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    EPS_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    STORE_GENERATION_FIELD_NUMBER: _ClassVar[int]
    shard: int
    shards: int
    dim: int
    rank: int
    eps: float
    encoder: str
    models: int
    index_type: str
    store_generation: int
    def __init__(self, shard: _Optional[int] = ..., shards: _Optional[int] = ..., dim: _Optional[int] = ..., rank: _Optional[int] = ..., eps: _Optional[float] = ..., encoder: _Optional[str] = ..., models: _Optional[int] = ..., index_type: _Optional[str] = ..., store_generation: _Optional[int] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("models", "added", "removed")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    models: int
    added: int
    removed: int
    def __init__(self, models: _Optional[int] = ..., added: _Optional[int] = ..., removed: _Optional[int] = ...) -> None: ...
