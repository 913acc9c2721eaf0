"""A model directory -> its generator spec and the metadata its card gives (torch-free).

A directory with ``model_index.json`` is a diffusers pipeline; otherwise it must hold exactly one
model file: ``.pt`` / ``.ts`` (TorchScript), ``.pt2`` (torch.export), ``.onnx`` or
``.safetensors`` (the project's architectures: the card or the options give ``arch``). The
card's ``generator_options`` become spec options; options given here override them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelverse.generators.card import ModelCard, read_card
from modelverse.generators.specs import GeneratorSpec, GeneratorSpecError

FILE_SCHEMES = {".pt": "torchscript", ".ts": "torchscript", ".pt2": "torch-export", ".onnx": "onnx",
                ".safetensors": "safetensors"}
FAMILY_BY_SCHEME = {"diffusers": "diffusion"}


def spec_for_model_dir(directory: str | Path, options: Mapping[str, str] | None = None,
                       card: ModelCard | None = None) -> GeneratorSpec:
    root = Path(directory)
    if not root.is_dir():
        raise GeneratorSpecError(f"{str(directory)[:200]}: no such model directory")
    card = read_card(root) if card is None else card
    merged = {**card.generator_options, **(options or {})}
    if (root / "model_index.json").is_file():
        return GeneratorSpec("diffusers", str(root.resolve()), merged)
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in FILE_SCHEMES)
    if not files:
        raise GeneratorSpecError(
            f"{str(directory)[:200]}: not a model directory: no model_index.json (diffusers) and no "
            f"{', '.join(FILE_SCHEMES)} file"
        )
    if len(files) > 1:
        names = ", ".join(p.name[:60] for p in files[:5])
        raise GeneratorSpecError(f"{str(directory)[:200]}: several model files ({names}); name one with a spec")
    return GeneratorSpec(FILE_SCHEMES[files[0].suffix], str(files[0].resolve()), merged)


def card_metadata(directory: str | Path, spec: GeneratorSpec, card: ModelCard | None = None) -> dict[str, Any]:
    """Metadata fields for a model of this directory: the card's, the family from the format, the
    directory as the source and its name as the default id; the caller's fields override these."""
    root = Path(directory)
    card = read_card(root) if card is None else card
    fields: dict[str, Any] = {"id": root.resolve().name, "source": str(root.resolve())}
    if spec.scheme in FAMILY_BY_SCHEME:
        fields["family"] = FAMILY_BY_SCHEME[spec.scheme]
    fields.update(card.metadata_fields())
    return fields
