"""``diffusers:DIR``: a local diffusers pipeline directory as a Generator, offline.

Unconditional pipelines (DDPM, DDIM, PNDM, latent diffusion, ...) sample from noise; text-to-image
pipelines sample over a prompt set: ``prompts=FILE`` (one prompt per line), ``prompt=TEXT``, or the
model card's ``instance_prompt``. Each image i of a call with seed s has its own torch.Generator
seeded with ``sample_seeds(s, n)[i]`` (and its prompt is ``prompts[seed_i % len(prompts)]``), so an
image is a pure function of (chunk seed, position) whatever the batch size or the worker.

Options: ``steps`` (num_inference_steps; default the pipeline's), ``guidance`` (guidance_scale,
text-to-image), ``eta`` (DDIM), ``resolution`` (text-to-image height and width; default the
UNet's sample size times the VAE's scale), ``scheduler`` (one of SCHEDULERS, built from the saved
scheduler's config), ``batch`` (images per pipeline call, default 8), ``dtype`` (float16 for half
precision on a GPU), ``negative_prompt``.

Safety: the directory's ``model_index.json`` may only name diffusers and transformers classes
(custom pipelines and components would import code from the directory), and weights load from
safetensors only (pickled .bin files can run code).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelverse.generators.card import read_card
from modelverse.generators.specs import GeneratorSpec, GeneratorSpecError

ALLOWED_LIBRARIES = ("diffusers", "transformers")
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-ancestral": "EulerAncestralDiscreteScheduler",
    "dpm-solver": "DPMSolverMultistepScheduler",
    "lms": "LMSDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}
OPTIONS = ("steps", "guidance", "eta", "resolution", "scheduler", "batch", "dtype", "prompts", "prompt",
           "negative_prompt")
IMAGE_INPUTS = ("image", "mask_image", "control_image", "init_image")
MAX_PROMPTS = 100_000
DEFAULT_BATCH = 8
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def sample_seeds(seed: int, n: int) -> list[int]:
    """The seed of each image of a call: a hash of (seed, position), 63 bits."""
    return [
        int.from_bytes(hashlib.blake2b(seed.to_bytes(8, "little") + i.to_bytes(8, "little"), digest_size=8).digest(),
                       "little") >> 1
        for i in range(n)
    ]


def _pipeline_directory(spec: GeneratorSpec) -> tuple[Path, dict[str, Any]]:
    directory = Path(spec.target)
    if not directory.is_dir():
        raise GeneratorSpecError(f"{spec.label}: no such directory")
    index = directory / "model_index.json"
    if not index.is_file():
        raise GeneratorSpecError(f"{spec.label}: not a diffusers pipeline directory (no model_index.json)")
    try:
        config = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GeneratorSpecError(f"{spec.label}/model_index.json: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise GeneratorSpecError(f"{spec.label}/model_index.json: expected a JSON object")
    return directory, config


def _pipeline_class(spec: GeneratorSpec, config: dict[str, Any]) -> type:
    import diffusers

    name = config.get("_class_name")
    if not isinstance(name, str) or not name.isidentifier():
        raise GeneratorSpecError(f"{spec.label}/model_index.json: _class_name must name a diffusers pipeline class")
    pipeline_class = getattr(diffusers, name, None)
    if not (isinstance(pipeline_class, type) and issubclass(pipeline_class, diffusers.DiffusionPipeline)):
        raise GeneratorSpecError(f"{spec.label}: {name[:80]!r} is not a pipeline class of diffusers "
                                 "(custom pipelines are not loaded: they run code from the directory)")
    for component, value in config.items():
        if component.startswith("_") or not isinstance(value, list):
            continue
        library = value[0] if value else None
        if library is not None and library not in ALLOWED_LIBRARIES:
            raise GeneratorSpecError(
                f"{spec.label}: component {component[:80]!r} comes from {str(library)[:80]!r}; only diffusers and "
                "transformers components are loaded (others run code from the directory)"
            )
    return pipeline_class


def _prompts(spec: GeneratorSpec, directory: Path) -> list[str]:
    if "prompts" in spec.options:
        path = Path(spec.options["prompts"])
        if not path.is_file():
            raise GeneratorSpecError(f"{spec.label}: prompts file {str(path)[:200]}: no such file")
        with path.open(encoding="utf-8", errors="replace") as handle:
            prompts = [line.strip() for _, line in zip(range(MAX_PROMPTS), handle) if line.strip()]
        if not prompts:
            raise GeneratorSpecError(f"{spec.label}: prompts file {str(path)[:200]} has no prompt")
        return prompts
    if spec.options.get("prompt", "").strip():
        return [spec.options["prompt"].strip()]
    card = read_card(directory)
    if card.instance_prompt:
        return [card.instance_prompt]
    raise GeneratorSpecError(
        f"{spec.label}: a text-to-image pipeline needs prompts: prompts=FILE, prompt=TEXT or an "
        f"instance_prompt in {spec.label}/README.md"
    )


def _resolution(spec: GeneratorSpec, pipeline: Any, text_to_image: bool) -> int:
    given = spec.integer("resolution")
    if given is not None:
        return given
    denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
    size = getattr(getattr(denoiser, "config", None), "sample_size", None)
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise GeneratorSpecError(f"{spec.label}: non-square sample size {tuple(size)}; set resolution=N")
        size = size[0]
    if not isinstance(size, int):
        raise GeneratorSpecError(f"{spec.label}: the pipeline declares no sample size; set resolution=N")
    scale = getattr(pipeline, "vae_scale_factor", None)
    if scale is None and (autoencoder := getattr(pipeline, "vqvae", None) or getattr(pipeline, "vae", None)):
        scale = 2 ** (len(autoencoder.config.block_out_channels) - 1)
    return int(size * (scale or 1))


class DiffusersGenerator:
    """Samples of a loaded pipeline as uint8 RGB, batch by batch, per-image generators."""

    def __init__(self, pipeline: Any, spec: GeneratorSpec, *, prompts: list[str] | None, resolution: int) -> None:
        self.pipeline = pipeline
        self.name = spec.label
        self.prompts = prompts
        self._resolution = resolution
        self.batch_size = spec.integer("batch", DEFAULT_BATCH) or DEFAULT_BATCH
        accepted = set(inspect.signature(pipeline.__call__).parameters)
        wanted: dict[str, Any] = {
            "num_inference_steps": spec.integer("steps"),
            "guidance_scale": spec.number("guidance"),
            "eta": spec.number("eta"),
            "negative_prompt": spec.text("negative_prompt"),
        }
        if prompts is not None:
            wanted.update(height=resolution, width=resolution)
        refused = [k for k, v in wanted.items() if v is not None and k not in accepted]
        if refused:
            raise GeneratorSpecError(f"{self.name}: {type(pipeline).__name__} takes no {', '.join(refused)}")
        self.call_options = {k: v for k, v in wanted.items() if v is not None}

    @property
    def resolution(self) -> int:
        return self._resolution

    def sample(self, n: int, seed: int) -> np.ndarray:
        seeds = sample_seeds(int(seed), int(n))
        images = np.empty((n, self._resolution, self._resolution, 3), dtype=np.uint8)
        for start in range(0, n, self.batch_size):
            batch_seeds = seeds[start : start + self.batch_size]
            images[start : start + len(batch_seeds)] = self._batch(batch_seeds)
        return images

    def call_arguments(self, batch_seeds: list[int]) -> dict[str, Any]:
        """The pipeline call for these images (public so tests can run diffusers the same way)."""
        # CPU generators: the starting noise is the same on a CPU and on a GPU.
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in batch_seeds]
        arguments: dict[str, Any] = {**self.call_options, "generator": generators, "output_type": "np"}
        if self.prompts is None:
            arguments["batch_size"] = len(batch_seeds)
        else:
            arguments["prompt"] = [self.prompts[s % len(self.prompts)] for s in batch_seeds]
        return arguments

    def _batch(self, batch_seeds: list[int]) -> np.ndarray:
        with torch.inference_mode():
            result = self.pipeline(**self.call_arguments(batch_seeds))
        return to_uint8(np.asarray(result.images), len(batch_seeds), self._resolution, self.name)


def to_uint8(images: np.ndarray, count: int, resolution: int, name: str) -> np.ndarray:
    """A pipeline's "np" output (batch, H, W, C) in [0, 1] as uint8 RGB; NaN is an error."""
    expected = f"({count}, {resolution}, {resolution}, 1 or 3)"
    if images.ndim != 4 or images.shape[0] != count or images.shape[1:3] != (resolution, resolution) \
            or images.shape[3] not in (1, 3):
        raise ValueError(f"{name}: the pipeline returned images of shape {images.shape}, expected {expected}")
    finite = np.isfinite(images).reshape(count, -1).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name}: the pipeline returned non-finite values (NaN or inf) in "
                         f"{int((~finite).sum())} of {count} images")
    pixels = np.clip(np.rint(images.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(pixels, 3, axis=3) if pixels.shape[3] == 1 else pixels


def load(spec: GeneratorSpec, device: str = "cpu") -> DiffusersGenerator:
    """Load the pipeline of ``diffusers:DIR`` (no network: local files only, safetensors only)."""
    spec.check_known(OPTIONS)
    directory, config = _pipeline_directory(spec)
    pipeline_class = _pipeline_class(spec, config)
    dtype = DTYPES[spec.choice("dtype", tuple(DTYPES), "float32")]
    scheduler_name = spec.choice("scheduler", ("", *SCHEDULERS), "")
    text_to_image = "prompt" in inspect.signature(pipeline_class.__call__).parameters
    needs_image = [p for p in IMAGE_INPUTS if p in inspect.signature(pipeline_class.__call__).parameters]
    if needs_image:
        raise GeneratorSpecError(f"{spec.label}: {pipeline_class.__name__} transforms an input image "
                                 f"({needs_image[0]}); a generator samples from noise")
    if not text_to_image and ("prompts" in spec.options or "prompt" in spec.options):
        raise GeneratorSpecError(f"{spec.label}: {pipeline_class.__name__} is unconditional and takes no prompt")
    prompts = _prompts(spec, directory) if text_to_image else None
    extra: dict[str, Any] = {}
    if "safety_checker" in config:  # a checker would black out images: the statistics must see the samples
        extra.update(safety_checker=None, requires_safety_checker=False)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # Workers log per chunk; loading progress bars would fill their logs.
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        pipeline = pipeline_class.from_pretrained(
            str(directory), local_files_only=True, use_safetensors=True, dtype=dtype, low_cpu_mem_usage=False,
            **extra,
        )
    except Exception as exc:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise GeneratorSpecError(f"{spec.label}: cannot load the pipeline ({text})") from exc
    if scheduler_name:
        import diffusers

        scheduler_class = getattr(diffusers, SCHEDULERS[scheduler_name])
        pipeline.scheduler = scheduler_class.from_config(pipeline.scheduler.config)
    pipeline = pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return DiffusersGenerator(pipeline, spec, prompts=prompts, resolution=_resolution(spec, pipeline, text_to_image))
