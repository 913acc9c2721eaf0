"""The interface every image-text encoder of the system implements.

Statistics are only comparable with queries encoded by the same network, so an encoder names
itself (``name``) and its exact weights (``fingerprint``); both are stored with every statistics
record and checked at query time.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Encoder(Protocol):
    """Maps images and texts into one feature space of dimension ``dim``.

    Outputs are raw (not L2-normalised) float32 rows; the method normalises them where the paper
    says to. Implementations batch internally and are deterministic for a given input.
    """

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str:
        """A digest of the weights (hex), so two encoders with one name but other weights differ."""
        ...

    @property
    def dim(self) -> int: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(len(images), dim) float32. Images are preprocessed exactly as indexed samples are."""
        ...

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(n, dim) float32 for a uint8 batch (n, H, W, 3) in RGB, as generators return it."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32."""
        ...
