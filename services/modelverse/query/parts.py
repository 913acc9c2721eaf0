"""A user's query, by modality, encoded into weighted query parts for one shared method.

Default methods follow the paper's findings: the 1st + 2nd moment score for text (a caption sits
near, not inside, the cloud of image features), the Gaussian density for images and sketches
(a real image is a point of that cloud), the first moment for raw vectors of unknown origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

import numpy as np
from PIL import Image

from modelverse.core.reference import Method, QueryPart
from modelverse.encoders.base import Encoder


class Modality(str, Enum):
    TEXT = "text"
    IMAGE = "image"
    SKETCH = "sketch"
    IMAGE_SET = "image_set"
    VECTOR = "vector"


DEFAULT_METHOD = {
    Modality.TEXT: Method.MGF,
    Modality.IMAGE: Method.GAUSSIAN,
    Modality.SKETCH: Method.GAUSSIAN,
    Modality.IMAGE_SET: Method.GAUSSIAN,
    Modality.VECTOR: Method.FIRST_MOMENT,
}


@dataclass
class Query:
    """What was asked, before encoding. Each entry carries its weight (> 0)."""

    texts: list[tuple[str, float]] = field(default_factory=list)
    images: list[tuple[Image.Image, float]] = field(default_factory=list)
    sketches: list[tuple[Image.Image, float]] = field(default_factory=list)
    image_sets: list[tuple[Sequence[Image.Image], float]] = field(default_factory=list)
    vectors: list[tuple[np.ndarray, float]] = field(default_factory=list)

    def modalities(self) -> list[Modality]:
        present = (
            (Modality.TEXT, self.texts),
            (Modality.IMAGE, self.images),
            (Modality.SKETCH, self.sketches),
            (Modality.IMAGE_SET, self.image_sets),
            (Modality.VECTOR, self.vectors),
        )
        return [modality for modality, items in present if items]

    def needs_encoder(self) -> bool:
        return any(m is not Modality.VECTOR for m in self.modalities())


def default_method(modalities: Sequence[Modality]) -> Method:
    """One method for the whole query: any picture makes it Gaussian, text alone 1st + 2nd moment."""
    if not modalities:
        raise ValueError("empty query: give a text, an image, a sketch, images or a vector")
    chosen = {DEFAULT_METHOD[m] for m in modalities}
    for method in (Method.GAUSSIAN, Method.MGF, Method.FIRST_MOMENT):
        if method in chosen:
            return method
    raise AssertionError(f"no default method for {modalities}")


def encode_query(query: Query, encoder: Encoder | None) -> list[QueryPart]:
    """Encode every part. An image set of n pictures is one part: its members each weigh w / n,
    so the set's score is the mean log-likelihood of its images (the paper's product rule, scaled
    so that a set weighs as much as a single image beside other parts)."""
    if not query.modalities():
        raise ValueError("empty query: give a text, an image, a sketch, images or a vector")
    for _, weight in (*query.texts, *query.images, *query.sketches, *query.image_sets, *query.vectors):
        if not np.isfinite(weight) or weight <= 0:
            raise ValueError(f"query weights must be positive numbers, got {weight}")
    if query.needs_encoder() and encoder is None:
        raise ValueError("text and image queries need an encoder")
    parts: list[QueryPart] = []
    if query.texts:
        features = encoder.encode_texts([text for text, _ in query.texts])
        parts += [QueryPart(f, w) for f, (_, w) in zip(features, query.texts)]
    pictures = [*query.images, *query.sketches]
    if pictures:
        features = encoder.encode_images([picture for picture, _ in pictures])
        parts += [QueryPart(f, w) for f, (_, w) in zip(features, pictures)]
    for members, weight in query.image_sets:
        if not members:
            raise ValueError("an image set needs at least one image")
        features = encoder.encode_images(list(members))
        parts += [QueryPart(f, weight / len(members)) for f in features]
    parts += [QueryPart(np.asarray(v), w) for v, w in query.vectors]
    return parts
