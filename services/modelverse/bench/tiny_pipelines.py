"""Tiny generators for tests and benchmarks: diffusers pipelines built from configuration with random
weights, saved as real pipeline directories (model_index.json + safetensors), nothing downloaded;
and two TorchScript files that load but are not image generators.

- ``save_tiny_ddim(dir)``: an unconditional DDIMPipeline (UNet2DModel 16x16 RGB + DDIMScheduler).
- ``save_tiny_text_to_image(dir)``: a StableDiffusionPipeline: tiny UNet2DConditionModel, tiny
  AutoencoderKL, tiny CLIPTextModel, and a CLIPTokenizer whose vocab.json and merges.txt are
  CLIP's own BPE, rebuilt from open_clip's bundled ``bpe_simple_vocab_16e6.txt.gz``.

The zoo's diffusion models do not map onto diffusers' classes (their UNet has its own block layout
and a continuous-time cosine v-prediction schedule), hence random tiny pipelines for the diffusers
path. Used by the generator tests and tools/bench_generator_formats.py.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import torch


def save_tiny_ddim(directory: Path, seed: int = 0, channels: int = 3) -> Path:
    from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=16, in_channels=channels, out_channels=channels, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    )
    scheduler = DDIMScheduler(num_train_timesteps=100, steps_offset=1)
    DDIMPipeline(unet=unet, scheduler=scheduler).save_pretrained(directory, safe_serialization=True)
    return directory


@lru_cache(maxsize=1)
def _clip_bpe() -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary and merges, made as CLIP's tokenizer makes them from its BPE file."""
    import open_clip.tokenizer as clip_tokenizer

    path = Path(clip_tokenizer.__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
    merges = gzip.open(path).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(clip_tokenizer.bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}, merges


def save_clip_tokenizer(directory: Path) -> Path:
    from transformers import CLIPTokenizer

    vocab, merges = _clip_bpe()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=16).save_pretrained(directory)
    return directory


def save_tiny_text_to_image(directory: Path, seed: int = 0, card: str | None = None) -> Path:
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=4, sample_size=16,
    )
    vocab, _ = _clip_bpe()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    ))
    tokenizer_dir = save_clip_tokenizer(directory / "_tokenizer_source")
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    scheduler = DDIMScheduler(num_train_timesteps=100, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipeline = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(directory, safe_serialization=True)
    if card is not None:
        (directory / "README.md").write_text(card, encoding="utf-8")
    return directory


class WrongShape(torch.nn.Module):
    """latents (b, 8) -> (b, 3, 8): not an image batch."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z[:, None, :].expand(-1, 3, -1))


class NaNImages(torch.nn.Module):
    """latents (b, 8) -> (b, 3, 4, 4) of NaN: the right shape, no colour."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z.sum(dim=1) * float("nan"))[:, None, None, None].expand(-1, 3, 4, 4)


def save_broken_torchscript(directory: Path) -> dict[str, Path]:
    """Two TorchScript files that load but are not generators of images."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"wrong_shape": directory / "wrong_shape.pt", "nan": directory / "nan.pt"}
    torch.jit.save(torch.jit.script(WrongShape()), str(paths["wrong_shape"]))
    torch.jit.save(torch.jit.script(NaNImages()), str(paths["nan"]))
    return paths
