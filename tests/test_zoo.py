"""The bundled zoo: manifest, every real model's generator, held-out images."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from modelverse import zoo
from modelverse.store.metadata import ModelMetadata
from modelverse.zoo.datasets import load_dataset
from modelverse.zoo.loader import build_generator, build_module
from modelverse.zoo.split import HELDOUT_FRACTION, training_mask

ENTRIES = zoo.bundled_manifest()
IDS = [e.id for e in ENTRIES]


def test_manifest_has_enough_models_and_tags_with_unique_ids() -> None:
    assert len(ENTRIES) >= 40
    assert len(set(IDS)) == len(IDS)
    assert len({t for e in ENTRIES for t in e.tags}) >= 10
    assert {e.metadata.family for e in ENTRIES} >= {"gan", "vae", "diffusion"}


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_entry_carries_the_submission_form(entry: zoo.ZooEntry) -> None:
    meta = entry.metadata
    for field in ("name", "family", "description", "creator", "license", "source"):
        assert getattr(meta, field).strip(), field
    assert meta.tags and meta.resolution and entry.query_text.strip()
    assert ModelMetadata.from_dict(meta.to_dict()) == meta
    if entry.data is not None:
        assert entry.data["class"] in load_dataset(entry.data["dataset"]).class_names


def test_a_class_is_modelled_by_several_families() -> None:
    families_by_class: dict[str, set[str]] = {}
    for entry in ENTRIES:
        if entry.data:
            families_by_class.setdefault(entry.data["class"], set()).add(entry.metadata.family)
    assert any(len(f) >= 2 for f in families_by_class.values())


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_every_model_samples_deterministically(entry: zoo.ZooEntry) -> None:
    generator = zoo.load_generator(entry)
    assert zoo.load_generator(entry.id) is generator
    images = generator.sample(2, seed=11)
    side = entry.resolution
    assert generator.resolution == side
    assert images.shape == (2, side, side, 3) and images.dtype == np.uint8
    assert images.std() > 5, "a model that draws flat images is broken"
    np.testing.assert_array_equal(generator.sample(2, seed=11), images)
    assert not np.array_equal(generator.sample(2, seed=12), images)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_id",
    [
        "digiface-dcgan",
        "generateme-cats-mlpgan",
        "omniart-eyes-green",
        "fashion-dcgan-sneaker",
        "fashion-vae-bag",
        "animal-diffusion-zebra",
        "digits-vae-seven",
    ],
)
def test_samples_do_not_depend_on_batch_size(model_id: str) -> None:
    entry = zoo.get_entry(model_id)
    reference = zoo.load_generator(entry).sample(5, seed=4)
    np.testing.assert_array_equal(build_generator(entry, batch_size=2).sample(5, seed=4), reference)


@pytest.mark.slow
def test_class_fixed_models_of_one_net_draw_different_classes() -> None:
    blue = zoo.load_generator("omniart-eyes-blue").sample(8, seed=0).astype(float)
    red = zoo.load_generator("omniart-eyes-red").sample(8, seed=0).astype(float)
    # Same noise, different colour class: red eyes are redder than blue ones.
    redness = lambda im: (im[..., 0] - im[..., 2]).mean()  # noqa: E731
    assert redness(red) > redness(blue) + 5


def _module_from_path(name: str, path) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package_file(package: str, relative: str):
    from pathlib import Path

    spec = importlib.util.find_spec(package)
    return Path(next(iter(spec.submodule_search_locations))) / relative


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_id, package, file, factory",
    [
        ("digiface-dcgan", "gan_face_generate", "models.py", lambda m: m.Generator(1, 3, 100, 64)),
        ("omniart-eyes-amber", "omniart_eye_generator", "generator.py", lambda m: m.Generator()),
    ],
)
def test_our_declarations_match_the_wheels_reference_code(model_id, package, file, factory) -> None:
    """The wheels' own module files (loaded by path, never through their package __init__) and
    our re-declared classes give the same images from the same weights and noise."""
    entry = zoo.get_entry(model_id)
    ours = build_module(entry.build)
    theirs = factory(_module_from_path(f"reference_{package}", _package_file(package, file)))
    theirs.load_state_dict(ours.state_dict())
    theirs.eval()
    z = torch.randn(2, 100, 1, 1, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        if package == "omniart_eye_generator":
            labels = torch.eye(8)[[0, 5]]
            torch.testing.assert_close(ours(z.flatten(1), labels), theirs(z, labels))
        else:
            torch.testing.assert_close(ours(z), theirs(z))


@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if e.data], ids=[e.id for e in ENTRIES if e.data]
)
def test_heldout_images_are_real_unseen_images_of_the_class(entry: zoo.ZooEntry) -> None:
    dataset, class_name = entry.data["dataset"], entry.data["class"]
    data = load_dataset(dataset)
    images = zoo.heldout_images_for(entry)
    class_size = int((data.labels == data.class_index(class_name)).sum())
    assert len(images) == math.ceil(HELDOUT_FRACTION * class_size)
    assert images.dtype == np.uint8 and images.shape[1:] == (*data.images.shape[1:], 3)
    indices = zoo.split.heldout_indices(dataset, class_name)
    assert (data.labels[indices] == data.class_index(class_name)).all()
    assert not training_mask(dataset)[indices].any()
    np.testing.assert_array_equal(
        zoo.heldout_images(dataset, class_name, limit=3)[..., 1], data.images[indices[:3]]
    )


def test_heldout_images_refuse_models_not_trained_here_and_unknown_classes() -> None:
    with pytest.raises(ValueError, match="not trained here"):
        zoo.heldout_images_for("digiface-dcgan")
    with pytest.raises(KeyError, match="no class 'unicorn'"):
        zoo.heldout_images("animal-shape", "unicorn")
    with pytest.raises(KeyError, match="no model"):
        zoo.load_generator("no-such-model")
