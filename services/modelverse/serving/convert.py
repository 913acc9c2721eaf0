"""Conversions between the store's records and the API's messages."""

from __future__ import annotations

from modelverse.core.types import Method
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import search_pb2

METHOD_TO_CORE = {
    search_pb2.FIRST_MOMENT: Method.FIRST_MOMENT,
    search_pb2.MGF: Method.MGF,
    search_pb2.GAUSSIAN: Method.GAUSSIAN,
    search_pb2.FRECHET: Method.FRECHET,
}
CORE_TO_METHOD = {core: proto for proto, core in METHOD_TO_CORE.items()}


def model_message(metadata: ModelMetadata, stats_version: int = 0, encoder: str = "") -> search_pb2.Model:
    return search_pb2.Model(
        id=metadata.id,
        name=metadata.name,
        description=metadata.description,
        tags=list(metadata.tags),
        family=metadata.family,
        resolution=metadata.resolution or 0,
        creator=metadata.creator,
        license=metadata.license,
        source=metadata.source,
        stats_version=stats_version,
        encoder=encoder,
    )


def metadata_from_message(model: search_pb2.Model) -> ModelMetadata:
    """Raises ValueError (id, tags, lengths) as the store's own validation does."""
    return ModelMetadata(
        id=model.id,
        name=model.name,
        description=model.description,
        tags=tuple(model.tags),
        family=model.family,
        resolution=model.resolution or None,
        creator=model.creator,
        license=model.license,
        source=model.source,
    )


def passes(metadata: ModelMetadata, flt: search_pb2.Filter) -> bool:
    """Whether a model passes a metadata filter (every field that is set)."""
    if flt.tags and not set(t.strip().lower() for t in flt.tags) <= set(metadata.tags):
        return False
    if flt.families and metadata.family not in set(flt.families):
        return False
    resolution = metadata.resolution or 0
    if flt.min_resolution and resolution < flt.min_resolution:
        return False
    if flt.max_resolution and (not resolution or resolution > flt.max_resolution):
        return False
    return True


def filter_is_set(flt: search_pb2.Filter) -> bool:
    return bool(flt.tags or flt.families or flt.min_resolution or flt.max_resolution)
