"""The held-out split: 10% of every class of every training data set, never seen in training.

The benchmark queries the zoo with these real images, so they must stay out of every model's
training data. heldout.json (committed) is the record; `make_split` is how it was made.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from modelverse.zoo.datasets import DATASET_NAMES, LabelledImages, load_dataset

HELDOUT_PATH = Path(__file__).with_name("heldout.json")
HELDOUT_FRACTION = 0.1
SPLIT_SEED = 20231212


def make_split(
    data: LabelledImages, fraction: float = HELDOUT_FRACTION, seed: int = SPLIT_SEED
) -> dict[str, list[int]]:
    """class name -> sorted held-out indices: ceil(fraction * class size) per class."""
    rng = np.random.default_rng(seed)
    split: dict[str, list[int]] = {}
    for index, class_name in enumerate(data.class_names):
        members = np.flatnonzero(data.labels == index)
        count = int(np.ceil(fraction * len(members)))
        chosen = rng.permutation(members)[:count]
        split[class_name] = sorted(int(i) for i in chosen)
    return split


def write_split(path: Path = HELDOUT_PATH) -> dict:
    record = {
        "fraction": HELDOUT_FRACTION,
        "seed": SPLIT_SEED,
        "datasets": {},
    }
    for name in DATASET_NAMES:
        data = load_dataset(name)
        record["datasets"][name] = {
            "num_images": int(len(data.labels)),
            "heldout": make_split(data),
        }
    path.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    return record


@cache
def _record() -> dict:
    return json.loads(HELDOUT_PATH.read_text())


def heldout_indices(dataset: str, class_name: str) -> np.ndarray:
    record = _record()["datasets"]
    if dataset not in record:
        raise KeyError(f"no held-out split for data set {dataset!r}; known: {', '.join(record)}")
    classes = record[dataset]["heldout"]
    if class_name not in classes:
        raise KeyError(
            f"data set {dataset!r} has no class {class_name!r}; known: {', '.join(classes)}"
        )
    return np.asarray(classes[class_name], dtype=np.int64)


def training_mask(dataset: str) -> np.ndarray:
    """True for the images a zoo model may train on, checked against the data set's size."""
    data = load_dataset(dataset)
    entry = _record()["datasets"][dataset]
    if entry["num_images"] != len(data.labels):
        raise ValueError(
            f"data set {dataset!r} has {len(data.labels)} images but the held-out "
            f"split was made for {entry['num_images']}: a different package version?"
        )
    mask = np.ones(len(data.labels), dtype=bool)
    for indices in entry["heldout"].values():
        mask[indices] = False
    return mask
