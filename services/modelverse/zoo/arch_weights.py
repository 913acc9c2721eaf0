"""``safetensors:FILE?arch=NAME``: the project's own architectures from a weight file alone.

NAME is one of ``zoo.loader.ARCHITECTURES``. The layer sizes, latent, output range and sampler
default to those of the first bundled zoo model of that architecture (e.g. ``conditional_dcgan28``
is the Fashion-MNIST DCGAN: latent 64, output in [-1, 1]); the weights must match those layers
exactly. Options: ``class_label=K`` (required by the class-conditional architectures),
``latent``, ``distribution``, ``output_range``, ``batch``, ``dtype``, and for ``ddim_tiny_unet28``
``steps`` and ``guidance``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from modelverse.generators.architectures.diffusion import DDIMSampler
from modelverse.generators.exported import DTYPES, existing_file
from modelverse.generators.specs import GeneratorSpec, GeneratorSpecError
from modelverse.generators.torch_generator import LatentSpec, TorchGenerator
from modelverse.zoo.loader import ARCHITECTURES
from modelverse.zoo.manifest import ZooEntry, bundled_manifest

OPTIONS = ("arch", "class_label", "latent", "distribution", "output_range", "batch", "dtype", "steps", "guidance")


def _template(spec: GeneratorSpec) -> ZooEntry:
    arch = spec.text("arch")
    if not arch:
        raise GeneratorSpecError(f"{spec.label}: say the architecture with arch= (one of {', '.join(ARCHITECTURES)})")
    for entry in bundled_manifest():
        if entry.build["architecture"] == arch:
            return entry
    raise GeneratorSpecError(f"{spec.label}: unknown arch={arch[:40]!r}; known: {', '.join(ARCHITECTURES)}")


def load(spec: GeneratorSpec, device: str = "cpu") -> TorchGenerator:
    path: Path = existing_file(spec, OPTIONS)
    entry = _template(spec)
    build = copy.deepcopy(entry.build)
    latent = build["latent"]
    if "num_classes" in latent:
        label = spec.integer("class_label", minimum=0)
        if label is None:
            raise GeneratorSpecError(f"{spec.label}: arch={build['architecture']} is class-conditional: set class_label=K "
                                     f"(0 to {latent['num_classes'] - 1})")
        if label >= latent["num_classes"]:
            raise GeneratorSpecError(f"{spec.label}: class_label={label} is not below {latent['num_classes']}")
        latent["class_label"] = label
    elif "class_label" in spec.options:
        raise GeneratorSpecError(f"{spec.label}: arch={build['architecture']} takes no class_label")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GeneratorSpecError(f"{spec.label}: not a safetensors file ({str(exc)[:200]})") from exc
    module = ARCHITECTURES[build["architecture"]](**build.get("config", {}))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:300]
        raise GeneratorSpecError(f"{spec.label}: the weights do not fit arch={build['architecture']} ({first})") from exc
    module.float().eval()
    if "sampler" in build:
        sampler = build["sampler"]
        module = DDIMSampler(module, steps=spec.integer("steps", sampler["steps"]) or sampler["steps"],
                             guidance=spec.number("guidance", sampler["guidance"]) or sampler["guidance"])
    elif "steps" in spec.options or "guidance" in spec.options:
        raise GeneratorSpecError(f"{spec.label}: arch={build['architecture']} is not a diffusion model (steps, guidance)")
    shape = spec.shape("latent") or tuple(latent["shape"])
    latent_spec = LatentSpec(
        shape=shape,
        distribution=spec.choice("distribution", ("normal", "uniform"), latent.get("distribution", "normal")),  # type: ignore[arg-type]
        class_label=latent.get("class_label"),
        num_classes=latent.get("num_classes"),
        label_format=latent.get("label_format", "index"),
    )
    return TorchGenerator(
        module, latent_spec, resolution=entry.resolution,
        output_range=spec.value_range("output_range", tuple(build["output_range"])),
        device=torch.device(device), batch_size=spec.integer("batch", 256) or 256, name=spec.label,
        dtype=DTYPES[spec.choice("dtype", tuple(DTYPES), "float32")],
    )
