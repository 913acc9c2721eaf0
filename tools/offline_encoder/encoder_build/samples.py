"""The captioned sample, and the split of the samples into training and held-out sets.

A sample is one captioned image, loaded lazily. The held-out split is by group (a photo's crops,
a face and its mirror never straddle it); for Fashion-MNIST, animal-shape-mnist and the digits it
is the zoo's own held-out split, so the encoder never trains on the zoo's benchmark queries.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from modelverse.zoo.split import HELDOUT_PATH

HELD_OUT_FRACTION = 0.10
# The zoo's held-out split (10% of every class of Fashion-MNIST, animal-shape-mnist and the
# digits). The quality benchmark queries the zoo with those images, so the encoder must never
# train on them either: for these data sets the encoder's held-out split IS the zoo's.
ZOO_HELDOUT = HELDOUT_PATH


@dataclass
class Sample:
    """One captioned image, loaded lazily (clip-art PNGs are large; keep only paths/arrays)."""

    source: str
    group: str  # samples of one group (e.g. crops of one photo) share a split
    captions: list[str]  # captions[0] is canonical (used for evaluation); others augment
    load: Callable[[], Image.Image]
    subject: str | None = None  # what it shows, for sketch captions ("a shirt"); None: no sketch
    held: bool | None = None  # fixed side of the split (the zoo's held-out images); None: by group
    split_source: str | None = None  # sketches split with their original's (source, group)


def rgb_on_white(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white: clip-art and emoji are transparent PNGs, and a plain
    convert('RGB') would show their (often black) hidden pixels."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
        canvas.alpha_composite(img)
        return canvas.convert("RGB")
    return img.convert("RGB")


def gray_array_loader(arr: np.ndarray) -> Callable[[], Image.Image]:
    """Loader for a small uint8 grayscale array (MNIST-like); upscaled by the preprocess."""
    return lambda: Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")


_ZOO_SPLIT: dict | None = None


def zoo_heldout(dataset: str) -> set[int]:
    """Indices of `dataset` that the zoo holds out (services/modelverse/zoo/heldout.json)."""
    global _ZOO_SPLIT
    if _ZOO_SPLIT is None:
        if not ZOO_HELDOUT.is_file():
            raise FileNotFoundError(
                f"{ZOO_HELDOUT} missing: the encoder must hold out the zoo's held-out images"
            )
        _ZOO_SPLIT = json.loads(ZOO_HELDOUT.read_text())["datasets"]
    return {int(i) for indices in _ZOO_SPLIT[dataset]["heldout"].values() for i in indices}


def split_aligned(
    indices: np.ndarray, held_set: set[int], per_class: int
) -> list[tuple[int, bool]]:
    """First `per_class` training indices and about a ninth as many held-out ones (so ~10% of
    the source is held out), in data set order: (index, held)."""
    train = [int(i) for i in indices if int(i) not in held_set][:per_class]
    held = [int(i) for i in indices if int(i) in held_set][: max(1, round(per_class / 9))]
    return [(i, False) for i in train] + [(i, True) for i in held]


def cap_samples(samples: list[Sample], limit: int | None, rng: random.Random) -> list[Sample]:
    """Random subset of at most `limit` samples (for the fast test slice)."""
    if limit is None or len(samples) <= limit:
        return samples
    return rng.sample(samples, limit)

def split_held_out(samples: Sequence[Sample], seed: int) -> tuple[list[int], list[int]]:
    """10% of each source held out, by group (a group never straddles the split).

    Samples with a fixed side (`held` set: the zoo's held-out images) go to that side; a
    sketch is split with its original's source and group, so both land on the same side."""
    train: list[int] = []
    held: list[int] = []
    by_source: dict[str, dict[str, list[int]]] = {}
    for i, s in enumerate(samples):
        if s.held is not None:
            (held if s.held else train).append(i)
            continue
        by_source.setdefault(s.split_source or s.source, {}).setdefault(s.group, []).append(i)
    for source in sorted(by_source):
        groups = sorted(by_source[source])
        # one generator per source: adding or removing a source leaves the others' splits alone
        random.Random(f"{seed}/{source}").shuffle(groups)
        n_held = max(1, round(HELD_OUT_FRACTION * len(groups))) if len(groups) > 1 else 0
        for g_i, g in enumerate(groups):
            (held if g_i < n_held else train).extend(by_source[source][g])
    return sorted(train), sorted(held)


def sample_keys(samples: Sequence[Sample]) -> list[str]:
    """A stable key per sample (source, group, position in group, caption): the feature cache's
    index, so runs on overlapping sample sets (ablations) reuse features."""
    seen: dict[tuple[str, str], int] = {}
    keys = []
    for s in samples:
        k = seen.get((s.source, s.group), 0)
        seen[(s.source, s.group)] = k + 1
        keys.append(f"{s.source}|{s.group}|{k}|{s.captions[0]}")
    return keys

