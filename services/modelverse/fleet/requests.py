"""Which models to index: from a manifest file or the bundled zoo.

A manifest is JSON, either a list of models or ``{"encoder": SPEC, "models": [...]}``; each
model is its metadata (``id`` required; ``name``, ``description``, ``tags``, ``family``,
``resolution``, ``creator``, ``license``, ``source``) plus ``generator``, a generator spec
(``zoo:ID``, ``py:MODULE:FACTORY?k=v``, or a declarative spec such as ``diffusers:DIR`` or
``onnx:FILE?latent=100``; see ``resolve``), or ``model_dir``, a model directory whose format is
detected and whose model card fills the metadata the entry does not give (docs/MODELS.md).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelverse.errors import InvalidInputError
from modelverse.generators.card import ModelCardError, read_card
from modelverse.generators.model_dir import card_metadata, spec_for_model_dir
from modelverse.generators.specs import GeneratorSpecError
from modelverse.store.metadata import ModelMetadata


class ManifestError(InvalidInputError):
    pass


@dataclass(frozen=True)
class ModelRequest:
    metadata: ModelMetadata
    generator: str

    @property
    def model_id(self) -> str:
        return self.metadata.id


def request_from_dict(entry: dict[str, Any], where: str) -> ModelRequest:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: a model entry must be an object, got {type(entry).__name__}")
    fields = dict(entry)
    if "model_dir" in fields:
        directory = fields.pop("model_dir")
        options = fields.pop("generator_options", None) or {}
        if not isinstance(directory, str) or not isinstance(options, dict) or "generator" in fields:
            raise ManifestError(f"{where}: model_dir must be a path (with generator_options a mapping, no generator)")
        try:
            return request_for_model_dir(directory, fields, {str(k): str(v) for k, v in options.items()})
        except ManifestError as exc:
            raise ManifestError(f"{where}: {exc}") from exc
    generator = fields.pop("generator", None)
    if not isinstance(generator, str) or not generator:
        raise ManifestError(f"{where}: model {fields.get('id')!r} has no generator spec")
    try:
        return ModelRequest(ModelMetadata.from_dict(fields), generator)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: {exc}") from exc


def request_for_model_dir(
    directory: str | Path, overrides: dict[str, Any] | None = None, options: dict[str, str] | None = None
) -> ModelRequest:
    """One model directory (diffusers pipeline or exported file + card) as a request; the given
    metadata fields and spec options override the card's."""
    try:
        card = read_card(directory)
        spec = spec_for_model_dir(directory, options, card)
        fields = card_metadata(directory, spec, card)
    except (GeneratorSpecError, ModelCardError) as exc:
        raise ManifestError(str(exc)) from exc
    fields.update({k: v for k, v in (overrides or {}).items() if v not in (None, "", [], ())})
    try:
        return ModelRequest(ModelMetadata.from_dict(fields), str(spec))
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{str(directory)[:200]}: {exc}") from exc


def read_manifest(path: str | Path) -> tuple[list[ModelRequest], str | None]:
    """The models of a manifest file, and the encoder spec it names (None: not named)."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no such manifest file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
    encoder = None
    if isinstance(data, dict):
        encoder = data.get("encoder")
        data = data.get("models")
    if not isinstance(data, list) or not data:
        raise ManifestError(f"{path}: expected a non-empty list of models")
    requests = [request_from_dict(entry, f"{path}[{i}]") for i, entry in enumerate(data)]
    ids = [r.model_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ManifestError(f"{path}: a model id appears twice")
    return requests, encoder


def bundled_requests() -> list[ModelRequest]:
    """Every model of the bundled zoo, as ``zoo:ID`` generator specs."""
    try:
        zoo = importlib.import_module("modelverse.zoo")
    except ImportError as exc:
        raise ManifestError("the bundled zoo (modelverse.zoo) is not installed") from exc
    return [ModelRequest(entry.metadata, f"zoo:{entry.id}") for entry in zoo.bundled_manifest()]
