"""From a SearchRequest to what the shards score: validated, encoded query parts and a method.

The default method per modality and the rules for mixing parts are in search.proto (Method)
and docs/SERVING.md; the combination rule itself (sum of weighted per-part scores under one
method) is core's, docs/METHOD.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from modelverse.core.scores import normalize_query
from modelverse.core.types import Method, QueryPart
from modelverse.encoders.base import Encoder
from modelverse.errors import DeadlineExceededError, FailedPreconditionError, InvalidInputError, ResourceExhaustedError
from modelverse.query import images
from modelverse.query import parts as query_parts
from modelverse.query.parts import Modality
from modelverse.query.sketches import prepare_sketch
from modelverse.serving.convert import METHOD_TO_CORE
from modelverse.serving.gateway.ids import checked_model_id
from modelverse.v1 import search_pb2

TEXT, IMAGE, SKETCH, VECTOR, MODEL, IMAGE_SET = "text", "image", "sketch", "vector", "model_id", "image_set"


@dataclass(frozen=True)
class Limits:
    max_top_k: int = 1000
    max_parts: int = 64
    max_candidates_per_shard: int = 10_000
    max_image_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_text_chars: int = 2000
    # The work one request may ask of a gateway: images decoded and encoded (image sets
    # included; 256 tiny PNGs cost 11 s of CPU) and their decoded pixels in all (20 PNGs of
    # 16 KB that decode to 4096 x 4096 each took 1.3 GB).
    max_images: int = 64
    max_request_pixels: int = 32 * 1024 * 1024


@dataclass
class ParsedQuery:
    method: Method
    top_k: int
    parts: list[QueryPart] = field(default_factory=list)  # vector methods
    model_id: str | None = None  # FRECHET
    kinds: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()  # the text parts, for the metadata search (issue 17)


KIND_MODALITY = {TEXT: Modality.TEXT, IMAGE: Modality.IMAGE, SKETCH: Modality.SKETCH, IMAGE_SET: Modality.IMAGE_SET,
                 VECTOR: Modality.VECTOR}


def default_method(kinds: set[str]) -> Method:
    """A stored model alone is a similarity query (Frechet); otherwise the CLI's rule
    (query.parts.default_method), so both front ends rank a query the same way."""
    if kinds == {MODEL}:
        return Method.FRECHET
    if MODEL in kinds:  # a stored model beside other parts: its mean is one more vector, scored by MGF
        return Method.MGF
    return query_parts.default_method([KIND_MODALITY[k] for k in kinds])


def _weight(part: search_pb2.QueryPart, index: int) -> float:
    if not part.HasField("weight"):
        return 1.0
    weight = float(part.weight)
    if not math.isfinite(weight) or weight <= 0:
        raise InvalidInputError(f"query part {index}: weight must be positive and finite, got {weight}")
    return weight


def decode_image(data: bytes, where: str, limits: Limits, pixels_left: int | None = None) -> Image.Image:
    """query.images' decoding (the CLI's: transparency onto white), with the service's limits
    and status codes: too large is RESOURCE_EXHAUSTED, unreadable INVALID_ARGUMENT.

    ``pixels_left``: what remains of the request's pixel budget; an image over it is refused
    from its header, before it is decoded."""
    max_pixels = limits.max_image_pixels if pixels_left is None else min(limits.max_image_pixels, pixels_left)
    try:
        return images.decode_image(data, label=where, max_pixels=max_pixels, max_bytes=limits.max_image_bytes)
    except images.ImageTooLarge as exc:
        if max_pixels < limits.max_image_pixels:
            raise ResourceExhaustedError(f"{where}: the request's images hold more than the "
                                         f"{limits.max_request_pixels} pixels allowed in all; send fewer or "
                                         "smaller images") from exc
        raise ResourceExhaustedError(str(exc)) from exc
    except images.ImageError as exc:
        raise InvalidInputError(str(exc)) from exc


def count_images(request: search_pb2.SearchRequest) -> int:
    count = 0
    for part in request.parts:
        kind = part.WhichOneof("content")
        count += len(part.image_set.images) if kind == IMAGE_SET else int(kind in (IMAGE, SKETCH))
    return count


def check_deadline(deadline: float | None, doing: str) -> None:
    """Stop a request's own work once its caller has given up on it."""
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceededError(f"the deadline expired while {doing}")


