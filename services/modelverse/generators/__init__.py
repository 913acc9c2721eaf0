"""Generative models behind one interface: sample(n, seed) -> uint8 (n, R, R, 3) RGB.

``TorchGenerator`` and ``LatentSpec`` load on first use: the protocol alone must not import
torch (the serving admin checks generator specs without running any; torch costs ~300 MB)."""

from typing import Any

from modelverse.generators.base import Generator

__all__ = ["Generator", "LatentSpec", "TorchGenerator"]


def __getattr__(name: str) -> Any:
    if name in ("LatentSpec", "TorchGenerator"):
        from modelverse.generators import torch_generator

        return getattr(torch_generator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
