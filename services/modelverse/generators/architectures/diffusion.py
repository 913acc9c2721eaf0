"""A tiny class-conditional diffusion model for 28x28 images and its few-step DDIM sampler.

Cosine noise schedule on continuous time t in [0, 1] (x_t = cos(pi t / 2) x0 + sin(pi t / 2) eps)
with v-prediction, which stays well behaved when the sampler takes only a handful of large steps.
Trained with the label dropped 10% of the time, so sampling can use classifier-free guidance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class TinyUNet28(nn.Module):
    """Two resolutions below 28x28 (14, 7), one residual block each, skip connections."""

    def __init__(self, num_classes: int = 10, width: int = 32, channels: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        emb_dim = 4 * width
        self.time_mlp = nn.Sequential(
            nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        # Index num_classes is the "no label" class used for classifier-free guidance.
        self.label_embedding = nn.Embedding(num_classes + 1, emb_dim)
        self.width = width
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.down1 = ResBlock(width, width, emb_dim)
        self.pool1 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.down2 = ResBlock(width, 2 * width, emb_dim)
        self.pool2 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.middle = ResBlock(2 * width, 2 * width, emb_dim)
        self.unpool2 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.up2 = ResBlock(4 * width, 2 * width, emb_dim)
        self.unpool1 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.up1 = ResBlock(2 * width, width, emb_dim)
        self.head = nn.Sequential(
            nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1)
        )

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.width)) + self.label_embedding(labels)
        s1 = self.down1(self.stem(x), emb)  # 28x28
        s2 = self.down2(self.pool1(s1), emb)  # 14x14
        h = self.middle(self.pool2(s2), emb)  # 7x7
        h = self.unpool2(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up2(torch.cat([h, s2], dim=1), emb)
        h = self.unpool1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up1(torch.cat([h, s1], dim=1), emb)
        return self.head(h)


class DDIMSampler(nn.Module):
    """Deterministic DDIM (eta = 0): the image is a pure function of the starting noise."""

    def __init__(self, unet: TinyUNet28, steps: int = 10, guidance: float = 1.0) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"DDIM needs at least one step, got {steps}")
        self.unet = unet
        self.steps = steps
        self.guidance = guidance

    def predict_v(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        if self.guidance == 1.0:
            return self.unet(x, t, labels)
        unconditional = torch.full_like(labels, self.unet.num_classes)
        both = self.unet(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, unconditional]))
        v_cond, v_uncond = both.chunk(2)
        return v_uncond + self.guidance * (v_cond - v_uncond)

    def forward(self, noise: Tensor, labels: Tensor) -> Tensor:
        x = noise
        times = torch.linspace(1.0, 0.0, self.steps + 1, device=noise.device)
        for t_now, t_next in zip(times[:-1], times[1:], strict=True):
            t = t_now.expand(x.shape[0])
            alpha, sigma = alpha_sigma(t_now)
            v = self.predict_v(x, t, labels)
            x0 = (alpha * x - sigma * v).clamp(-1.0, 1.0)
            # Noise re-derived from the clipped x0 (t_now > 0, so sigma > 0).
            eps = (x - alpha * x0) / sigma
            alpha_next, sigma_next = alpha_sigma(t_next)
            x = alpha_next * x0 + sigma_next * eps
        return x
