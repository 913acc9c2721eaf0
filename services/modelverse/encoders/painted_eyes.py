"""Procedural close-up painted eyes in the colours of the bundled zoo's eye models.

No registry package ships captioned paintings of eyes, so the bundled encoder learns the zoo's
eight eye colours from these drawings (tools/offline_encoder), and the quality benchmark draws
its painted-eye queries from the seeds the encoder held out. One function serves both.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Iris colours of the zoo's painted-eye classes (omniart-eye-generator's class names).
EYE_IRIS: dict[str, tuple[int, int, int]] = {
    "amber": (205, 140, 35),
    "blue": (55, 105, 200),
    "brown": (95, 55, 25),
    "gray": (135, 140, 145),
    "grayscale": (110, 110, 110),
    "green": (60, 145, 70),
    "hazel": (135, 110, 45),
    "red": (190, 30, 40),
}
SKIN_TONES = (
    (240, 205, 180),
    (225, 180, 150),
    (200, 150, 115),
    (165, 115, 80),
    (120, 80, 55),
    (90, 60, 40),
)


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.randint(-amount, amount), 0, 255)) for c in rgb)  # type: ignore[return-value]


def draw_painted_eye(colour: str, seed: int, size: int = 128) -> Image.Image:
    """A close-up painted eye whose iris is ``colour`` (a key of EYE_IRIS).

    'grayscale' draws a grey iris and removes all colour; 'red' also casts the picture red, as the
    zoo's red class does. Layout, skin tone, iris size, gaze, lid opening and brush blur vary.
    """
    rng = random.Random(seed)
    skin = _jitter(rng.choice(SKIN_TONES), rng, 15)
    img = Image.new("RGB", (size, size), skin)
    draw = ImageDraw.Draw(img)
    # soft shading on the skin: a few translucent darker blobs
    for _ in range(4):
        r = rng.uniform(0.2, 0.5) * size
        cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        shade = _jitter(tuple(int(c * 0.8) for c in skin), rng, 10)  # type: ignore[arg-type]
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=shade)
    img = img.filter(ImageFilter.GaussianBlur(size / 10))
    draw = ImageDraw.Draw(img)
    cx, cy = size / 2 + rng.uniform(-0.08, 0.08) * size, size / 2 + rng.uniform(-0.08, 0.08) * size
    half_w = rng.uniform(0.38, 0.54) * size
    open_h = rng.uniform(0.14, 0.28) * size
    # almond outline: upper and lower lid curves
    n = 24
    upper = [
        (cx - half_w + 2 * half_w * k / n, cy - open_h * math.sin(math.pi * k / n)) for k in range(n + 1)
    ]
    lower = [
        (cx + half_w - 2 * half_w * k / n, cy + 0.7 * open_h * math.sin(math.pi * k / n))
        for k in range(n + 1)
    ]
    sclera = _jitter((235, 230, 220), rng, 12)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(upper + lower, fill=255)
    eye = Image.new("RGB", (size, size), sclera)
    eye_draw = ImageDraw.Draw(eye)
    iris_r = open_h * rng.uniform(1.0, 1.3)
    ix = cx + rng.uniform(-0.35, 0.35) * half_w
    iy = cy + rng.uniform(-0.1, 0.2) * open_h
    iris = _jitter(EYE_IRIS[colour], rng, 18)
    dark = tuple(int(c * 0.45) for c in iris)
    eye_draw.ellipse((ix - iris_r, iy - iris_r, ix + iris_r, iy + iris_r), fill=dark)
    eye_draw.ellipse(
        (ix - 0.88 * iris_r, iy - 0.88 * iris_r, ix + 0.88 * iris_r, iy + 0.88 * iris_r), fill=iris
    )
    for _ in range(18):  # radial streaks of the iris
        a = rng.uniform(0, 2 * math.pi)
        r0, r1 = 0.35 * iris_r, rng.uniform(0.6, 0.88) * iris_r
        streak = _jitter(tuple(int(c * rng.uniform(0.6, 1.3)) for c in iris), rng, 10)  # type: ignore[arg-type]
        eye_draw.line(
            (ix + r0 * math.cos(a), iy + r0 * math.sin(a), ix + r1 * math.cos(a), iy + r1 * math.sin(a)),
            fill=streak,
            width=max(1, size // 64),
        )
    pupil_r = iris_r * rng.uniform(0.3, 0.45)
    eye_draw.ellipse((ix - pupil_r, iy - pupil_r, ix + pupil_r, iy + pupil_r), fill=(10, 8, 8))
    hl = pupil_r * 0.5
    hx, hy = ix + rng.choice((-1, 1)) * pupil_r * 0.8, iy - pupil_r * 0.8
    eye_draw.ellipse((hx - hl / 2, hy - hl / 2, hx + hl / 2, hy + hl / 2), fill=(250, 250, 250))
    img.paste(eye, (0, 0), mask)
    draw = ImageDraw.Draw(img)
    lid = _jitter((40, 25, 20), rng, 15)
    draw.line(upper, fill=lid, width=max(2, size // 40))
    draw.line(lower, fill=tuple(int(c * 0.8) for c in skin), width=max(1, size // 80))
    for k in range(2, n - 1, 2):  # lashes on the upper lid
        x0, y0 = upper[k]
        draw.line((x0, y0, x0 + rng.uniform(-3, 3), y0 - rng.uniform(4, 10) * size / 128), fill=lid, width=1)
    if rng.random() < 0.6:  # eyebrow
        by = cy - open_h - rng.uniform(0.12, 0.25) * size
        brow = [(cx - half_w + 2 * half_w * k / n, by - 0.08 * size * math.sin(math.pi * k / n)) for k in range(n + 1)]
        draw.line(brow, fill=_jitter((60, 40, 30), rng, 20), width=max(3, size // 20))
    # painterly finish: blur, then colour noise in blocks like brush strokes
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.8)))
    arr = np.asarray(img, dtype=np.float32)
    noise_rng = np.random.default_rng(seed)
    block = rng.choice((4, 8))
    coarse = noise_rng.normal(0, rng.uniform(6, 16), (size // block, size // block, 3))
    arr += np.kron(coarse, np.ones((block, block, 1)))[:size, :size]
    if colour == "red":
        arr = arr * np.array([1.15, 0.75, 0.75]) + np.array([30, 0, 0])
    out = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    if colour == "grayscale":
        out = out.convert("L").convert("RGB")
    return out
