"""The quality benchmark's queries on the bundled zoo, by modality, each with its ground truth.

Never a model's own samples. Images are pictures the zoo's models were not trained on:

- the 10% held-out split of every class that a zoo model was trained on here (Fashion-MNIST,
  animal silhouettes, digits); the bundled encoder never trained on those images either;
- human faces: scikit-image's LFW faces in the bundled encoder's held-out split (real photos,
  25 px grayscale) and the face of scikit-image's 'astronaut' photo;
- cat faces: crops of scikit-image's 'chelsea' photo (the one real cat photo in a registry
  package; the encoder saw crops of it in training, the cat GAN never did);
- painted eyes: no registry package ships photos of painted eyes, so these are the procedural
  painted eyes of the bundled encoder's held-out split (``source = "drawn"`` in the results).

Sketches are ``encoders.sketch.line_drawing`` of the same pictures (sigma 2.5, 2 px lines), the
function the encoder's sketch training data came from. An image-set query is one group's
pictures together ("which model could have made these?"). A model query asks for the models most
similar to a zoo model; its ground truth is every other model sharing a tag with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from modelverse.encoders.sketch import line_drawing
from modelverse.zoo.heldout import heldout_images
from modelverse.zoo.manifest import ZooEntry

SKETCH_SIGMA = 2.5
SKETCH_THICKNESS = 2
# The bundled encoder's held-out list: which LFW faces and drawn eyes it never trained on.
ENCODER_HELDOUT = Path(__file__).resolve().parents[1] / "encoders" / "bundled" / "held_out.json"
ASTRONAUT_FACE_BOX = (150, 20, 300, 175)
CHELSEA_FACE_BOXES = ((40, 0, 420, 300), (60, 10, 400, 290), (80, 20, 380, 280), (20, 0, 440, 300))


@dataclass(frozen=True)
class PictureGroup:
    """Pictures of one concept and the models that should be found for them."""

    name: str
    source: str  # "heldout-data", "photo" or "drawn"
    pictures: tuple[Image.Image, ...]
    ground_truth: frozenset[str]


@dataclass(frozen=True)
class TextQuery:
    model_id: str
    text: str
    ground_truth: frozenset[str]


@dataclass(frozen=True)
class QuerySuite:
    texts: list[TextQuery]
    groups: list[PictureGroup]
    model_ids: list[str]
    tags: dict[str, frozenset[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # display names, for the metadata baseline
    descriptions: dict[str, str] = field(default_factory=dict)

    def sketches(self) -> list[PictureGroup]:
        return [
            PictureGroup(
                g.name,
                g.source,
                tuple(line_drawing(p, sigma=SKETCH_SIGMA, thickness=SKETCH_THICKNESS) for p in g.pictures),
                g.ground_truth,
            )
            for g in self.groups
        ]

    def similar_model_truth(self, model_id: str) -> frozenset[str]:
        """Other models sharing a tag with ``model_id``."""
        mine = self.tags[model_id]
        return frozenset(m for m, t in self.tags.items() if m != model_id and t & mine)


def _rgb(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")


def _data_groups(entries: Sequence[ZooEntry], per_group: int) -> list[PictureGroup]:
    by_class: dict[tuple[str, str], set[str]] = {}
    for entry in entries:
        if entry.data is not None:
            by_class.setdefault((entry.data["dataset"], entry.data["class"]), set()).add(entry.id)
    return [
        PictureGroup(
            f"{dataset}/{class_name}",
            "heldout-data",
            tuple(_rgb(p) for p in heldout_images(dataset, class_name, limit=per_group)),
            frozenset(models),
        )
        for (dataset, class_name), models in by_class.items()
    ]


def _encoder_heldout(source: str) -> list[str]:
    samples = json.loads(ENCODER_HELDOUT.read_text())["samples"]
    seen: list[str] = []
    for sample in samples:
        if sample["source"] == source and not sample.get("sketch") and sample["group"] not in seen:
            seen.append(sample["group"])
    return seen


def _face_group(models: frozenset[str], per_group: int) -> PictureGroup:
    from skimage import data

    faces = data.lfw_subset()
    indices = [int(g[len("face"):]) for g in _encoder_heldout("lfw_faces") if g.startswith("face")]
    pictures = [_rgb(faces[i] * 255.0) for i in indices[: per_group - 1]]
    pictures.append(_rgb(data.astronaut()).crop(ASTRONAUT_FACE_BOX))
    return PictureGroup("faces", "photo", tuple(pictures), models)


def _cat_group(models: frozenset[str]) -> PictureGroup:
    from skimage import data

    photo = _rgb(data.chelsea())
    return PictureGroup("cat-faces", "photo", tuple(photo.crop(b) for b in CHELSEA_FACE_BOXES), models)


def _eye_groups(entries: Sequence[ZooEntry], per_group: int) -> list[PictureGroup]:
    from modelverse.encoders.painted_eyes import draw_painted_eye

    by_colour: dict[str, list[int]] = {}
    for group in _encoder_heldout("painted_eyes"):
        colour, seed = group.split("/")
        by_colour.setdefault(colour, []).append(int(seed))
    groups = []
    for entry in entries:
        if "eye" not in entry.tags:
            continue
        colour = entry.id.rsplit("-", 1)[-1]
        seeds = by_colour.get(colour, [])[:per_group]
        if seeds:
            groups.append(
                PictureGroup(
                    f"painted-eyes/{colour}",
                    "drawn",
                    tuple(draw_painted_eye(colour, seed) for seed in seeds),
                    frozenset({entry.id}),
                )
            )
    return groups


def build_suite(entries: Sequence[ZooEntry], per_group: int = 10) -> QuerySuite:
    """Every query of the benchmark for the zoo models ``entries``."""
    tags = {e.id: frozenset(e.tags) for e in entries}
    ids = [e.id for e in entries]
    texts = [TextQuery(e.id, e.query_text, frozenset({e.id})) for e in entries]
    groups = _data_groups(entries, per_group)
    faces = frozenset(m for m, t in tags.items() if "human face" in t)
    if faces:
        groups.append(_face_group(faces, per_group))
    cats = frozenset(m for m, t in tags.items() if "cat" in t and "silhouette" not in t)
    if cats:
        groups.append(_cat_group(cats))
    groups += _eye_groups(entries, per_group)
    names = {e.id: e.metadata.name for e in entries}
    descriptions = {e.id: e.metadata.description for e in entries}
    return QuerySuite(texts, groups, ids, tags, names, descriptions)
