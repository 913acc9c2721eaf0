"""A user's query, by modality, encoded into weighted query parts for one shared method.

Default methods follow the paper's findings where the quality benchmark on the bundled zoo
confirms them (docs/QUALITY.md): the Gaussian density for real images and image sets (a real
image is a point of a model's cloud of image features), the 1st + 2nd moment score for text (a
caption sits near, not inside, that cloud). Sketches are not points of any model's cloud either:
under the Gaussian density they rank models by spread, not content (sketch top-1 0.04 against
0.52 for the 1st + 2nd moment score), so they take the 1st + 2nd moment score too, as does any
mix (it is never far from the best on any modality, while the Gaussian density fails on text and
sketches). Raw vectors of unknown origin take the first moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

import numpy as np
from PIL import Image

from modelverse.core.types import Method, QueryPart
from modelverse.encoders.base import Encoder
from modelverse.errors import InvalidInputError
from modelverse.query.sketches import prepare_sketch


class Modality(str, Enum):
    TEXT = "text"
    IMAGE = "image"
    SKETCH = "sketch"
    IMAGE_SET = "image_set"
    VECTOR = "vector"


PICTURES = frozenset({Modality.IMAGE, Modality.IMAGE_SET})


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
    """One method for the whole query (the CLI and the gateway both ask here): real pictures
    alone -> Gaussian density, vectors alone -> first moment, anything else -> 1st + 2nd moment."""
    present = set(modalities)
    if not present:
        raise InvalidInputError("empty query: give a text, an image, a sketch, images or a vector")
    if present <= PICTURES:
        return Method.GAUSSIAN
    if present == {Modality.VECTOR}:
        return Method.FIRST_MOMENT
    return Method.MGF


def default_method_rule(names: dict[Modality, str]) -> str:
    """``default_method`` in words, computed from it, for help texts (so they cannot drift from
    the rule): e.g. "gaussian for images and image folders alone, first_moment for vectors
    alone, mgf for any other query". ``names`` says how the caller calls each modality."""
    alone: dict[Method, list[str]] = {}
    for modality in Modality:
        alone.setdefault(default_method([modality]), []).append(names[modality])
    other = default_method(list(Modality))  # every modality at once: what a mix gets
    phrases = [f"{method.value} for {' and '.join(words)} alone" for method, words in alone.items() if method is not other]
    return ", ".join([*phrases, f"{other.value} for any other query"])


def encode_query(query: Query, encoder: Encoder | None) -> list[QueryPart]:
    """Encode every part. An image set of n pictures is one part: its members each weigh w / n,
    so the set's score is the mean log-likelihood of its images (the paper's product rule, scaled
    so that a set weighs as much as a single image beside other parts)."""
    if not query.modalities():
        raise InvalidInputError("empty query: give a text, an image, a sketch, images or a vector")
    for _, weight in (*query.texts, *query.images, *query.sketches, *query.image_sets, *query.vectors):
        if not np.isfinite(weight) or weight <= 0:
            raise InvalidInputError(f"query weights must be positive numbers, got {weight}")
    if query.needs_encoder() and encoder is None:
        raise InvalidInputError("text and image queries need an encoder")
    parts: list[QueryPart] = []
    if query.texts:
        features = encoder.encode_texts([text for text, _ in query.texts])
        parts += [QueryPart(f, w) for f, (_, w) in zip(features, query.texts)]
    # sketches are brought into the encoder's sketch domain first (query.sketches: crop, centre,
    # stroke width), as the gateway does
    pictures = [*query.images, *[(prepare_sketch(sketch), w) for sketch, w in query.sketches]]
    if pictures:
        features = encoder.encode_images([picture for picture, _ in pictures])
        parts += [QueryPart(f, w) for f, (_, w) in zip(features, pictures)]
    for members, weight in query.image_sets:
        if not members:
            raise InvalidInputError("an image set needs at least one image")
        features = encoder.encode_images(list(members))
        parts += [QueryPart(f, weight / len(members)) for f in features]
    parts += [QueryPart(np.asarray(v), w) for v, w in query.vectors]
    return parts
