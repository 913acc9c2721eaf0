from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Method(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METHOD_UNSPECIFIED: _ClassVar[Method]
    FIRST_MOMENT: _ClassVar[Method]
    MGF: _ClassVar[Method]
    GAUSSIAN: _ClassVar[Method]
    FRECHET: _ClassVar[Method]

class TextMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_MODE_UNSPECIFIED: _ClassVar[TextMode]
    CONTENT: _ClassVar[TextMode]
    METADATA: _ClassVar[TextMode]
    HYBRID: _ClassVar[TextMode]
METHOD_UNSPECIFIED: Method
FIRST_MOMENT: Method
MGF: Method
GAUSSIAN: Method
FRECHET: Method
TEXT_MODE_UNSPECIFIED: TextMode
CONTENT: TextMode
METADATA: TextMode
HYBRID: TextMode

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class ImageSet(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class QueryPart(_message.Message):
    __slots__ = ("text", "image", "sketch", "vector", "model_id", "image_set", "weight")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SKETCH_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SET_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: bytes
    sketch: bytes
    vector: Vector
    model_id: str
    image_set: ImageSet
    weight: float
    def __init__(self, text: _Optional[str] = ..., image: _Optional[bytes] = ..., sketch: _Optional[bytes] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., model_id: _Optional[str] = ..., image_set: _Optional[_Union[ImageSet, _Mapping]] = ..., weight: _Optional[float] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("tags", "families", "min_resolution", "max_resolution")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    MIN_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    MAX_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    families: _containers.RepeatedScalarFieldContainer[str]
    min_resolution: int
    max_resolution: int
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., families: _Optional[_Iterable[str]] = ..., min_resolution: _Optional[int] = ..., max_resolution: _Optional[int] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("id", "name", "description", "tags", "family", "resolution", "creator", "license", "source", "stats_version", "encoder", "samples")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    family: str
    resolution: int
    creator: str
    license: str
    source: str
    stats_version: int
    encoder: str
    samples: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., family: _Optional[str] = ..., resolution: _Optional[int] = ..., creator: _Optional[str] = ..., license: _Optional[str] = ..., source: _Optional[str] = ..., stats_version: _Optional[int] = ..., encoder: _Optional[str] = ..., samples: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("parts", "top_k", "method", "filter", "candidates_per_shard", "text_mode", "min_confidence")
    PARTS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_PER_SHARD_FIELD_NUMBER: _ClassVar[int]
    TEXT_MODE_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    parts: _containers.RepeatedCompositeFieldContainer[QueryPart]
    top_k: int
    method: Method
    filter: Filter
    candidates_per_shard: int
    text_mode: TextMode
    min_confidence: float
    def __init__(self, parts: _Optional[_Iterable[_Union[QueryPart, _Mapping]]] = ..., top_k: _Optional[int] = ..., method: _Optional[_Union[Method, str]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., candidates_per_shard: _Optional[int] = ..., text_mode: _Optional[_Union[TextMode, str]] = ..., min_confidence: _Optional[float] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("model", "score", "rank", "first_stage_rank", "first_stage_score", "confidence", "text_score", "semantic_score")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    FIRST_STAGE_RANK_FIELD_NUMBER: _ClassVar[int]
    FIRST_STAGE_SCORE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_SCORE_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SCORE_FIELD_NUMBER: _ClassVar[int]
    model: Model
    score: float
    rank: int
    first_stage_rank: int
    first_stage_score: float
    confidence: float
    text_score: float
    semantic_score: float
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., first_stage_rank: _Optional[int] = ..., first_stage_score: _Optional[float] = ..., confidence: _Optional[float] = ..., text_score: _Optional[float] = ..., semantic_score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "method", "partial", "missing_shards", "candidates", "text_mode")
    HITS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TEXT_MODE_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    method: Method
    partial: bool
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    candidates: int
    text_mode: TextMode
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., method: _Optional[_Union[Method, str]] = ..., partial: _Optional[bool] = ..., missing_shards: _Optional[_Iterable[int]] = ..., candidates: _Optional[int] = ..., text_mode: _Optional[_Union[TextMode, str]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SampleImagesRequest(_message.Message):
    __slots__ = ("model_id", "count", "seed")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    count: int
    seed: int
    def __init__(self, model_id: _Optional[str] = ..., count: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class SampleImagesResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetThumbnailsRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class GetThumbnailsResponse(_message.Message):
    __slots__ = ("images", "stats_version")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    STATS_VERSION_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    stats_version: int
    def __init__(self, images: _Optional[_Iterable[bytes]] = ..., stats_version: _Optional[int] = ...) -> None: ...
