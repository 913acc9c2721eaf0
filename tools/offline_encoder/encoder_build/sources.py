"""Step 1, sources: which data sources a build uses, and collecting their captioned samples.

Every source is a function ``(rng, limit) -> list[Sample]`` seeded by (seed, source name), so
adding or removing a source leaves the others' samples alone. Sketches are derived last, from
the samples of the other sources.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .drawn_sources import (
    cat_face_samples,
    coloured_shapes_samples,
    painted_eye_samples,
    sketch_samples,
)
from .registry_sources import (
    animal_shape_samples,
    digits_samples,
    emoji_samples,
    fashion_mnist_samples,
    lfw_faces_samples,
    openclipart_samples,
    skimage_photo_samples,
)
from .samples import Sample

SOURCES: dict[str, Callable[[random.Random, int | None], list[Sample]]] = {
    "openclipart": openclipart_samples,
    "emoji": emoji_samples,
    "fashion_mnist": fashion_mnist_samples,
    "animal_shapes": animal_shape_samples,
    "digits": digits_samples,
    "lfw_faces": lfw_faces_samples,
    "skimage_photos": skimage_photo_samples,
    "coloured_shapes": coloured_shapes_samples,
    "painted_eyes": painted_eye_samples,
    "cat_faces": cat_face_samples,
}
# The recipe before the zoo's concepts were added (for the before/after comparison).
BASE_SOURCES = (
    "openclipart",
    "emoji",
    "fashion_mnist",
    "animal_shapes",
    "digits",
    "lfw_faces",
    "skimage_photos",
    "coloured_shapes",
)
# Sources from PyPI wheels only (no Debian package needed): the fast test slice uses these.
PYPI_SOURCES = ("animal_shapes", "digits", "lfw_faces", "painted_eyes", "coloured_shapes")

# The card's licence line per source (the strings are those of the committed encoder_card.json).
SOURCE_LICENSES = {
    "openclipart": "Debian openclipart-png: Open Clip Art Library, public domain",
    "emoji": "Debian fonts-noto-color-emoji: SIL OFL 1.1 (font), images rendered here",
    "fashion_mnist": "Debian dataset-fashion-mnist: Zalando Research, MIT",
    "animal_shapes": "PyPI animal-shape-mnist 0.39: MIT",
    "digits": "scikit-learn load_digits (UCI optical digits), BSD-3-Clause (scikit-learn)",
    "lfw_faces": "scikit-image data.lfw_subset (Labeled Faces in the Wild subset)",
    "skimage_photos": "scikit-image sample images (see skimage/data/README: CC0 / public domain / permissive)",
    "coloured_shapes": "drawn procedurally by this script",
    "painted_eyes": "drawn procedurally by this script (concept_sources.draw_painted_eye)",
    "cat_faces": "scikit-image data.chelsea (CC0) crops; Noto emoji (SIL OFL 1.1) rendered in grayscale",
    "sketches": "line drawings of the samples of the other sources (their licences apply)",
}


def source_names(spec: str) -> list[str]:
    """The sources of ``--sources``: 'all', 'base', 'pypi' or a comma-separated list of names
    (unknown names are returned as they are: the caller reports them)."""
    if spec == "all":
        return list(SOURCES)
    if spec == "base":
        return list(BASE_SOURCES)
    if spec == "pypi":
        return list(PYPI_SOURCES)
    return [name.strip() for name in spec.split(",") if name.strip()]


@dataclass(frozen=True)
class Collection:
    """The build's samples, and how many each source gave (the card's data counts)."""

    samples: list[Sample]
    counts: dict[str, int]


def collect_samples(
    names: list[str], seed: int, max_per_source: int | None, sketches: bool
) -> Collection:
    """Every named source's samples in order, then the sketches of them (when asked)."""
    samples: list[Sample] = []
    counts: dict[str, int] = {}
    for name in names:
        got = SOURCES[name](random.Random(f"{seed}/{name}"), max_per_source)
        counts[name] = len(got)
        samples.extend(got)
        print(f"[collect] {name}: {len(got)}", flush=True)
    if sketches:
        drawn = sketch_samples(samples, random.Random(f"{seed}/sketches"))
        counts["sketches"] = len(drawn)
        samples.extend(drawn)
        print(f"[collect] sketches: {len(drawn)}", flush=True)
    return Collection(samples, counts)
