"""Real images the zoo's models never saw: held-out data set images per class, as RGB."""

from __future__ import annotations

import numpy as np

from modelverse.zoo.datasets import load_dataset
from modelverse.zoo.manifest import ZooEntry, get_entry
from modelverse.zoo.split import heldout_indices


def heldout_images(dataset: str, class_name: str, limit: int | None = None) -> np.ndarray:
    """Held-out images of one class as uint8 (n, H, W, 3) RGB, in held-out index order."""
    indices = heldout_indices(dataset, class_name)
    if limit is not None:
        indices = indices[:limit]
    gray = load_dataset(dataset).images[indices]
    return np.repeat(gray[..., None], 3, axis=-1)


def heldout_images_for(entry_or_id: ZooEntry | str, limit: int | None = None) -> np.ndarray:
    """Held-out images of the class a zoo model was trained on (models trained here only)."""
    entry = get_entry(entry_or_id) if isinstance(entry_or_id, str) else entry_or_id
    if entry.data is None:
        raise ValueError(f"zoo model {entry.id!r} was not trained here: it has no held-out images")
    return heldout_images(entry.data["dataset"], entry.data["class"], limit=limit)
