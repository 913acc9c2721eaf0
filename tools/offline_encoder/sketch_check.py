#!/usr/bin/env python3
"""Sketch queries against bundles: held-out Fashion-MNIST and animal-shape images of the zoo's
split, drawn as line drawings (modelverse.encoders.sketch.line_drawing), matched to the 20
captions "a sketch of {class}". Prints top-1/top-5 per bundle (a bundle trained without
sketches is the "before").

Usage: python tools/offline_encoder/sketch_check.py LABEL=BUNDLE_DIR [...] [--per-class 10]
       [--json FILE]  (compare_builds.py --sketch-check FILE puts it into docs/benchmarks/encoder.json)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from encoder_build.concept_sources import sketch_captions
from encoder_build.registry_sources import ANIMAL_CLASSES, FASHION_CLASSES
from encoder_build.samples import zoo_heldout

from modelverse.encoders import bundled, load_encoder
from modelverse.encoders.sketch import line_drawing


def held_out_sketches(per_class: int) -> tuple[list, list[int], list[str]]:
    from PIL import Image

    from modelverse.zoo.datasets import load_dataset

    subjects: list[str] = []
    pictures, truth = [], []
    fashion = load_dataset("fashion-mnist")
    images, labels = fashion.images, fashion.labels
    held = zoo_heldout("fashion-mnist")
    for c, name in enumerate(FASHION_CLASSES):
        subjects.append(("an " if name[0] in "aeiou" else "a ") + name)
        for i in [i for i in np.flatnonzero(labels == c) if int(i) in held][-per_class:]:
            pictures.append(line_drawing(Image.fromarray(images[i]), sigma=2.5, thickness=2))
            truth.append(len(subjects) - 1)
    animal_data = load_dataset("animal-shape")
    animals, animal_labels = animal_data.images, animal_data.labels
    held = zoo_heldout("animal-shape")
    for c, name in enumerate(ANIMAL_CLASSES):
        subjects.append(("an " if name[0] in "aeiou" else "a ") + name)
        for i in [i for i in np.flatnonzero(animal_labels == c) if int(i) in held][-per_class:]:
            pictures.append(line_drawing(Image.fromarray(animals[i]), sigma=2.5, thickness=2))
            truth.append(len(subjects) - 1)
    return pictures, truth, [sketch_captions(s)[0] for s in subjects]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", help="LABEL=BUNDLE_DIR")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    # the last held-out images of each class: the build evaluated the first ones, and both are
    # unseen, but these are also not the images whose sketches were in the evaluation
    pictures, truth, captions = held_out_sketches(args.per_class)
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        for item in args.bundles:
            label, _, folder = item.partition("=")
            assembled = bundled.assembled_dir(Path(cache), bundle_dir=Path(folder))
            enc = load_encoder(f"local-dir:{assembled}", cache_dir=Path(cache))
            img = enc.encode_images(pictures)
            txt = enc.encode_texts(captions)
            img /= np.linalg.norm(img, axis=1, keepdims=True)
            txt /= np.linalg.norm(txt, axis=1, keepdims=True)
            sims = img @ txt.T
            rank = (sims > sims[np.arange(len(truth)), truth][:, None]).sum(1)
            results[label] = {"n": len(truth), "top1": float((rank < 1).mean()), "top5": float((rank < 5).mean())}
            print(f"{label:8s} n={len(truth)} top1 {results[label]['top1']:.3f} top5 {results[label]['top5']:.3f}")
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
