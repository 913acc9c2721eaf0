"""The open_clip encoder layer with real models: the bundled encoder assembled into a fresh cache,
an arbitrary open_clip architecture from a local weights file, specs, fingerprints, errors."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modelverse.encoders import (
    Encoder,
    EncoderSpecError,
    clear_encoder_cache,
    encoder_id,
    load_encoder,
    parse_spec,
)
from modelverse.encoders import bundled
from modelverse.encoders.fingerprint import SIDECAR_SUFFIX, sha256_file
from modelverse.encoders.hf_cache import offline_hub
from modelverse.encoders.sketch import line_drawing

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("modelverse-cache")


@pytest.fixture(scope="module")
def encoder(cache_dir: Path):
    clear_encoder_cache()
    return load_encoder("bundled", cache_dir=cache_dir, batch_size=4)


@pytest.fixture(scope="module")
def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    plain = Image.new("RGB", (32, 32), (200, 30, 30))
    from sklearn.datasets import load_digits

    digit = Image.fromarray((load_digits().images[3] * 255 / 16).astype(np.uint8)).convert("RGB")
    return [noise, plain, digit, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT), plain]


@pytest.mark.slow
def test_bundled_assembles_into_a_fresh_cache_and_loads_through_local_dir(
    encoder, cache_dir: Path
) -> None:
    assert isinstance(encoder, Encoder)
    folder = bundled.assembled_dir(cache_dir)
    assert folder.parent == cache_dir / "encoders"
    for name in ("open_clip_config.json", "open_clip_model.safetensors", "tokenizer.json", "vocab.txt"):
        assert (folder / name).is_file(), name
    assert not list((cache_dir / "encoders").glob(".*.tmp")), "temporary assembly folder left"
    assert encoder.name == "modelverse-bundled"
    assert encoder.dim == 256
    # the fingerprint is the digest of the assembled files, cached beside them
    assert len(encoder.fingerprint) == 64
    assert (folder / ("open_clip_model.safetensors" + SIDECAR_SUFFIX)).is_file()
    assert encoder_id(encoder) == f"modelverse-bundled:{encoder.fingerprint[:16]}"
    # loading again in this process returns the same object (heavy: cached per process)
    assert load_encoder("bundled", cache_dir=cache_dir, batch_size=4) is encoder


@pytest.mark.slow
def test_assembly_is_deterministic_across_fresh_caches(encoder, cache_dir: Path, tmp_path: Path) -> None:
    other = bundled.assembled_dir(tmp_path / "cache2")
    first = bundled.assembled_dir(cache_dir) / bundled.CHECKPOINT_FILE
    assert sha256_file(other / bundled.CHECKPOINT_FILE) == sha256_file(first)


@pytest.mark.slow
def test_shapes_dtypes_and_determinism(encoder, pictures: list[Image.Image]) -> None:
    images = encoder.encode_images(pictures)
    texts = encoder.encode_texts(["a photo of a face", "a red circle", "a sketch of a shirt"])
    assert images.shape == (5, 256) and images.dtype == np.float32
    assert texts.shape == (3, 256) and texts.dtype == np.float32
    np.testing.assert_array_equal(encoder.encode_images(pictures), images)
    # identical pictures at other places in a batch: equal up to float rounding
    np.testing.assert_allclose(images[1], images[4], rtol=0, atol=1e-5)
    assert not np.allclose(images[0], images[1])
    assert encoder.encode_images([]).shape == (0, 256)
    # batching (4 per pass here) does not change results beyond float rounding
    single = np.concatenate([encoder.encode_images([p]) for p in pictures])
    np.testing.assert_allclose(single, images, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_encode_pixels_equals_encode_images(encoder, pictures: list[Image.Image]) -> None:
    same_size = [p.resize((48, 40)) for p in pictures]
    pixels = np.stack([np.asarray(p) for p in same_size])
    np.testing.assert_array_equal(encoder.encode_pixels(pixels), encoder.encode_images(same_size))


@pytest.mark.slow
def test_bfloat16_features_are_close_to_float32(encoder, cache_dir: Path, pictures: list[Image.Image]) -> None:
    fast = load_encoder("bundled", cache_dir=cache_dir, batch_size=4, precision="bf16")
    assert fast.precision == "bf16" and encoder.precision == "fp32"
    assert fast.fingerprint == encoder.fingerprint  # same weights: statistics stay comparable
    cosines = np.sum(unit(fast.encode_images(pictures)) * unit(encoder.encode_images(pictures)), axis=1)
    # Textured pictures stay within 1%; a flat colour (pictures 1 and 4) is the worst case seen.
    assert np.all(cosines[[0, 2, 3]] > 0.99) and np.all(cosines > 0.9)
    assert not np.array_equal(fast.encode_images(pictures), encoder.encode_images(pictures))
    text_cosines = np.sum(unit(fast.encode_texts(["a cat"])) * unit(encoder.encode_texts(["a cat"])), axis=1)
    assert np.all(text_cosines > 0.99)


@pytest.mark.slow
def test_precisions_the_device_cannot_run_are_refused(cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        load_encoder("bundled", cache_dir=cache_dir, precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        load_encoder("bundled", cache_dir=cache_dir, precision="int8")


@pytest.mark.slow
def test_encode_pixels_rejects_bad_arrays(encoder) -> None:
    with pytest.raises(TypeError, match="uint8"):
        encoder.encode_pixels(np.zeros((1, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        encoder.encode_pixels(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="sequence of strings"):
        encoder.encode_texts("a face")


@pytest.mark.slow
def test_transparent_images_are_flattened_onto_white(encoder) -> None:
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # fully transparent, hidden black
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    np.testing.assert_array_equal(encoder.encode_images([rgba]), encoder.encode_images([white]))


@pytest.mark.slow
def test_text_of_a_concept_is_nearest_its_picture(encoder) -> None:
    """Zero-shot: held-out pictures of the build match their concept's text, not another's."""
    from sklearn.datasets import load_digits

    held = json.loads((bundled.BUNDLE_DIR / "held_out.json").read_text())["samples"]
    digit_index = next(int(r["group"]) for r in held if r["source"] == "digits" and "sketch" not in r)
    digits = load_digits()
    digit = (digits.images[digit_index] * 255 / 16).astype(np.uint8)
    pictures = {"digit": Image.fromarray(digit).convert("RGB")}
    # Fashion-MNIST comes from the Debian package that `make` installs (tools/install_system_data.sh).
    with gzip.open(FASHION_DIR / "train-images-idx3-ubyte.gz", "rb") as fh:
        raw = fh.read()
    shirt = next(
        int(r["group"].split("/")[1])
        for r in held
        if r["source"] == "fashion_mnist" and r["caption"] == "a photo of a shirt" and "sketch" not in r
    )
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)[shirt]
    pictures["shirt"] = Image.fromarray(pixels).convert("RGB")
    images = unit(encoder.encode_images(list(pictures.values())))
    texts = unit(
        encoder.encode_texts([f"a handwritten digit {digits.target[digit_index]}", "a photo of a shirt"])
    )
    sims = dict(zip(pictures, images @ texts.T))
    assert sims["digit"][0] > sims["digit"][1]
    assert sims["shirt"][1] > sims["shirt"][0]
    assert sims["shirt"][1] > sims["digit"][1]


@pytest.mark.slow
def test_fingerprint_differs_for_different_weights(encoder, cache_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "changed"
    shutil.copytree(bundled.assembled_dir(cache_dir), copy)
    for sidecar in copy.glob("*" + SIDECAR_SUFFIX):
        sidecar.unlink()
    same = load_encoder(f"local-dir:{copy}", cache_dir=cache_dir)
    assert same.fingerprint == encoder.fingerprint  # same bytes, same digest
    state = load_file(str(copy / bundled.CHECKPOINT_FILE))
    state["logit_scale"] = state["logit_scale"] + 1.0
    save_file(state, str(copy / bundled.CHECKPOINT_FILE), metadata={"format": "pt"})
    clear_encoder_cache()
    changed = load_encoder(f"local-dir:{copy}", cache_dir=cache_dir)
    assert changed.fingerprint != encoder.fingerprint
    assert encoder_id(changed) != encoder_id(encoder)


@pytest.mark.slow
def test_an_open_clip_architecture_from_a_local_weights_file(tmp_path: Path) -> None:
    """'ARCH=/path': any open_clip architecture; the fingerprint is the file's sha256."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-S-32-alt", pretrained=None).eval()
    weights = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    enc = load_encoder(f"ViT-S-32-alt={weights}", cache_dir=tmp_path / "cache", batch_size=2)
    assert enc.name == "ViT-S-32-alt"
    assert enc.fingerprint == sha256_file(weights)
    texts = ["a photo of a dog", "a sketch of a face", "a red eye"]
    tokenizer = open_clip.get_tokenizer("ViT-S-32-alt")
    with torch.no_grad():
        expected = model.encode_text(tokenizer(texts)).numpy()
    np.testing.assert_allclose(enc.encode_texts(texts), expected, rtol=0, atol=1e-5)


