"""Line drawings made from images: black Canny edges on white.

People search with sketches, and no registry package ships captioned sketches, so the bundled
encoder learns them from line drawings of its training images, and the quality benchmark draws its
sketch queries from held-out images the same way. One function for both keeps them consistent.
Needs scikit-image (``pip install scikit-image``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SKETCH_SIZE = 224


def line_drawing(
    image: Image.Image, sigma: float = 2.0, thickness: int = 1, size: int = SKETCH_SIZE
) -> Image.Image:
    """A ``size`` x ``size``-ish RGB drawing: Canny edges of ``image`` as black lines on white.

    The image is first scaled so its shorter side is ``size`` (small data set images such as
    28 px Fashion-MNIST are upscaled, so edges are smooth curves rather than pixel steps).
    ``sigma`` is the Gaussian smoothing of the edge detector in pixels of that scale: larger gives
    fewer, simpler lines. ``thickness`` >= 1 widens the lines by a square dilation.
    Edge thresholds are quantiles of the gradient magnitude, so faint and contrasty images both
    give drawings; a flat image gives a blank page.
    """
    try:
        from skimage.feature import canny
        from skimage.morphology import dilation, footprint_rectangle
    except ImportError as exc:
        raise RuntimeError("line drawings need scikit-image: pip install scikit-image") from exc
    if thickness < 1:
        raise ValueError(f"thickness must be >= 1, not {thickness}")
    gray = image.convert("L")
    scale = size / min(gray.size)
    gray = gray.resize(
        (max(1, round(gray.size[0] * scale)), max(1, round(gray.size[1] * scale))),
        Image.Resampling.BICUBIC,
    )
    pixels = np.asarray(gray, dtype=np.float64) / 255.0
    if np.ptp(pixels) < 1e-3:
        edges = np.zeros(pixels.shape, dtype=bool)
    else:
        edges = canny(
            pixels, sigma=sigma, low_threshold=0.80, high_threshold=0.92, use_quantiles=True
        )
    if thickness > 1:
        edges = dilation(edges, footprint_rectangle((thickness, thickness)))
    return Image.fromarray(np.where(edges, 0, 255).astype(np.uint8)).convert("RGB")
