"""Image-text encoders: the ``Encoder`` protocol and its open_clip implementation.

    from modelverse.encoders import load_encoder, encoder_id
    encoder = load_encoder()            # $MODELVERSE_ENCODER, default "bundled"
    encoder = load_encoder("ViT-B-32-quickgelu=/models/clip/open_clip_model.safetensors",
                           device="cuda")
    encoder_id(encoder)                 # "name:16 hex of the weights' sha256"

The open_clip parts import torch; they load on first attribute access, so that importing
``modelverse.encoders.base`` (the protocol) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelverse.encoders.base import Encoder

if TYPE_CHECKING:
    from modelverse.encoders.factory import (
        EncoderSpecError,
        clear_encoder_cache,
        encoder_id,
        load_encoder,
        parse_spec,
    )
    from modelverse.encoders.openclip_encoder import OpenClipEncoder

_LAZY = {
    "load_encoder": "modelverse.encoders.factory",
    "encoder_id": "modelverse.encoders.factory",
    "parse_spec": "modelverse.encoders.factory",
    "clear_encoder_cache": "modelverse.encoders.factory",
    "EncoderSpecError": "modelverse.encoders.factory",
    "OpenClipEncoder": "modelverse.encoders.openclip_encoder",
}

__all__ = ["Encoder", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelverse.encoders' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