def parse_query(
    request: search_pb2.SearchRequest, dim: int, encoder: Encoder | None, limits: Limits,
    deadline: float | None = None,
) -> ParsedQuery:
    """Validate and encode a search request; raises a ``modelverse.errors`` kind with the documented code.

    ``deadline`` (monotonic seconds): decoding and encoding stop when it passes."""
    if request.method not in METHOD_TO_CORE and request.method != search_pb2.METHOD_UNSPECIFIED:
        raise InvalidInputError(f"unknown method {request.method}; use one of FIRST_MOMENT, MGF, GAUSSIAN, FRECHET")
    top_k = request.top_k if request.HasField("top_k") else 10
    if not 1 <= top_k <= limits.max_top_k:
        raise InvalidInputError(f"top_k must be between 1 and {limits.max_top_k}, got {top_k}")
    if not request.parts:
        raise InvalidInputError("the query is empty: give at least one part (text, image, sketch, vector, model id, image set)")
    if len(request.parts) > limits.max_parts:
        raise InvalidInputError(f"at most {limits.max_parts} query parts, got {len(request.parts)}")
    image_count = count_images(request)
    if image_count > limits.max_images:
        raise InvalidInputError(f"at most {limits.max_images} images per request (image sets included), got {image_count}")
    pixels_left = limits.max_request_pixels

    kinds: list[str] = []
    texts: list[tuple[int, str, float]] = []
    images: list[tuple[int, Image.Image, float]] = []
    vectors: list[tuple[int, np.ndarray, float]] = []
    model_ids: list[str] = []
    for i, part in enumerate(request.parts, start=1):
        kind = part.WhichOneof("content")
        if kind is None:
            raise InvalidInputError(f"query part {i} is empty")
        kinds.append(kind)
        weight = _weight(part, i)
        if kind == TEXT:
            text = part.text.strip()
            if not text:
                raise InvalidInputError(f"query part {i}: empty text")
            if len(text) > limits.max_text_chars:
                raise InvalidInputError(f"query part {i}: text of {len(text)} characters is over {limits.max_text_chars}")
            texts.append((i, text, weight))
        elif kind in (IMAGE, SKETCH):
            check_deadline(deadline, "decoding the query's images")
            image = decode_image(getattr(part, kind), f"query part {i} ({kind})", limits, pixels_left)
            pixels_left -= image.width * image.height
            images.append((i, prepare_sketch(image) if kind == SKETCH else image, weight))
        elif kind == IMAGE_SET:
            members = list(part.image_set.images)
            if not members:
                raise InvalidInputError(f"query part {i}: empty image set")
            for j, data in enumerate(members, start=1):
                check_deadline(deadline, "decoding the query's images")
                image = decode_image(data, f"query part {i} (image set, image {j})", limits, pixels_left)
                pixels_left -= image.width * image.height
                images.append((i, image, weight / len(members)))
        elif kind == VECTOR:
            values = np.array(part.vector.values, dtype=np.float64)
            if values.size == 0:
                raise InvalidInputError(f"query part {i}: empty vector")
            try:
                normalize_query(values, dim)
            except InvalidInputError as exc:
                raise InvalidInputError(f"query part {i}: {exc}") from exc
            vectors.append((i, values, weight))
        elif kind == MODEL:
            if not part.model_id:
                raise InvalidInputError(f"query part {i}: empty model id")
            model_ids.append(checked_model_id(part.model_id, f"query part {i}"))

    kind_set = set(kinds)
    method = METHOD_TO_CORE.get(request.method) or default_method(kind_set)
    if method is Method.FRECHET:
        if kind_set != {MODEL} or len(model_ids) != 1:
            raise InvalidInputError("FRECHET takes exactly one part, a stored model id")
        return ParsedQuery(method, top_k, model_id=model_ids[0], kinds=tuple(kinds))
    if model_ids:
        raise InvalidInputError(f"a model-id part is scored with FRECHET only, not {method.name}")

    encoded: list[tuple[int, np.ndarray, float]] = list(vectors)
    if texts or images:
        if encoder is None:
            raise FailedPreconditionError(
                "this gateway has no encoder: send raw feature vectors or model ids, or start it with --encoder"
            )
        if texts:
            rows = encoder.encode_texts([t for _, t, _ in texts])
            encoded += [(i, rows[n], w) for n, (i, _, w) in enumerate(texts)]
        if images:
            check_deadline(deadline, "encoding the query")
            rows = encoder.encode_images([img for _, img, _ in images])
            encoded += [(i, rows[n], w) for n, (i, _, w) in enumerate(images)]
    encoded.sort(key=lambda item: item[0])  # the request's part order
    return ParsedQuery(method, top_k, parts=[QueryPart(v, w) for _, v, w in encoded], kinds=tuple(kinds),
                       texts=tuple(t for _, t, _ in texts))
