"""The torch device of the commands that run models here (`modelverse index`, `modelverse worker`)."""

from __future__ import annotations

import os


def torch_device(given: str | None) -> str:
    """--device, else $MODELVERSE_DEVICE, else cuda when torch sees a GPU, else cpu."""
    if given or os.environ.get("MODELVERSE_DEVICE"):
        return given or os.environ["MODELVERSE_DEVICE"]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
