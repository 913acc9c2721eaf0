"""Small real torch models implementing the Generator and Encoder protocols, for fleet tests
and the fleet benchmark's toy mode.

Real computation (seeded random convolutional networks), small enough that a chunk takes
milliseconds on a CPU. Workers load them by spec, ``py:modelverse.bench.toy_models:conv_generator?seed=3``
(a worker started with --allow-python-generators); tests/fleet_support.py names them for the tests.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn


class ConvGenerator:
    """A random DCGAN-like decoder: latent (16) -> 8x8 -> upsampled convolutions -> RGB."""

    def __init__(self, seed: int, resolution: int = 16, delay_s: float = 0.0) -> None:
        if resolution % 8:
            raise ValueError("resolution must be a multiple of 8")
        torch.manual_seed(seed)
        self._resolution = resolution
        self.delay_s = delay_s
        layers: list[nn.Module] = [nn.Unflatten(1, (16, 1, 1)), nn.Upsample(scale_factor=8),
                                   nn.Conv2d(16, 12, 3, padding=1), nn.Tanh()]
        side = 8
        while side < resolution:
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(12, 12, 3, padding=1), nn.Tanh()]
            side *= 2
        layers += [nn.Conv2d(12, 3, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers).eval()
        self.bias = torch.randn(16)

    @property
    def resolution(self) -> int:
        return self._resolution

    def sample(self, n: int, seed: int) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)  # stands for a slow model, so a test can kill a worker mid-chunk
        noise = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 16, generator=noise) + self.bias
        with torch.no_grad():
            images = self.net(z)
        pixels = ((images + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).contiguous().numpy()


class RaisingGenerator(ConvGenerator):
    def sample(self, n: int, seed: int) -> np.ndarray:
        raise RuntimeError("the sampler ran out of latent codes")


class WrongShapeGenerator(ConvGenerator):
    def sample(self, n: int, seed: int) -> np.ndarray:
        return super().sample(n, seed)[:, ::2, ::2, :]  # half the promised resolution


class ConvEncoder:
    """A random conv feature extractor (images) and a byte-embedding bag (texts), dim 24."""

    def __init__(self, seed: int = 0, dim: int = 24) -> None:
        torch.manual_seed(seed)
        self._dim = dim
        self.image_net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, dim),
        ).eval()
        self.text_net = nn.EmbeddingBag(256, dim, mode="mean")
        digest = hashlib.sha256()
        for tensor in (*self.image_net.state_dict().values(), *self.text_net.state_dict().values()):
            digest.update(tensor.numpy().tobytes())
        self._fingerprint = digest.hexdigest()

    @property
    def name(self) -> str:
        return "test-conv-encoder"

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def dim(self) -> int:
        return self._dim

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        with torch.no_grad():
            return self.image_net(x).numpy().astype(np.float32)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(np.stack([np.asarray(im.convert("RGB")) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for text in texts:
                codes = torch.tensor(list(text.encode()) or [0]).unsqueeze(0)
                rows.append(self.text_net(codes)[0].numpy())
        return np.stack(rows).astype(np.float32)


def conv_generator(seed: int, resolution: int = 16, delay_s: float = 0.0) -> ConvGenerator:
    return ConvGenerator(seed, resolution, delay_s)


def raising_generator(seed: int = 0) -> RaisingGenerator:
    return RaisingGenerator(seed)


def wrong_shape_generator(seed: int = 0) -> WrongShapeGenerator:
    return WrongShapeGenerator(seed)


def conv_encoder(seed: int = 0, dim: int = 24) -> ConvEncoder:
    return ConvEncoder(seed, dim)


ENCODER_SPEC = "py:modelverse.bench.toy_models:conv_encoder"
GENERATOR_SPEC = "py:modelverse.bench.toy_models:conv_generator"  # ?seed=N&resolution=R
