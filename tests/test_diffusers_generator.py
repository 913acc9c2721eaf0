"""``diffusers:DIR`` on tiny pipelines built from configuration with random weights and saved as
real pipeline directories (modelverse.bench.tiny_pipelines): offline, compared with diffusers' own
pipeline call for the same per-image seeds; text-to-image over a prompt file or the card's
instance prompt; refusals for directories that would run code or are not pipelines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fleet_support import ENCODER_SPEC
from safetensors.torch import load_file

from modelverse.bench.tiny_pipelines import save_tiny_ddim, save_tiny_text_to_image
from modelverse.fleet.embedded import index_embedded
from modelverse.fleet.job_records import JobState
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.requests import ModelRequest, request_for_model_dir
from modelverse.fleet.resolve import SpecError, load_generator
from modelverse.generators.diffusers_generator import DiffusersGenerator, sample_seeds, to_uint8
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata

pytestmark = pytest.mark.slow

CARD = "---\ninstance_prompt: a photo of sks sneaker\ntags: [sneaker, dreambooth]\nlicense: mit\n---\nA tiny DreamBooth.\n"


@pytest.fixture(scope="module")
def ddim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_ddim(tmp_path_factory.mktemp("ddim") / "pipe")


@pytest.fixture(scope="module")
def t2i_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_text_to_image(tmp_path_factory.mktemp("t2i") / "pipe", card=CARD)


def own_images(pipeline, generator: DiffusersGenerator, seeds: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """diffusers' pipeline called directly with the same per-image generators (and prompts)."""
    arguments = generator.call_arguments(seeds)
    images = pipeline(**arguments).images
    return to_uint8(np.asarray(images), len(seeds), generator.resolution, "reference")


def test_unconditional_pipeline_reproduces_diffusers_own_output(ddim_dir: Path) -> None:
    generator = load_generator(f"diffusers:{ddim_dir}?steps=3&eta=0.5&batch=4")
    assert isinstance(generator, DiffusersGenerator) and generator.resolution == 16
    images = generator.sample(6, 123)
    assert images.shape == (6, 16, 16, 3) and images.dtype == np.uint8
    from diffusers import DDIMPipeline  # here, not at the top: importing diffusers costs seconds of every collection

    pipeline = DDIMPipeline.from_pretrained(ddim_dir, local_files_only=True)
    pipeline.set_progress_bar_config(disable=True)
    seeds = sample_seeds(123, 6)
    assert generator.call_arguments(seeds[:4])["num_inference_steps"] == 3
    np.testing.assert_array_equal(images[:4], own_images(pipeline, generator, seeds[:4]))
    np.testing.assert_array_equal(images[4:], own_images(pipeline, generator, seeds[4:]))
    # An image is a function of (seed, position) only: another batch size, the same images.
    rebatched = load_generator(f"diffusers:{ddim_dir}?steps=3&eta=0.5&batch=3").sample(6, 123)
    assert np.abs(rebatched.astype(int) - images).max() <= 1
    assert not np.array_equal(generator.sample(2, 124), images[:2])


