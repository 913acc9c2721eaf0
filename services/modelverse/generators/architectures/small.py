"""Class-conditional generators small enough to train on two CPU cores in minutes.

Each takes (latent, labels) with labels a LongTensor of class indices; the zoo fixes one class
per exposed model. Outputs are (n, 1, side, side) grayscale images.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConditionalDCGAN28(nn.Module):
    """DCGAN generator for 28x28: (z, class embedding) -> 7x7 features -> two stride-2 deconvs."""

    def __init__(self, latent_dim: int = 64, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.width = width
        self.label_embedding = nn.Embedding(num_classes, 32)
        self.project = nn.Linear(latent_dim + 32, width * 7 * 7)
        self.upsample = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),  # 14x14
            nn.BatchNorm2d(width // 2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width // 2, 1, 4, 2, 1),  # 28x28
            nn.Tanh(),
        )

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        h = self.project(torch.cat([z, self.label_embedding(labels)], dim=1))
        return self.upsample(h.view(-1, self.width, 7, 7))


class ConditionalConvDecoder28(nn.Module):
    """VAE decoder for 28x28: the mirror of a two-conv encoder; outputs pixel means in [0, 1]."""

    def __init__(self, latent_dim: int = 16, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.width = width
        self.num_classes = num_classes
        self.project = nn.Sequential(nn.Linear(latent_dim + num_classes, width * 7 * 7), nn.ReLU())
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width // 2, 1, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        onehot = nn.functional.one_hot(labels, self.num_classes).to(z.dtype)
        h = self.project(torch.cat([z, onehot], dim=1))
        return self.upsample(h.view(-1, self.width, 7, 7))


class ConditionalMLPDecoder(nn.Module):
    """VAE decoder for tiny images (8x8 digits): an MLP over the flattened pixels."""

    def __init__(
        self, side: int = 8, latent_dim: int = 8, num_classes: int = 10, hidden: int = 128
    ) -> None:
        super().__init__()
        self.side = side
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, side * side),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        onehot = nn.functional.one_hot(labels, self.num_classes).to(z.dtype)
        return self.net(torch.cat([z, onehot], dim=1)).view(-1, 1, self.side, self.side)
