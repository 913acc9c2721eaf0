"""Generative models behind one interface: sample(n, seed) -> uint8 (n, R, R, 3) RGB."""

from modelverse.generators.base import Generator
from modelverse.generators.torch_generator import LatentSpec, TorchGenerator

__all__ = ["Generator", "LatentSpec", "TorchGenerator"]
