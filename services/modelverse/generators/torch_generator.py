"""Adapter from any torch nn.Module generator to the Generator interface.

Latents come from a torch.Generator on the CPU seeded with the call's seed and are drawn for all
n images before any batching, so an image depends only on (seed, its position), never on the
batch size or the device (CPU and CUDA agree up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class LatentSpec:
    """What a generator module takes.

    shape: one latent's shape, without the batch dimension (e.g. (100,) or (100, 1, 1)).
    distribution: "normal" (standard normal) or "uniform" (uniform on [-1, 1]).
    class_label: for a class-conditional module, the class every sample gets; the module is
        then called as module(latents, labels), labels being class indices (label_format
        "index") or one-hot rows of num_classes (label_format "onehot").
    """

    shape: tuple[int, ...]
    distribution: Literal["normal", "uniform"] = "normal"
    class_label: int | None = None
    num_classes: int | None = None
    label_format: Literal["index", "onehot"] = "index"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if not self.shape or any(s <= 0 for s in self.shape):
            raise ValueError(f"latent shape must be non-empty and positive, got {self.shape}")
        if self.distribution not in ("normal", "uniform"):
            raise ValueError(
                f"latent distribution must be 'normal' or 'uniform', got {self.distribution!r}"
            )
        if self.label_format not in ("index", "onehot"):
            raise ValueError(f"label_format must be 'index' or 'onehot', got {self.label_format!r}")
        if self.class_label is not None:
            if self.num_classes is None or not 0 <= self.class_label < self.num_classes:
                raise ValueError(
                    f"class_label {self.class_label} needs num_classes > class_label, "
                    f"got num_classes={self.num_classes}"
                )

    def draw(self, n: int, seed: int) -> torch.Tensor:
        rng = torch.Generator(device="cpu").manual_seed(seed)
        if self.distribution == "normal":
            return torch.randn((n, *self.shape), generator=rng)
        return torch.rand((n, *self.shape), generator=rng) * 2.0 - 1.0

    def labels(self, n: int, device: torch.device) -> torch.Tensor | None:
        if self.class_label is None:
            return None
        index = torch.full((n,), self.class_label, dtype=torch.long, device=device)
        if self.label_format == "index":
            return index
        return nn.functional.one_hot(index, self.num_classes).float()


class TorchGenerator:
    """Generator over an nn.Module returning (batch, 1 or 3, resolution, resolution) images.

    output_range is the module's pixel range: (-1, 1) for tanh outputs or (0, 1) for sigmoid
    outputs. Grayscale outputs are repeated into RGB. ``name`` says in errors which model failed
    (a file, for exported models); ``dtype`` is the module's (float16 for half precision: the
    latents are drawn in float32 and cast, so they are the same at every precision).
    """

    def __init__(
        self,
        module: nn.Module,
        latent: LatentSpec,
        *,
        resolution: int,
        output_range: tuple[float, float] = (-1.0, 1.0),
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        name: str = "generator module",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if resolution <= 0:
            raise ValueError(f"resolution must be positive, got {resolution}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        low, high = (float(v) for v in output_range)
        if not high > low:
            raise ValueError(
                f"output_range must be (low, high) with high > low, got {output_range}"
            )
        self.device = torch.device(device)
        self.dtype = dtype
        self.name = name
        self.module = module.to(self.device, dtype).eval()
        self.latent = latent
        self.batch_size = batch_size
        self.output_range = (low, high)
        self._resolution = resolution

    @property
    def resolution(self) -> int:
        return self._resolution

    def sample(self, n: int, seed: int) -> np.ndarray:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if (
            isinstance(seed, bool)
            or not isinstance(seed, (int, np.integer))
            or not 0 <= seed <= MAX_SEED
        ):
            raise ValueError(f"seed must be an integer in [0, 2**64 - 1], got {seed!r}")
        latents = self.latent.draw(int(n), int(seed))
        images = np.empty((n, self._resolution, self._resolution, 3), dtype=np.uint8)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                batch = latents[start : start + self.batch_size].to(self.device, self.dtype)
                labels = self.latent.labels(len(batch), self.device)
                output = self.module(batch) if labels is None else self.module(batch, labels)
                images[start : start + len(batch)] = self._to_uint8(output, len(batch))
        return images

    def _to_uint8(self, output: torch.Tensor, batch: int) -> np.ndarray:
        expected = f"({batch}, 1 or 3, {self._resolution}, {self._resolution})"
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"{self.name} returned {type(output).__name__}, "
                f"expected a tensor of shape {expected}"
            )
        shape = tuple(output.shape)
        if (
            len(shape) != 4
            or shape[0] != batch
            or shape[1] not in (1, 3)
            or shape[2:] != (self._resolution, self._resolution)
        ):
            raise ValueError(f"{self.name} returned shape {shape}, expected {expected}")
        finite = torch.isfinite(output).flatten(1).all(dim=1)
        if not bool(finite.all()):
            # NaN or inf pixels have no colour: clamping them would index garbage, so the model fails.
            bad = int((~finite).sum())
            raise ValueError(f"{self.name} returned non-finite values (NaN or inf) in {bad} of {batch} images")
        low, high = self.output_range
        unit = ((output.float() - low) / (high - low)).clamp_(0.0, 1.0)
        pixels = unit.mul_(255.0).round_().to(torch.uint8)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        return pixels.permute(0, 2, 3, 1).cpu().numpy()