def test_text_to_image_samples_over_the_prompt_file(t2i_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red sneaker\n\na blue boot\n")
    generator = load_generator(f"diffusers:{t2i_dir}?prompts={prompts}&steps=3&guidance=4")
    assert isinstance(generator, DiffusersGenerator) and generator.prompts == ["a red sneaker", "a blue boot"]
    assert generator.resolution == 16  # UNet sample size 8 x VAE scale 2
    seeds = sample_seeds(7, 4)
    images = generator.sample(4, 7)
    from diffusers import StableDiffusionPipeline  # here, not at the top: see above

    pipeline = StableDiffusionPipeline.from_pretrained(t2i_dir, local_files_only=True, safety_checker=None,
                                                       requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(images, own_images(pipeline, generator, seeds))
    assert generator.call_arguments(seeds)["prompt"] == [generator.prompts[s % 2] for s in seeds]
    assert generator.call_arguments(seeds)["guidance_scale"] == 4.0
    # The card's instance prompt when no prompt is given; another prompt set, other images.
    from_card = load_generator(f"diffusers:{t2i_dir}?steps=3&guidance=4")
    assert from_card.prompts == ["a photo of sks sneaker"]
    assert not np.array_equal(from_card.sample(2, 7), images[:2])
    euler = load_generator(f"diffusers:{t2i_dir}?prompts={prompts}&steps=3&guidance=4&scheduler=euler")
    assert type(euler.pipeline.scheduler).__name__ == "EulerDiscreteScheduler"  # type: ignore[attr-defined]
    assert not np.array_equal(euler.sample(2, 7), images[:2])


def test_text_to_image_model_indexes_with_its_card(t2i_dir: Path, tmp_path: Path) -> None:
    request = request_for_model_dir(t2i_dir, {"id": "me/sks"}, {"steps": "2", "batch": "5"})
    assert request.metadata.family == "diffusion" and request.metadata.license == "mit"
    assert request.metadata.tags == ("sneaker", "dreambooth")
    plan = SamplePlan(max_samples=10, chunk_size=5)
    records = index_embedded(tmp_path / "a", [request], ENCODER_SPEC, plan, rank=4, torch_threads=1)
    assert records[0].state is JobState.DONE, records[0].error
    again = index_embedded(tmp_path / "b", [request], ENCODER_SPEC, plan, rank=4, torch_threads=1)
    a, b = (DirectoryStore.open(tmp_path / x).get_stats("me/sks") for x in "ab")
    np.testing.assert_array_equal(a.mean, b.mean)  # chunks reproduce: seeds of (model, version, chunk)
    assert again[0].state is JobState.DONE


def test_prompt_problems_are_clear_errors(t2i_dir: Path, ddim_dir: Path, tmp_path: Path) -> None:
    missing = f"diffusers:{t2i_dir}?prompts={tmp_path / 'none.txt'}"
    with pytest.raises(SpecError, match=f"prompts file {tmp_path / 'none.txt'}: no such file"):
        load_generator(missing)
    [failed] = index_embedded(tmp_path / "store", [ModelRequest(ModelMetadata("no/prompts"), missing)], ENCODER_SPEC,
                              SamplePlan(max_samples=4, chunk_size=4), rank=2, torch_threads=1)
    assert failed.state is JobState.FAILED and f"prompts file {tmp_path / 'none.txt'}: no such file" in failed.error
    with pytest.raises(SpecError, match="DDIMPipeline is unconditional and takes no prompt"):
        load_generator(f"diffusers:{ddim_dir}?prompt=a cat")
    no_card = tmp_path / "no-card"
    no_card.symlink_to(t2i_dir.resolve(), target_is_directory=True)
    (t2i_dir / "README.md").rename(tmp_path / "README.md")
    try:
        with pytest.raises(SpecError, match="needs prompts: prompts=FILE, prompt=TEXT or an instance_prompt"):
            load_generator(f"diffusers:{no_card}")
    finally:
        (tmp_path / "README.md").rename(t2i_dir / "README.md")


def test_directories_that_would_run_code_or_are_not_pipelines_are_refused(ddim_dir: Path, tmp_path: Path) -> None:
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "model_index.json").write_text(json.dumps(
        {"_class_name": "DDIMPipeline", "unet": ["my_unet", "MyUNet"], "scheduler": ["diffusers", "DDIMScheduler"]}))
    (custom / "my_unet.py").write_text("raise SystemExit('imported!')\n")
    with pytest.raises(SpecError, match="component 'unet' comes from 'my_unet'; only diffusers and transformers"):
        load_generator(f"diffusers:{custom}")
    (custom / "model_index.json").write_text(json.dumps({"_class_name": "MyPipeline"}))
    with pytest.raises(SpecError, match="'MyPipeline' is not a pipeline class of diffusers"):
        load_generator(f"diffusers:{custom}")
    (custom / "model_index.json").write_text("{not json")
    with pytest.raises(SpecError, match="model_index.json: not valid JSON"):
        load_generator(f"diffusers:{custom}")
    with pytest.raises(SpecError, match="not a diffusers pipeline directory"):
        load_generator(f"diffusers:{tmp_path}")
    pickled = tmp_path / "pickled"
    shutil.copytree(ddim_dir, pickled)
    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), weights.with_suffix(".bin"))  # a pickle can run code when loaded
    weights.unlink()
    with pytest.raises(SpecError, match=f"{pickled}: cannot load the pipeline"):
        load_generator(f"diffusers:{pickled}")
    with pytest.raises(SpecError, match="unknown option"):
        load_generator(f"diffusers:{ddim_dir}?stepz=3")
    with pytest.raises(SpecError, match="scheduler='magic' is not one of"):
        load_generator(f"diffusers:{ddim_dir}?scheduler=magic")
    nan = load_generator(f"diffusers:{ddim_dir}?steps=2")
    nan.pipeline.unet.conv_out.bias.data.fill_(float("nan"))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=f"{ddim_dir}: the pipeline returned non-finite values"):
        nan.sample(2, 0)
    assert torch.isnan(nan.pipeline.unet.conv_out.bias).all()  # type: ignore[attr-defined]
