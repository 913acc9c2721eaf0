"""The open_clip-backed implementation of the ``Encoder`` protocol.

One class serves every open_clip model: the paper's CLIP ViT-B/32, any other open_clip
architecture with local weights, and the bundled offline encoder (a ``local-dir`` checkpoint).
Images from every entry point (PIL images of queries, uint8 pixel batches from generators) go
through the very same open_clip preprocessing transform, so a query image and an indexed sample
of identical pixels get identical features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

DEFAULT_BATCH_SIZE = 64
# "auto" = float16 on CUDA, float32 on the CPU. "bf16" runs the forward pass under bfloat16
# autocast: about 2.6x the CPU throughput on cores with AVX512-BF16 (measured on the bundled
# encoder: 58 vs 22 images/s per core). The features move: cosine to float32 0.98-0.999 on zoo
# samples (mean 0.993-0.998), 0.94 on a flat colour picture. So it is a throughput option for
# bulk indexing and benchmarks, not the default; index and query with the same precision. The
# weights, and so the fingerprint, are the same.
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class LoadedOpenClip:
    """What open_clip returns for one checkpoint, plus how it identifies itself."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    name: str
    fingerprint: str


def flatten_transparency(image: Image.Image) -> Image.Image:
    """RGB image; transparent pixels are composited onto white.

    A plain ``convert("RGB")`` keeps whatever colour transparent pixels hold (often black), so a
    transparent sketch or clip-art query would look inverted. The bundled encoder was trained on
    transparent drawings flattened onto white, and every image takes this one path.
    """
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


class OpenClipEncoder:
    """Batched, deterministic image and text encoding with an open_clip model.

    By default the model runs in float16 on CUDA and float32 on the CPU (``precision``: see
    PRECISIONS); outputs are always float32 rows, not normalised (the Protocol leaves
    normalisation to the method).
    """

    def __init__(
        self,
        loaded: LoadedOpenClip,
        device: str = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self._device = torch.device(device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        if precision == "fp16" and self._device.type != "cuda":
            raise ValueError("float16 needs a CUDA device; on the CPU use bf16 or fp32")
        if precision == "auto":
            precision = "fp16" if self._device.type == "cuda" else "fp32"
        self._precision = precision
        # bf16 keeps float32 weights and autocasts the matrix work; fp16 casts the weights.
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._autocast = precision == "bf16"
        self._model = loaded.model.to(device=self._device, dtype=self._dtype).eval()
        # channels_last: measured ~4x faster for the bundled EfficientNet tower on CPU (27 vs
        # 120 ms per image); convolution-free towers are unaffected.
        self._model.visual.to(memory_format=torch.channels_last)
        self._preprocess = loaded.preprocess
        self._tokenizer = loaded.tokenizer
        self._name = loaded.name
        self._fingerprint = loaded.fingerprint
        self.batch_size = batch_size
        with torch.inference_mode():
            probe = self._model.encode_text(self._tokenizer(["a"]).to(self._device))
        self._dim = int(probe.shape[-1])

    @property
    def name(self) -> str:
        return self._name

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def temperature(self) -> float | None:
        """exp(logit_scale), the temperature the model was trained with (CLIP: 100), if it has one.

        The paper's tau = 100 is CLIP's; the Monte Carlo and 1st + 2nd moment scores model
        exp(tau q.z), so another encoder's own temperature is its natural tau (docs/QUALITY.md)."""
        scale = getattr(self._model, "logit_scale", None)
        return None if scale is None else float(scale.detach().float().exp().item())

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The (3, H, W) float tensor the model sees for ``image``."""
        return self._preprocess(flatten_transparency(image))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = np.empty((len(images), self._dim), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = torch.stack([self.preprocess(image) for image in chunk]).to(
                memory_format=torch.channels_last
            )
            out[start : start + len(chunk)] = self._run(self._model.encode_image, batch)
        return out

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Same features as ``encode_images`` on ``Image.fromarray`` of each row."""
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
            raise TypeError(
                f"pixels must be a uint8 numpy array, not {type(pixels).__name__}"
                + (f" of {pixels.dtype}" if isinstance(pixels, np.ndarray) else "")
            )
        if pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"pixels must have shape (n, H, W, 3), not {pixels.shape}")
        # Through PIL on purpose: open_clip's transform (PIL resize, bicubic) is then the same
        # code for generator samples and for query images, byte for byte.
        return self.encode_images([Image.fromarray(row) for row in pixels])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a sequence of strings, not one string")
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            out[start : start + len(chunk)] = self._run(
                self._model.encode_text, self._tokenizer(chunk)
            )
        return out

    def _run(self, encode: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(
            self._device.type, dtype=torch.bfloat16, enabled=self._autocast
        ):
            batch = batch.to(self._device)
            if batch.is_floating_point():
                batch = batch.to(self._dtype)
            return encode(batch).float().cpu().numpy()

    def __repr__(self) -> str:
        return (
            f"OpenClipEncoder(name={self._name!r}, fingerprint={self._fingerprint[:16]}..., "
            f"dim={self._dim}, device={self._device}, precision={self._precision}, "
            f"batch_size={self.batch_size})"
        )
