from modelverse.v1 import search_pb2 as _search_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
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

class RegisterModelRequest(_message.Message):
    __slots__ = ("metadata", "features", "replace", "encoder")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    metadata: _search_pb2.Model
    features: FeatureMatrix
    replace: bool
    encoder: str
    def __init__(self, metadata: _Optional[_Union[_search_pb2.Model, _Mapping]] = ..., features: _Optional[_Union[FeatureMatrix, _Mapping]] = ..., replace: _Optional[bool] = ..., encoder: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "model_id", "state", "error", "created_at", "finished_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    model_id: str
    state: JobState
    error: str
    created_at: str
    finished_at: str
    def __init__(self, id: _Optional[str] = ..., model_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., error: _Optional[str] = ..., created_at: _Optional[str] = ..., finished_at: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("shards_synced",)
    SHARDS_SYNCED_FIELD_NUMBER: _ClassVar[int]
    shards_synced: int
    def __init__(self, shards_synced: _Optional[int] = ...) -> None: ...
