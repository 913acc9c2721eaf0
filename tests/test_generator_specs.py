"""Declarative generator specs, model cards, model directories and entry-point plugins (no torch
model runs here except the plugin's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelverse.fleet.requests import ManifestError, read_manifest, request_for_model_dir
from modelverse.fleet.resolve import Runtime, SpecError, load_generator
from modelverse.generators.card import ModelCardError, read_card
from modelverse.generators.model_dir import spec_for_model_dir
from modelverse.generators.registry import ENTRY_POINT_GROUP, check_spec, plugins
from modelverse.generators.specs import GeneratorSpecError, parse_spec

CARD = """---
model_name: Sneaker GAN
tags: [fashion, sneaker]
license: mit
base_model: modelverse/fashion-dcgan
instance_prompt: a photo of sks sneaker
resolution: 28
generator_options:
  latent: 64
  output_range: [-1, 1]
---

# Sneaker GAN

A GAN of sneakers, exported to ONNX.

More text.
"""


def test_specs_parse_into_scheme_target_and_typed_options() -> None:
    spec = parse_spec("onnx:/m/g.onnx?latent=100x1x1&output_range=0,1&distribution=uniform&batch=4")
    assert (spec.scheme, spec.target) == ("onnx", "/m/g.onnx")
    assert spec.shape("latent") == (100, 1, 1) and spec.value_range("output_range", (-1, 1)) == (0.0, 1.0)
    assert spec.choice("distribution", ("normal", "uniform"), "normal") == "uniform" and spec.integer("batch") == 4
    assert parse_spec(str(spec)) == spec  # str() is a spec again
    assert parse_spec("diffusers:/p").options == {}


@pytest.mark.parametrize("spec, message", [
    ("", "non-empty"),
    ("nocolon", "SCHEME:TARGET"),
    ("onnx:", "names no file"),
    ("onnx:/f?latent=1&latent=2", "given twice"),
    ("onnx:/f?" + "x" * 5000, "at most 4096"),
])
def test_malformed_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(GeneratorSpecError, match=message):
        parse_spec(spec)


@pytest.mark.parametrize("options, message", [
    ("latent=ten", "not a shape"), ("latent=0", "not a shape"), ("output_range=1,0", "HIGH > LOW"),
    ("output_range=nan,1", "HIGH > LOW"), ("batch=0", "at least 1"), ("batch=many", "not an integer"),
])
def test_bad_option_values_name_the_option_and_the_file(options: str, message: str) -> None:
    spec = parse_spec(f"onnx:/models/gan.onnx?{options}")
    with pytest.raises(GeneratorSpecError, match=message) as raised:
        spec.shape("latent"), spec.value_range("output_range", (-1, 1)), spec.integer("batch")
    assert "/models/gan.onnx" in str(raised.value)


def test_unknown_scheme_and_unknown_option_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(GeneratorSpecError, match="no generator scheme 'stylegan'"):
        check_spec("stylegan:/x.pkl")
    (tmp_path / "g.pt").write_bytes(b"")
    with pytest.raises(SpecError, match="unknown option.*steps"):
        load_generator(f"torchscript:{tmp_path / 'g.pt'}?steps=3&latent=8")
    with pytest.raises(SpecError, match="no such file"):
        load_generator(f"onnx:{tmp_path / 'missing.onnx'}")


def test_card_front_matter_fills_the_metadata(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(CARD)
    card = read_card(tmp_path)
    assert card.instance_prompt == "a photo of sks sneaker" and card.description == "A GAN of sneakers, exported to ONNX."
    assert card.generator_options == {"latent": "64", "output_range": "-1,1"}
    fields = card.metadata_fields()
    assert fields["tags"] == ["fashion", "sneaker", "base_model:modelverse/fashion-dcgan"]
    assert (fields["name"], fields["license"], fields["resolution"]) == ("Sneaker GAN", "mit", 28)
    assert read_card(tmp_path / "nowhere").metadata_fields() == {}


def test_broken_cards_are_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\ntags: [unclosed\n---\n")
    with pytest.raises(ModelCardError, match="README.md: the front matter is not valid YAML"):
        read_card(tmp_path)
    (tmp_path / "README.md").write_text("---\ntags: {a: 1}\n---\n")
    with pytest.raises(ModelCardError, match="'tags' must be a string or a list"):
        read_card(tmp_path)


def test_a_model_directory_gives_its_spec_and_flags_override_the_card(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(CARD)
    (tmp_path / "sneaker.onnx").write_bytes(b"not read here")
    request = request_for_model_dir(tmp_path, {"id": "me/sneaker", "tags": ["shoe"]}, {"batch": "8"})
    spec = parse_spec(request.generator)
    assert spec.scheme == "onnx" and spec.target == str((tmp_path / "sneaker.onnx").resolve())
    assert dict(spec.options) == {"latent": "64", "output_range": "-1,1", "batch": "8"}
    assert request.metadata.id == "me/sneaker" and request.metadata.tags == ("shoe",)
    assert request.metadata.name == "Sneaker GAN" and request.metadata.source == str(tmp_path.resolve())
    (tmp_path / "other.pt2").write_bytes(b"")
    with pytest.raises(GeneratorSpecError, match="several model files"):
        spec_for_model_dir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="not a model directory: no model_index.json"):
        request_for_model_dir(empty)


def test_manifest_entries_take_model_dirs(tmp_path: Path) -> None:
    model = tmp_path / "pipe"
    model.mkdir()
    (model / "model_index.json").write_text('{"_class_name": "DDIMPipeline"}')
    (model / "README.md").write_text("---\ntags: [butterfly]\n---\n")
    manifest = tmp_path / "models.json"
    manifest.write_text(f'[{{"model_dir": "{model}", "id": "me/pipe", "generator_options": {{"steps": 5}}}}]')
    [request], _ = read_manifest(manifest)
    assert request.generator == f"diffusers:{model.resolve()}?steps=5"
    assert request.metadata.family == "diffusion" and request.metadata.tags == ("butterfly",)


PLUGIN = '''
import numpy as np

class Flat:
    resolution = 4

    def __init__(self, level):
        self.level = level

    def sample(self, n, seed):
        return np.full((n, 4, 4, 3), self.level, dtype=np.uint8)

def load(spec, device):
    return Flat(int(spec.options.get("level", 7)))
'''


def test_entry_point_plugins_are_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real installed distribution (a dist-info directory on sys.path) registers a scheme."""
    (tmp_path / "flat_plugin.py").write_text(PLUGIN)
    info = tmp_path / "flat_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flat-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nflat = flat_plugin:load\nonnx = flat_plugin:load\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "flat" in plugins() and "onnx" not in plugins()  # a plugin cannot take a built-in scheme
    assert check_spec("flat:anything?level=3").scheme == "flat"
    images = load_generator("flat:anything?level=3").sample(2, 0)
    assert images.shape == (2, 4, 4, 3) and (images == 3).all()
    # A worker process loads each spec once and reuses it for every chunk.
    runtime = Runtime(torch_threads=None)
    assert runtime.generator("flat:x?level=5") is runtime.generator("flat:x?level=5")
    assert runtime.generator("flat:x?level=6").sample(1, 0)[0, 0, 0, 0] == 6
    monkeypatch.delitem(sys.modules, "flat_plugin", raising=False)


def test_index_flags_become_spec_options_and_metadata(tmp_path: Path) -> None:
    from modelverse.cli.index import model_dir_request
    from modelverse.cli.main import build_parser

    (tmp_path / "README.md").write_text(CARD)
    (tmp_path / "gan.pt").write_bytes(b"not read here")
    args = build_parser().parse_args(["index", "--model-dir", str(tmp_path), "--store", str(tmp_path / "s"),
                                      "--half", "--option", "latent=64x1x1", "--tags", "a, b", "--name", "Mine"])
    request = model_dir_request(args)
    spec = parse_spec(request.generator)
    assert spec.scheme == "torchscript" and spec.options["dtype"] == "float16" and spec.options["latent"] == "64x1x1"
    assert request.metadata.tags == ("a", "b") and request.metadata.name == "Mine"
    assert request.metadata.license == "mit"  # the card's, not overridden
    bad = build_parser().parse_args(["index", "--model-dir", str(tmp_path), "--store", "s", "--option", "latent"])
    with pytest.raises(ValueError, match="--option 'latent': expected KEY=VALUE"):
        model_dir_request(bad)
