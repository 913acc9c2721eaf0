from modelverse.v1 import search_pb2 as _search_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    PENDING: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
PENDING: JobState
RUNNING: JobState
SUCCEEDED: JobState
FAILED: JobState

class FeatureMatrix(_message.Message):
    __slots__ = ("rows", "dim", "float32_le")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    FLOAT32_LE_FIELD_NUMBER: _ClassVar[int]
    rows: int
    dim: int
    float32_le: bytes
    def __init__(self, rows: _Optional[int] = ..., dim: _Optional[int] = ..., float32_le: _Optional[bytes] = ...) -> None: ...

class SamplingOptions(_message.Message):
    __slots__ = ("samples", "adaptive", "min_samples", "round_samples", "tolerance", "chunk_size")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ROUND_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    samples: int
    adaptive: bool
    min_samples: int
    round_samples: int
    tolerance: float
    chunk_size: int
    def __init__(self, samples: _Optional[int] = ..., adaptive: _Optional[bool] = ..., min_samples: _Optional[int] = ..., round_samples: _Optional[int] = ..., tolerance: _Optional[float] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("metadata", "features", "zoo_model", "generator", "replace", "encoder", "sampling")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ZOO_MODEL_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    metadata: _search_pb2.Model
    features: FeatureMatrix
    zoo_model: str
    generator: str
    replace: bool
    encoder: str
    sampling: SamplingOptions
    def __init__(self, metadata: _Optional[_Union[_search_pb2.Model, _Mapping]] = ..., features: _Optional[_Union[FeatureMatrix, _Mapping]] = ..., zoo_model: _Optional[str] = ..., generator: _Optional[str] = ..., replace: _Optional[bool] = ..., encoder: _Optional[str] = ..., sampling: _Optional[_Union[SamplingOptions, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "model_id", "state", "error", "created_at", "finished_at", "chunks_done", "chunks_planned", "chunks_max", "samples_done", "samples_used", "stats_version", "generator", "notice")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DONE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_PLANNED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_MAX_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_DONE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_USED_FIELD_NUMBER: _ClassVar[int]
    STATS_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    id: str
    model_id: str
    state: JobState
    error: str
    created_at: str
    finished_at: str
    chunks_done: int
    chunks_planned: int
    chunks_max: int
    samples_done: int
    samples_used: int
    stats_version: int
    generator: str
    notice: str
    def __init__(self, id: _Optional[str] = ..., model_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., error: _Optional[str] = ..., created_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., chunks_done: _Optional[int] = ..., chunks_planned: _Optional[int] = ..., chunks_max: _Optional[int] = ..., samples_done: _Optional[int] = ..., samples_used: _Optional[int] = ..., stats_version: _Optional[int] = ..., generator: _Optional[str] = ..., notice: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RemoveModelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RemoveModelResponse(_message.Message):
    __slots__ = ("shards_synced", "jobs_cancelled")
    SHARDS_SYNCED_FIELD_NUMBER: _ClassVar[int]
    JOBS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    shards_synced: int
    jobs_cancelled: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, shards_synced: _Optional[int] = ..., jobs_cancelled: _Optional[_Iterable[str]] = ...) -> None: ...
