"""Export a bundled zoo model to TorchScript, torch.export (.pt2) or ONNX, as a model directory.

    python -m modelverse.zoo.export fashion-dcgan-sneaker --format onnx --out models/sneaker-onnx

writes ``models/sneaker-onnx/model.onnx`` and a model card (``README.md``) whose front matter
carries the zoo entry's metadata and the ``generator_options`` the file needs, so that
``modelverse index --model-dir models/sneaker-onnx`` indexes it with no other flag. The exported
module maps latents (batch, *latent) to images (batch, C, R, R) in the entry's output range; a
class-fixed model has its class built into the graph. The congruence tests and
tools/bench_generator_formats.py use it; docs/MODELS.md shows it.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from modelverse.generators.torch_generator import LatentSpec, TorchGenerator
from modelverse.zoo.loader import load_generator
from modelverse.zoo.manifest import ZooEntry, get_entry

FORMATS = {"torchscript": "model.pt", "torch-export": "model.pt2", "onnx": "model.onnx"}


class ClassFixed(nn.Module):
    """latents -> images of one class: the label is computed from the batch inside the graph, so
    every format keeps a dynamic batch size."""

    def __init__(self, net: nn.Module, latent: LatentSpec) -> None:
        super().__init__()
        self.net = net
        self.label = latent.class_label
        self.onehot = latent.label_format == "onehot"
        if self.onehot:
            assert latent.num_classes is not None and latent.class_label is not None
            row = torch.zeros(1, latent.num_classes)
            row[0, latent.class_label] = 1.0
            self.register_buffer("onehot_row", row)

    def forward(self, z: Tensor) -> Tensor:
        if self.label is None:
            return self.net(z)
        ones = torch.ones_like(z.flatten(1)[:, :1])  # (batch, 1), traced from the input
        if self.onehot:
            return self.net(z, ones * self.onehot_row)
        return self.net(z, (ones[:, 0] * self.label).long())


def exportable(entry: ZooEntry) -> tuple[nn.Module, TorchGenerator]:
    generator = load_generator(entry)
    assert isinstance(generator, TorchGenerator)
    return ClassFixed(generator.module, generator.latent).eval(), generator


def export(entry_or_id: ZooEntry | str, fmt: str, out_dir: str | Path) -> Path:
    """Write the model file and its card into ``out_dir``; returns the model file's path."""
    entry = get_entry(entry_or_id) if isinstance(entry_or_id, str) else entry_or_id
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    module, generator = exportable(entry)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FORMATS[fmt]
    example = generator.latent.draw(2, 0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter deprecation notes
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(module, (example,), check_trace=False), str(path))
        elif fmt == "torch-export":
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(program, str(path))
        else:
            torch.onnx.export(module, (example,), str(path), input_names=["latents"], output_names=["images"],
                              dynamic_axes={"latents": {0: "batch"}, "images": {0: "batch"}},
                              opset_version=17, dynamo=False)
    write_card(entry, generator, directory)
    return path


def write_card(entry: ZooEntry, generator: TorchGenerator, directory: Path) -> None:
    meta = entry.metadata
    front = {
        "model_name": meta.name,
        "tags": list(meta.tags),
        "license": meta.license,
        "creator": meta.creator,
        "family": meta.family,
        "resolution": generator.resolution,
        "description": meta.description,
        "generator_options": {
            "latent": "x".join(str(d) for d in generator.latent.shape),
            "distribution": generator.latent.distribution,
            "output_range": f"{generator.output_range[0]:g},{generator.output_range[1]:g}",
        },
    }
    text = "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + \
        f"# {meta.name}\n\nExported from the modelverse zoo model `{entry.id}`.\n"
    (directory / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_id", help="a bundled zoo model id")
    parser.add_argument("--format", choices=list(FORMATS), required=True)
    parser.add_argument("--out", required=True, metavar="DIR")
    args = parser.parse_args(argv)
    print(export(args.model_id, args.format, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
