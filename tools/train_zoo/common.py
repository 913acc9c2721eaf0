"""Shared by the zoo's training scripts: seeding, thread limits, training data, weight files."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from modelverse.zoo.datasets import load_dataset
from modelverse.zoo.split import training_mask
from safetensors.torch import save_file

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "services" / "modelverse" / "zoo" / "weights"


def setup(seed: int, threads: int) -> None:
    """Seeded and single-machine reproducible: same seed, same thread count -> same weights."""
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def training_tensors(
    dataset: str, value_range: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) scaled to value_range, without the held-out split, and their labels."""
    data = load_dataset(dataset)
    keep = training_mask(dataset)
    low, high = value_range
    images = torch.from_numpy(data.images[keep].astype(np.float32) / 255.0)
    images = images.unsqueeze(1) * (high - low) + low
    return images, torch.from_numpy(data.labels[keep].copy())


def save_generator(module: torch.nn.Module, name: str, config: dict, started: float) -> Path:
    """fp16 safetensors: the zoo nets lose nothing visible at half precision, at half the size."""
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    path = WEIGHTS_DIR / f"{name}.safetensors"
    state = {
        k: (v.half() if v.is_floating_point() else v).contiguous()
        for k, v in module.state_dict().items()
    }
    metadata = {"config": json.dumps(config), "train_seconds": f"{time.time() - started:.0f}"}
    save_file(state, str(path), metadata=metadata)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {time.time() - started:.0f} s")
    return path


class Batches:
    """Seeded shuffled minibatches over tensors, epoch after epoch."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int) -> None:
        self.tensors = tensors
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self):
        order = torch.randperm(len(self.tensors[0]), generator=self.generator)
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            index = order[start : start + self.batch_size]
            yield tuple(t[index] for t in self.tensors)
