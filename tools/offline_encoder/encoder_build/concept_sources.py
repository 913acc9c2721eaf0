"""Captioned data for the concepts of the bundled zoo that the base sources barely cover.

- painted eyes in the eight colours of the zoo's eye models (amber, blue, brown, gray, grayscale,
  green, hazel, red): drawn procedurally as close-up painted eyes (skin, sclera, textured iris,
  pupil, lids, lashes, brush-like blur), never the zoo GAN's own samples;
- cat faces, in colour and in grayscale (the zoo has a grayscale cat-face GAN): crops of the
  scikit-image 'chelsea' photo and grayscale renders of the cat emoji;
- colour photos of faces: the grayscale LFW faces tinted with skin tones (the zoo's face GANs draw
  colour faces);
- sketches: line drawings (``modelverse.encoders.sketch.line_drawing``) of other samples, captioned
  "a sketch of ...". A sketch shares its original's split group, so a held-out image's sketch is
  held out too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from modelverse.encoders.painted_eyes import EYE_IRIS, SKIN_TONES, draw_painted_eye  # noqa: F401  (re-exported for the builder)
from modelverse.encoders.sketch import line_drawing


def eye_captions(colour: str) -> list[str]:
    if colour == "grayscale":
        return [
            "a grayscale painting of an eye",
            "a black and white painting of an eye",
            "a close-up of a human eye in grayscale",
        ]
    article = "an" if colour[0] in "aeiou" else "a"
    return [
        f"a painting of {article} {colour} eye",
        f"a close-up of an eye with {article} {colour} iris",
        f"{article} {colour} eye",
        f"a painted human eye, {colour}",
    ]


def sketch_captions(subject: str) -> list[str]:
    return [
        f"a sketch of {subject}",
        f"a line drawing of {subject}",
        f"a black and white drawing of {subject}",
        f"{subject}, drawn with black lines",
    ]


def sketch_of(load: Callable[[], Image.Image], seed: int) -> Callable[[], Image.Image]:
    """A loader for a line drawing of ``load()``'s image, with seeded line style."""
    rng = random.Random(seed)
    sigma = rng.uniform(2.0, 3.5)
    thickness = rng.choice((1, 2, 2))
    return lambda: line_drawing(load(), sigma=sigma, thickness=thickness)


def tint_grayscale(gray: np.ndarray, skin: tuple[int, int, int]) -> np.ndarray:
    """Map a grayscale face onto a skin-tone ramp (dark shadows to light highlights), RGB uint8."""
    g = gray.astype(np.float32)[..., None] / 255.0
    dark = np.array(skin, dtype=np.float32) * 0.25
    light = np.minimum(np.array(skin, dtype=np.float32) * 1.25, 255)
    return (dark + g * (light - dark)).clip(0, 255).astype(np.uint8)


def cat_face_crops(
    photo: np.ndarray, face_box: tuple[int, int, int, int], count: int, rng: random.Random
) -> list[tuple[Callable[[], Image.Image], bool]]:
    """Random crops (scale 0.7-1, flips) of a cat's face; every second one in grayscale.
    Returns (loader, is_grayscale) pairs."""
    base = Image.fromarray(photo).convert("RGB").crop(face_box)
    w, h = base.size
    out: list[tuple[Callable[[], Image.Image], bool]] = []
    for k in range(count):
        s = rng.uniform(0.7, 1.0)
        cw, ch = int(w * s), int(h * s)
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        flip = rng.random() < 0.5
        gray = k % 2 == 1

        def load(box=(x0, y0, x0 + cw, y0 + ch), f=flip, g=gray) -> Image.Image:
            crop = base.crop(box)
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if f else crop
            return crop.convert("L").convert("RGB") if g else crop

        out.append((load, gray))
    return out


def pick_for_sketches(indices: Sequence[int], fraction: float, rng: random.Random) -> list[int]:
    """A seeded subset (at least one when there is any) of sample indices to draw sketches of."""
    if not indices or fraction <= 0:
        return []
    count = max(1, round(fraction * len(indices)))
    return sorted(rng.sample(list(indices), min(count, len(indices))))
