"""Thumbnails the fleet keeps: the first few samples of a model's chunk 0 (already drawn for its
statistics, so they cost no extra sampling), shrunk and encoded as PNG for the web page."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

THUMBNAIL_COUNT = 8
THUMBNAIL_SIDE = 96  # pixels, at most; smaller samples keep their size (no upscaling blur)
THUMBNAIL_CHUNK = 0  # the chunk every job runs, whatever its plan


def make_thumbnails(images: np.ndarray, count: int = THUMBNAIL_COUNT, side: int = THUMBNAIL_SIDE) -> list[bytes]:
    """The first ``count`` of (n, H, W, 3) uint8 samples as PNG files of at most side x side."""
    thumbnails = []
    for pixels in images[:count]:
        picture = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
        picture.thumbnail((side, side), Image.Resampling.LANCZOS)  # keeps the aspect ratio
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", optimize=True)
        thumbnails.append(buffer.getvalue())
    return thumbnails
