"""Sketch queries brought into the encoder's sketch domain before encoding.

The bundled encoder learned sketches from ``encoders.sketch.line_drawing``: 1-2 px black lines on
white, the object filling the frame. People draw otherwise: small or off to one side, with a
thick marker, or as a filled silhouette, sometimes white on black. ``prepare_sketch`` undoes
those differences (measured in docs/QUALITY.md, unseen-style set):

1. ink is whatever differs from the page (the border's colour), so white-on-black works too;
2. crop to the ink and pad to a square with a margin, so position and size no longer matter;
3. normalise the stroke: a filled shape (strokes as wide as a good part of the object) becomes
   its outline, and lines of any width become 2 px lines through their middle (skeleton).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 224
MARGIN = 0.06  # padding around the ink, a fraction of the square's side
LINE_WIDTH = 2  # px at SIZE: the training drawings' line width
FILLED_STROKE = 0.12  # strokes wider than this fraction of the object's size make a filled shape


def _ink(gray: np.ndarray) -> np.ndarray:
    """Pixels that differ clearly from the page; the page's value is the border's median."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    page = float(np.median(border))
    return np.abs(gray - page) > 0.35 * max(abs(255.0 - page), page, 1.0)


def prepare_sketch(image: Image.Image) -> Image.Image:
    """``image`` as a ``SIZE`` px black-on-white line drawing, centred and filling the frame.
    A page without ink is returned as a blank page of that size."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    gray = np.asarray(image.convert("L"), dtype=np.float64)
    ink = _ink(gray)
    if not ink.any():
        return Image.new("RGB", (SIZE, SIZE), "white")
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    side = max(ink.shape)
    inner = round(SIZE * (1 - 2 * MARGIN))
    scaled = Image.fromarray(ink.astype(np.uint8) * 255).resize(
        (max(1, round(ink.shape[1] * inner / side)), max(1, round(ink.shape[0] * inner / side))),
        Image.Resampling.BILINEAR)
    canvas = np.zeros((SIZE, SIZE), dtype=bool)
    mask = np.asarray(scaled) > 127
    top, left = (SIZE - mask.shape[0]) // 2, (SIZE - mask.shape[1]) // 2
    canvas[top: top + mask.shape[0], left: left + mask.shape[1]] = mask

    # stroke width = twice the typical distance from the stroke's middle to its edge
    distance = ndimage.distance_transform_edt(canvas)
    middle = skeletonize(canvas)
    stroke = 2.0 * float(np.median(distance[middle])) if middle.any() else 0.0
    if stroke > FILLED_STROKE * inner:
        filled = ndimage.binary_fill_holes(canvas)
        lines = filled & ~ndimage.binary_erosion(filled, iterations=LINE_WIDTH)
    else:
        lines = ndimage.binary_dilation(middle, iterations=LINE_WIDTH // 2) if LINE_WIDTH > 1 else middle
    return Image.fromarray(np.where(lines, 0, 255).astype(np.uint8)).convert("RGB")
