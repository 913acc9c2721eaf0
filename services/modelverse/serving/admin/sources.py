"""A RegisterModelRequest's generator source -> what the indexing fleet is asked to do.

The request names a generator as a manifest entry does (docs/FLEET.md): a bundled zoo model, or
a generator spec (``zoo:ID`` / ``py:MODULE:FACTORY?k=v`` / a declarative spec such as
``diffusers:DIR`` or ``onnx:FILE?latent=100``, or a plugin's; docs/MODELS.md), plus sampling
options. Problems the caller can fix are raised as ``modelverse.errors`` kinds (the kind says the
gRPC status the admin answers); problems of the model itself (its factory or sampler raises) fail the job later, with the reason.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from modelverse.errors import FailedPreconditionError, InvalidInputError, NotFoundError, PermissionDeniedError
from modelverse.fleet.adaptive import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_ROUND_SAMPLES,
    DEFAULT_SAMPLES,
    DEFAULT_TOLERANCE,
)
from modelverse.fleet.config import DEFAULT_CHUNK_SIZE
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.requests import ModelRequest
from modelverse.generators.card import ModelCardError, read_card
from modelverse.generators.model_dir import card_metadata
from modelverse.generators.registry import check_spec
from modelverse.generators.specs import DECLARATIVE_SCHEMES, GeneratorSpecError
from modelverse.serving.convert import metadata_from_message
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import admin_pb2

MAX_SAMPLES = 1_000_000
MAX_CHUNK_SIZE = 100_000


def sample_plan(options: admin_pb2.SamplingOptions) -> SamplePlan:
    """The sampling options with their defaults (zero = default), as the fleet's SamplePlan."""
    values = {"samples": options.samples, "min_samples": options.min_samples,
              "round_samples": options.round_samples, "chunk_size": options.chunk_size}
    negative = [name for name, value in values.items() if value < 0]
    if not math.isfinite(options.tolerance):  # NaN passes every comparison and ran jobs to their ceiling
        raise InvalidInputError("sampling options: tolerance must be a finite number of nats")
    if negative or options.tolerance < 0:
        raise InvalidInputError(f"sampling options must not be negative: {', '.join(negative) or 'tolerance'}")
    samples = options.samples or DEFAULT_SAMPLES
    chunk_size = options.chunk_size or DEFAULT_CHUNK_SIZE
    if samples > MAX_SAMPLES:
        raise InvalidInputError(f"at most {MAX_SAMPLES:,} samples per model, got {samples:,}")
    if chunk_size > MAX_CHUNK_SIZE:
        raise InvalidInputError(f"chunk size at most {MAX_CHUNK_SIZE:,}, got {chunk_size:,}")
    adaptive = options.adaptive if options.HasField("adaptive") else True
    try:
        if not adaptive:
            return SamplePlan(samples, chunk_size)
        return SamplePlan(
            samples,
            chunk_size,
            min_samples=min(options.min_samples or DEFAULT_MIN_SAMPLES, samples),
            round_samples=options.round_samples or DEFAULT_ROUND_SAMPLES,
            tolerance=options.tolerance or DEFAULT_TOLERANCE,
        )
    except InvalidInputError as exc:
        raise InvalidInputError(f"sampling options: {exc}") from exc


def _zoo_entry(zoo_id: str):  # type: ignore[no-untyped-def]
    try:
        from modelverse import zoo
    except ImportError as exc:
        raise FailedPreconditionError("the bundled zoo is not installed") from exc
    try:
        return zoo.get_entry(zoo_id)
    except KeyError:
        raise NotFoundError(f"no model {zoo_id!r} in the bundled zoo") from None


def _merged_metadata(given: ModelMetadata | None, message_fields: set[str], base: ModelMetadata) -> ModelMetadata:
    """The zoo entry's metadata with every field the caller set replacing the entry's."""
    values = base.to_dict()
    if given is not None:
        values.update({name: value for name, value in given.to_dict().items() if name in message_fields})
    return ModelMetadata.from_dict(values)


def _set_fields(request: admin_pb2.RegisterModelRequest) -> set[str]:
    """The metadata fields the caller gave (proto3 lists only fields with non-default values)."""
    return {descriptor.name for descriptor, _ in request.metadata.ListFields()} - {"stats_version", "encoder"}


def _check_python_spec(spec: str, importable_here: bool) -> None:
    target = spec[len("py:"):].partition("?")[0]
    module, _, factory = target.partition(":")
    if not module or not factory or not factory.isidentifier():
        raise InvalidInputError(f"generator {spec!r}: expected py:MODULE:FACTORY[?key=value&...]")
    if importable_here:  # embedded: the admin process itself imports it
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise InvalidInputError(f"generator {spec!r}: no module {module!r} importable by the admin")


def model_request(
    request: admin_pb2.RegisterModelRequest, *, allow_python: bool, importable_here: bool
) -> ModelRequest:
    """The model to index (metadata + generator spec) of a request with a generator source."""
    source = request.WhichOneof("source")
    spec = request.zoo_model.strip() if source == "zoo_model" else request.generator.strip()
    if source == "zoo_model":
        if not spec:
            raise InvalidInputError("zoo_model is empty")
        spec = f"zoo:{spec}"
    if spec.startswith("zoo:"):
        entry = _zoo_entry(spec[len("zoo:"):])
        try:
            given = metadata_from_message(request.metadata) if request.metadata.id else None
            fields = _set_fields(request)
            metadata = _merged_metadata(given, fields, entry.metadata)
        except InvalidInputError as exc:
            raise InvalidInputError(f"metadata: {exc}") from exc
        return ModelRequest(metadata, spec)
    if spec.startswith("py:"):
        if not allow_python:
            raise PermissionDeniedError(f"generator {spec!r}: py: specs run code in the indexing processes; start "
                                        "the admin with --allow-python-generators to accept them")
        _check_python_spec(spec, importable_here)
    else:
        return _declarative_request(request, spec, importable_here)
    try:
        return ModelRequest(metadata_from_message(request.metadata), spec)
    except InvalidInputError as exc:
        raise InvalidInputError(f"metadata: {exc}") from exc


def _declarative_request(request: admin_pb2.RegisterModelRequest, spec: str, importable_here: bool) -> ModelRequest:
    """A declarative or plugin spec: checked without loading (the admin stays torch-free). When the
    admin indexes in its own process, the named file or directory must exist here, and a model
    directory's card fills the metadata fields the request leaves empty."""
    try:
        parsed = check_spec(spec)
    except GeneratorSpecError as exc:
        raise InvalidInputError(f"generator: {exc}") from None
    card_fields: dict[str, object] = {}
    if importable_here and parsed.scheme in DECLARATIVE_SCHEMES:
        target = Path(parsed.target)
        if not target.exists():
            raise InvalidInputError(f"generator: {parsed.label}: no such file or directory")
        directory = target if target.is_dir() else target.parent
        try:
            card_fields = card_metadata(directory, parsed, read_card(directory))
        except ModelCardError as exc:
            raise InvalidInputError(f"generator: {exc}") from None
        card_fields.pop("id", None)
    try:
        given = metadata_from_message(request.metadata)
        base = ModelMetadata.from_dict({**card_fields, "id": given.id})
        metadata = _merged_metadata(given, _set_fields(request), base)
    except InvalidInputError as exc:
        raise InvalidInputError(f"metadata: {exc}") from exc
    return ModelRequest(metadata, str(parsed))
