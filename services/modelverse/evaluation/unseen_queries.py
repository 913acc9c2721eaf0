"""Queries written the way new users write them, for the bundled zoo (issue 17, item 5).

The quality benchmark (``quality_queries``) asks with each model's own hand-written description
and with line drawings made the way the encoder's sketch training data was made. Users do
neither. This set asks:

- **paraphrases** that avoid every word of the right models' manifest entries (name,
  description, tags, query text): "trainers for jogging" for the sneaker models ('shoe' is one of their tags, so not "running shoes"). ``build_unseen_suite``
  refuses a paraphrase that shares a word with its ground truth's manifest;
- **drawings made by code** in the styles people draw in (``drawings.Style``: thin and thick
  outlines, filled silhouettes, small in the frame, off-centre) of held-out data pictures that
  neither the zoo models nor the encoder trained on (held-out indices from ``SKIP`` on, so not
  the pictures of the main benchmark either), and numerals written with a font;
- **photos**: the LFW faces the encoder held out, and held-out data pictures restyled as a
  product photo is (dark object on a white page, small in a large frame);
- **no-match queries**: texts, drawings and photos of things no zoo model makes (a mountain
  landscape, a house, sklearn's 'china' and 'flower' photos, which the encoder never saw).
  Their ground truth is empty: they measure whether the confidence of the best hit tells them
  from queries that have a right model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from modelverse.evaluation.drawings import NO_MATCH_DRAWINGS, Style, draw_no_match, draw_numeral, draw_shape
from modelverse.zoo.heldout import heldout_images
from modelverse.zoo.manifest import ZooEntry

SKIP = 10  # the main benchmark uses each class's first 10 held-out pictures
PER_CLASS = 2  # drawings per class and style

# (paraphrase, concept): a concept is a zoo id prefix/suffix rule in ``_concept_models``.
PARAPHRASES: tuple[tuple[str, str], ...] = (
    ("basketball kicks", "sneaker"),
    ("trainers for jogging", "sneaker"),
    ("flip-flops for the beach", "sandal"),
    ("strappy beach slippers", "sandal"),
    ("short leather booties", "ankle-boot"),
    ("a purse", "bag"),
    ("a tote to carry groceries", "bag"),
    ("jeans", "trouser"),
    ("slacks for the office", "trouser"),
    ("a tee", "t-shirt"),
    ("a plain cotton tee", "t-shirt"),
    ("a knitted jumper", "pullover"),
    ("a woolly jersey for winter", "pullover"),
    ("a gown", "dress"),
    ("an evening frock", "dress"),
    ("a parka", "coat"),
    ("an anorak for rainy weather", "coat"),
    ("a button-down blouse", "shirt"),
    ("a formal blouse for work", "shirt"),
    ("a headshot of a man", "face"),
    ("a woman looking into the camera", "face"),
    ("somebody's head and shoulders", "face"),
    ("a kitten", "cat-face"),
    ("a tabby kitty", "cat-face"),
    ("an iris on an antique canvas", "eye"),
    ("a sky-coloured iris on canvas", "omniart-eyes-blue"),
    ("an emerald iris on canvas", "omniart-eyes-green"),
    ("a crimson iris on canvas", "omniart-eyes-red"),
    ("a chestnut iris on canvas", "omniart-eyes-brown"),
    ("the shadow of a grizzly", "animal-diffusion-bear"),
    ("a sparrow in shadow", "animal-diffusion-bird"),
    ("the shadow of a kitty", "animal-diffusion-cat"),
    ("dairy cattle in shadow", "animal-diffusion-cow"),
    ("a puppy's shadow", "animal-diffusion-dog"),
    ("a pachyderm's shadow", "animal-diffusion-elephant"),
    ("a tall spotted savanna beast in shadow", "animal-diffusion-giraffe"),
    ("the shadow of a pony", "animal-diffusion-horse"),
    ("a lamb in shadow", "animal-diffusion-sheep"),
    ("the shadow of a striped equine", "animal-diffusion-zebra"),
    ("the numeral after six", "digits-vae-seven"),
    ("a scribbled numeral shaped like a ring", "digits-vae-zero"),
    ("a scribbled numeral shaped like a snowman", "digits-vae-eight"),
    ("a single upright stroke, the first numeral", "digits-vae-one"),
    ("the numeral after two", "digits-vae-three"),
    ("a scribbled numeral", "digit"),
)

NO_MATCH_TEXTS: tuple[str, ...] = (
    "a mountain landscape at sunset",
    "a bowl of ramen",
    "a red sports car",
    "a city skyline at night",
    "a sailing boat on the ocean",
    "a birthday cake with candles",
    "a laptop computer on a desk",
    "a bunch of bananas",
    "a tropical fish in a coral reef",
    "an airplane taking off",
    "a wooden chair",
    "an acoustic guitar",
    "a pizza with mushrooms",
    "a bicycle leaning on a fence",
    "fireworks over a river",
    "a snowy pine forest",
)

# Words too common to count as "the manifest's words" when checking a paraphrase.
STOP_WORDS = frozenset(
    "a an the of for to on in into up as and or with by at from its it is be that this shaped like "
    "after before first".split()
)


@dataclass(frozen=True)
class UnseenQuery:
    """One query: exactly one of ``text`` or ``picture``; ``ground_truth`` empty = no match."""

    name: str
    modality: str  # "text", "image" or "sketch"
    style: str  # "paraphrase", "outline-thin", ..., "photo", "no-match"
    ground_truth: frozenset[str]
    text: str = ""
    picture: Image.Image | None = None

    @property
    def has_match(self) -> bool:
        return bool(self.ground_truth)


def words(text: str) -> set[str]:
    """Content words, lower case, a plural 's' dropped ('shoes' and 'shoe' are one word)."""
    out = set()
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in STOP_WORDS or len(word) < 2:
            continue
        out.add(word[:-1] if word.endswith("s") and len(word) > 3 else word)
    return out


def manifest_words(entry: ZooEntry) -> set[str]:
    m = entry.metadata
    return words(" ".join([m.name, m.description, *m.tags, entry.query_text]))


def _concept_models(concept: str, entries: Sequence[ZooEntry]) -> frozenset[str]:
    ids = [e.id for e in entries]
    if concept in ids:
        return frozenset({concept})
    tag_rules = {"face": "human face", "eye": "eye", "digit": "digit"}
    if concept in tag_rules:
        return frozenset(e.id for e in entries if tag_rules[concept] in e.tags)
    if concept == "cat-face":
        return frozenset(e.id for e in entries if "cat" in e.tags and "silhouette" not in e.tags)
    return frozenset(e.id for e in entries if e.id.startswith("fashion-") and e.id.endswith(f"-{concept}"))


def paraphrase_queries(entries: Sequence[ZooEntry]) -> list[UnseenQuery]:
    by_id = {e.id: e for e in entries}
    out = []
    for text, concept in PARAPHRASES:
        truth = _concept_models(concept, entries)
        if not truth:
            continue  # a slice of the zoo without this concept
        shared = words(text) & set().union(*(manifest_words(by_id[m]) for m in truth))
        if shared:
            raise ValueError(f"paraphrase {text!r} reuses manifest words of its models: {sorted(shared)}")
        out.append(UnseenQuery(f"text/{text}", "text", "paraphrase", truth, text=text))
    return out


def _data_classes(entries: Sequence[ZooEntry]) -> dict[tuple[str, str], frozenset[str]]:
    classes: dict[tuple[str, str], set[str]] = {}
    for entry in entries:
        if entry.data is not None:
            classes.setdefault((entry.data["dataset"], entry.data["class"]), set()).add(entry.id)
    return {k: frozenset(v) for k, v in classes.items()}


def _pictures(dataset: str, class_name: str, count: int) -> np.ndarray:
    return heldout_images(dataset, class_name, limit=SKIP + count)[SKIP:]


def drawing_queries(entries: Sequence[ZooEntry]) -> list[UnseenQuery]:
    out = []
    for (dataset, class_name), truth in _data_classes(entries).items():
        if dataset == "digits":
            continue  # 8 px digits make no shape to trace: numerals are written with a font below
        for k, pixels in enumerate(_pictures(dataset, class_name, PER_CLASS)):
            for style in Style:
                out.append(UnseenQuery(f"sketch/{dataset}/{class_name}#{k}/{style.value}", "sketch", style.value,
                                       truth, picture=draw_shape(pixels, style)))
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    for digit, name in enumerate(names):
        truth = frozenset(e.id for e in entries if e.id == f"digits-vae-{name}")
        for bold in (False, True):
            if truth:
                out.append(UnseenQuery(f"sketch/numeral/{digit}/{'bold' if bold else 'thin'}", "sketch", "numeral",
                                       truth, picture=draw_numeral(digit, bold=bold)))
    out += [UnseenQuery(f"sketch/no-match/{s}", "sketch", "no-match", frozenset(), picture=draw_no_match(s))
            for s in NO_MATCH_DRAWINGS]
    return out


def _product_photo(pixels: np.ndarray) -> Image.Image:
    """A data picture as a shop's product photo: the object dark on a white page, in the middle
    of a larger frame (the zoo's pictures are white objects on black, filling the frame)."""
    inverted = Image.fromarray(255 - np.asarray(pixels, dtype=np.uint8)).convert("RGB").resize((140, 140),
                                                                                               Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (224, 224), "white")
    canvas.paste(inverted, (42, 42))
    return canvas


def photo_queries(entries: Sequence[ZooEntry]) -> list[UnseenQuery]:
    import json

    from skimage import data
    from sklearn.datasets import load_sample_images

    from modelverse.evaluation.quality_queries import ENCODER_HELDOUT

    out = []
    faces = frozenset(e.id for e in entries if "human face" in e.tags)
    if faces:
        held = json.loads(ENCODER_HELDOUT.read_text())["samples"]
        indices = sorted({int(s["group"][len("face"):]) for s in held
                          if s["source"] == "lfw_faces" and s["group"].startswith("face") and not s.get("sketch")})
        lfw = data.lfw_subset()
        for i in indices:
            picture = Image.fromarray((lfw[i] * 255).astype(np.uint8)).convert("RGB")
            out.append(UnseenQuery(f"image/lfw-face/{i}", "image", "photo", faces, picture=picture))
    for (dataset, class_name), truth in _data_classes(entries).items():
        if dataset == "digits":
            continue
        for k, pixels in enumerate(_pictures(dataset, class_name, PER_CLASS)):
            out.append(UnseenQuery(f"image/{dataset}/{class_name}#{k}/product", "image", "product-photo", truth,
                                   picture=_product_photo(pixels)))
    # No match: photos the encoder never saw (sklearn's two sample photos and crops of them,
    # scikit-image's motorcycle stereo pair, which its build list does not name).
    sample = load_sample_images()
    for name, pixels in zip(("china", "flower"), sample.images):
        photo = Image.fromarray(pixels)
        w, h = photo.size
        crops = {"whole": (0, 0, w, h), "left": (0, 0, w // 2, h), "right": (w // 2, 0, w, h),
                 "centre": (w // 4, h // 4, 3 * w // 4, 3 * h // 4)}
        out += [UnseenQuery(f"image/no-match/{name}/{c}", "image", "no-match", frozenset(), picture=photo.crop(box))
                for c, box in crops.items()]
    left, _, _ = data.stereo_motorcycle()
    out.append(UnseenQuery("image/no-match/motorcycle", "image", "no-match", frozenset(),
                           picture=Image.fromarray(left).convert("RGB")))
    return out


def build_unseen_suite(entries: Sequence[ZooEntry]) -> list[UnseenQuery]:
    """Every unseen-style query for the zoo models ``entries``."""
    texts = paraphrase_queries(entries)
    texts += [UnseenQuery(f"text/no-match/{t}", "text", "no-match", frozenset(), text=t) for t in NO_MATCH_TEXTS]
    return texts + drawing_queries(entries) + photo_queries(entries)
