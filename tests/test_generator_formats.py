"""Congruence of the exported formats with the native zoo loader, offline: the zoo's DCGAN and VAE
exported to TorchScript, torch.export and ONNX (and their weights read by safetensors:?arch=) index
to the statistics of zoo:ID; bad files fail their job with a reason naming the file and the run
goes on. Embedded fleet (the work functions in this process), real models, the conv test encoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fleet_support import ENCODER_SPEC

from modelverse.bench.tiny_pipelines import save_broken_torchscript
from modelverse.cli.main import main
from modelverse.core.stats import ModelStats
from modelverse.fleet.embedded import index_embedded
from modelverse.fleet.job_records import JobState
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.requests import ModelRequest, request_for_model_dir
from modelverse.fleet.resolve import SpecError, load_generator
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata
from modelverse.zoo import export as zoo_export
from modelverse.zoo import get_entry
from modelverse.zoo.loader import WEIGHTS_DIR

# Slow tier: exports zoo generators to TorchScript, torch.export and ONNX and indexes them.
pytestmark = pytest.mark.slow

PLAN = SamplePlan(max_samples=300, chunk_size=100)
MODELS = {"dcgan": "fashion-dcgan-sneaker", "vae": "fashion-vae-coat"}
FORMATS = tuple(zoo_export.FORMATS)
ARCH_SPECS = {  # the same nets, from the bundled weight files alone
    "dcgan": f"safetensors:{WEIGHTS_DIR / 'fashion_mnist_dcgan.safetensors'}?arch=conditional_dcgan28&class_label=7",
    "vae": f"safetensors:{WEIGHTS_DIR / 'fashion_mnist_vae.safetensors'}?arch=conditional_conv_decoder28&class_label=4",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("exported")
    return {(kind, fmt): zoo_export.export(zoo_id, fmt, root / f"{kind}-{fmt}").parent
            for kind, zoo_id in MODELS.items() for fmt in FORMATS}


def stats_of(root: Path, generator: str, model_id: str = "m") -> ModelStats:
    """Statistics of one model indexed under ``model_id`` (its chunk seeds) into a fresh store."""
    [record] = index_embedded(root, [ModelRequest(ModelMetadata(model_id), generator)], ENCODER_SPEC, PLAN,
                              rank=8, torch_threads=1)
    assert record.state is JobState.DONE, record.error
    return DirectoryStore.open(root).get_stats(model_id)


@pytest.mark.parametrize("kind", list(MODELS))
def test_each_format_indexes_to_the_zoo_loaders_statistics(kind: str, exported: dict, tmp_path: Path) -> None:
    native = stats_of(tmp_path / "zoo", f"zoo:{MODELS[kind]}")
    for fmt in FORMATS:
        request = request_for_model_dir(exported[kind, fmt], {"id": "m"})
        assert request.generator.startswith(f"{fmt}:")
        through = stats_of(tmp_path / fmt, request.generator)
        assert through.count == native.count == 300
        # Same latents, same net: images agree to a pixel level (ONNX kernels round differently).
        np.testing.assert_allclose(through.mean, native.mean, rtol=0, atol=1e-4, err_msg=fmt)
        np.testing.assert_allclose(through.covariance, native.covariance, rtol=0, atol=1e-4, err_msg=fmt)
    weights = stats_of(tmp_path / "safetensors", ARCH_SPECS[kind])
    np.testing.assert_array_equal(weights.mean, native.mean)  # the same module class: the same bits


def test_exported_images_match_the_zoo_pixel_for_pixel(exported: dict) -> None:
    native = load_generator("zoo:fashion-dcgan-sneaker").sample(64, 5).astype(int)
    for fmt in FORMATS:
        spec = request_for_model_dir(exported["dcgan", fmt]).generator
        generator = load_generator(spec)
        assert generator.resolution == 28
        assert np.abs(generator.sample(64, 5).astype(int) - native).max() <= 1, fmt


def test_half_precision_samples_close_to_float32(exported: dict) -> None:
    spec = request_for_model_dir(exported["dcgan", "torchscript"]).generator
    full = load_generator(spec).sample(16, 3).astype(int)
    half = load_generator(spec + "&dtype=float16").sample(16, 3).astype(int)
    assert np.abs(half - full).mean() < 2.0 and np.abs(half - full).max() <= 32


def test_index_model_dir_command_fills_metadata_from_the_card(exported: dict, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    common = ["--store", str(store), "--encoder", ENCODER_SPEC, "--samples", "200", "--chunk-size", "100",
              "--no-adaptive", "--device", "cpu"]
    assert main(["index", "--model-dir", str(exported["vae", "onnx"]), "--id", "me/coat", *common]) == 0
    metadata = DirectoryStore.open(store).get("me/coat").metadata
    assert metadata.name == "Fashion-MNIST coat VAE" and "coat" in metadata.tags
    assert (metadata.family, metadata.resolution) == ("vae", 28)
    assert "me/coat: 200 samples" in capsys.readouterr().out
    # A directory with no model: one line on stderr naming it, exit status 1.
    assert main(["index", "--model-dir", str(tmp_path), *common]) == 1
    assert f"{tmp_path}: not a model directory" in capsys.readouterr().err


def test_broken_files_fail_their_job_naming_the_file_and_the_others_index(tmp_path: Path) -> None:
    broken = save_broken_torchscript(tmp_path / "broken")
    not_a_pipeline = tmp_path / "no-pipeline"
    not_a_pipeline.mkdir()
    requests = [
        ModelRequest(ModelMetadata("bad/shape"), f"torchscript:{broken['wrong_shape']}?latent=8"),
        ModelRequest(ModelMetadata("bad/nan"), f"torchscript:{broken['nan']}?latent=8"),
        ModelRequest(ModelMetadata("bad/pipeline"), f"diffusers:{not_a_pipeline}"),
        ModelRequest(ModelMetadata("bad/missing"), f"onnx:{tmp_path / 'missing.onnx'}"),
        ModelRequest(ModelMetadata("good"), ARCH_SPECS["dcgan"]),
    ]
    records = index_embedded(tmp_path / "store", requests, ENCODER_SPEC, PLAN, rank=8, torch_threads=1)
    shape, nan, pipeline, missing, good = records
    assert shape.state is JobState.FAILED
    assert f"{broken['wrong_shape']}: the module returned Tensor of shape (2, 3, 8)" in shape.error
    assert nan.state is JobState.FAILED
    assert f"{broken['nan']} returned non-finite values (NaN or inf) in 64 of 64 images" in nan.error  # the first batch
    assert f"{not_a_pipeline}: not a diffusers pipeline directory (no model_index.json)" in pipeline.error
    assert f"{tmp_path / 'missing.onnx'}: no such file" in missing.error
    assert good.state is JobState.DONE
    assert DirectoryStore.open(tmp_path / "store").ids() == ["good"]


def test_safetensors_weights_that_do_not_fit_the_architecture_are_refused() -> None:
    wrong = f"safetensors:{WEIGHTS_DIR / 'digits_vae.safetensors'}?arch=conditional_dcgan28&class_label=1"
    with pytest.raises(SpecError, match="digits_vae.safetensors: the weights do not fit arch=conditional_dcgan28"):
        load_generator(wrong)
    with pytest.raises(SpecError, match="class-conditional: set class_label"):
        load_generator(ARCH_SPECS["dcgan"].replace("&class_label=7", ""))


def test_an_onnx_graph_with_a_fixed_batch_size_samples_any_count(tmp_path: Path) -> None:
    import torch

    module, native = zoo_export.exportable(get_entry("fashion-vae-coat"))
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(module, (native.latent.draw(3, 0),), str(path), input_names=["z"], dynamo=False)  # batch 3
    generator = load_generator(f"onnx:{path}?output_range=0,1")
    images = generator.sample(7, 11).astype(int)  # three batches of 3, the last one padded
    assert np.abs(images - native.sample(7, 11).astype(int)).max() <= 1


def test_a_worker_that_refuses_python_specs_loads_every_declarative_format(exported: dict) -> None:
    from modelverse.fleet.resolve import Runtime, SpecRefused
    from modelverse.fleet.spec_policy import SpecPolicy

    locked = Runtime(torch_threads=None, policy=SpecPolicy(allow_python=False))  # a worker's default
    for fmt in FORMATS:
        assert locked.generator(request_for_model_dir(exported["vae", fmt]).generator).resolution == 28
    assert locked.generator(ARCH_SPECS["vae"]).resolution == 28
    with pytest.raises(SpecRefused):
        locked.generator("py:fleet_support:conv_generator?seed=1")


@pytest.mark.slow
def test_the_zoo_diffusion_sampler_exports_as_one_graph(tmp_path: Path) -> None:
    """The 6-step DDIM sampler of a zoo diffusion model (it does not map onto diffusers' classes,
    docs/MODELS.md) exported whole: the same images as the zoo's eager sampler."""
    path = zoo_export.export("animal-diffusion-dog", "onnx", tmp_path / "dog")
    generator = load_generator(request_for_model_dir(path.parent).generator)
    native = load_generator("zoo:animal-diffusion-dog").sample(8, 21).astype(int)
    assert np.abs(generator.sample(8, 21).astype(int) - native).max() <= 1