@pytest.mark.slow  # imports open_clip (seconds) before it can refuse the spec
def test_missing_weights_file_names_the_path_and_the_remedy(tmp_path: Path) -> None:
    missing = tmp_path / "clip" / "open_clip_model.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        load_encoder(f"ViT-B-32-quickgelu={missing}", cache_dir=tmp_path)
    message = str(info.value)
    assert str(missing) in message and "MODELVERSE_ENCODER" in message
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        load_encoder(f"local-dir:{tmp_path / 'nowhere'}", cache_dir=tmp_path)


@pytest.mark.slow  # imports open_clip
def test_specs_and_the_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MODELVERSE_ENCODER", raising=False)
    assert parse_spec(None).kind == "bundled"
    monkeypatch.setenv("MODELVERSE_ENCODER", f"local-dir:{tmp_path}")
    spec = parse_spec(None)
    assert spec.kind == "local-dir" and spec.path == tmp_path.resolve()
    spec = parse_spec("ViT-B-32-quickgelu=~/clip.pt")
    assert spec.kind == "file" and spec.arch == "ViT-B-32-quickgelu"
    assert spec.path == Path("~/clip.pt").expanduser().resolve()
    for bad in ("ViT-B-32", "openai", "=x", "local-dir:"):
        with pytest.raises(EncoderSpecError):
            parse_spec(bad)
    with pytest.raises(EncoderSpecError, match="unknown open_clip architecture"):
        load_encoder(f"No-Such-Arch={tmp_path / 'w.pt'}", cache_dir=tmp_path)


def test_offline_hub_restores_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = constants.HF_HUB_CACHE
    with offline_hub(tmp_path):
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        assert constants.HF_HUB_CACHE == str(tmp_path.resolve())
    assert "HF_HUB_OFFLINE" not in os.environ
    assert constants.HF_HUB_CACHE == before


def test_line_drawing_is_black_lines_on_white() -> None:
    square = Image.new("L", (28, 28), 0)
    square.paste(255, (8, 8, 20, 20))
    drawing = np.asarray(line_drawing(square, sigma=2.0, thickness=2))
    assert drawing.shape == (224, 224, 3)
    ink = drawing[..., 0] == 0
    assert 0.005 < ink.mean() < 0.2  # an outline, not a filled square
    assert not ink[112, 112] and not ink[5, 5]  # inside and outside stay white
    flat = np.asarray(line_drawing(Image.new("RGB", (50, 30), (90, 90, 90))))
    assert (flat == 255).all()
