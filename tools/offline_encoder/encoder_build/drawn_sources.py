"""Captioned images drawn here: coloured shapes, painted eyes, cat faces, and sketches of the
samples of the other sources (the drawing primitives are in ``concept_sources``)."""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from . import concept_sources as cs
from .registry_sources import EMOJI_FONT
from .samples import Sample, cap_samples

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
    return cap_samples(samples, limit, rng)


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
    return cap_samples(samples, limit, rng)


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


def draw_shape(
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
                lambda s=shape, c=COLOURS[colour], b=COLOURS[bg_name], sd=seed: draw_shape(
                    s, c, b, sd
                ),
            )
        )
    return samples

