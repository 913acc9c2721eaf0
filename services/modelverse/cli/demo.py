"""`modelverse demo`: index the bundled zoo of real generative models and search it by text,
image, sketch, a set of images and a model, end to end, offline.

It runs the same commands a user would (`modelverse index`, `modelverse search`), so what it
prints is what they print. Re-running it resumes: models already in the store are skipped.
The query pictures are held-out data-set images that no zoo model was trained on.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from modelverse.errors import InvalidInputError
from modelverse.settings.web import WebSettings

DEMO_TEXT = "a photo of a sneaker"
DEMO_IMAGE_CLASS = ("fashion-mnist", "trouser")
DEMO_SKETCH_CLASS = ("fashion-mnist", "bag")
DEMO_SET_CLASS = ("animal-shape", "elephant")
DEMO_LIKE = "fashion-vae-sneaker"
DEMO_WEB_PORT = WebSettings.default_of("port")  # `cluster up`'s default --web-port


def register(subparsers: argparse._SubParsersAction, cli: Callable[[list[str]], int]) -> None:
    """``cli``: the `modelverse` entry point, which the demo runs as a user would."""
    parser = subparsers.add_parser("demo", help="index the bundled zoo and search it with every kind of query")
    parser.add_argument("--store", default=".modelverse/demo-store", metavar="DIR",
                        help="where to build the demo store (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=100,
                        help="samples per model (default: %(default)s; the paper uses 50,000)")
    parser.set_defaults(handler=lambda args: run(args, cli))


def _query_pictures(root: Path) -> dict[str, Path]:
    """Write the demo's query pictures (held-out images, a line drawing) next to the store."""
    from modelverse.encoders.sketch import line_drawing
    from modelverse.zoo import heldout_images

    folder = root / "demo-queries"
    (folder / "elephants").mkdir(parents=True, exist_ok=True)
    image = folder / f"{DEMO_IMAGE_CLASS[1]}.png"
    Image.fromarray(heldout_images(*DEMO_IMAGE_CLASS, limit=1)[0]).save(image)
    sketch = folder / f"{DEMO_SKETCH_CLASS[1]}-sketch.png"
    line_drawing(Image.fromarray(heldout_images(*DEMO_SKETCH_CLASS, limit=1)[0])).save(sketch)
    for i, pixels in enumerate(heldout_images(*DEMO_SET_CLASS, limit=4)):
        Image.fromarray(pixels).save(folder / "elephants" / f"{i}.png")
    return {"image": image, "sketch": sketch, "images": folder / "elephants"}


def run(args: argparse.Namespace, modelverse: Callable[[list[str]], int]) -> int:
    if args.samples < 2:
        raise InvalidInputError("the demo needs at least 2 samples per model")
    root = Path(args.store)
    print(f"Indexing the bundled zoo ({args.samples} samples per model) into {root.resolve()} ...", flush=True)
    status = modelverse([
        "index", "--zoo", "bundled", "--store", str(root),
        "--samples", str(args.samples), "--chunk-size", str(args.samples), "--no-adaptive",
    ])
    if status != 0:
        return status
    pictures = _query_pictures(root)
    queries = [
        (f"text: {DEMO_TEXT!r}", ["--text", DEMO_TEXT]),
        (f"image: a held-out Fashion-MNIST {DEMO_IMAGE_CLASS[1]} ({pictures['image']})", ["--image", str(pictures["image"])]),
        (f"sketch: a line drawing of a held-out {DEMO_SKETCH_CLASS[1]} ({pictures['sketch']})",
         ["--sketch", str(pictures["sketch"])]),
        (f"text + sketch: {DEMO_TEXT!r} and the {DEMO_SKETCH_CLASS[1]} drawing",
         ["--text", DEMO_TEXT, "--sketch", str(pictures["sketch"])]),
        (f"image set: which model could have made these {DEMO_SET_CLASS[1]} silhouettes? ({pictures['images']})",
         ["--images", str(pictures["images"])]),
        (f"model: models like {DEMO_LIKE}", ["--like", DEMO_LIKE]),
    ]
    for title, query in queries:
        print(f"\n== {title}", flush=True)
        status = modelverse(["search", "--store", str(root), "--top-k", "5", *query])
        if status != 0:
            return status
    print(f"\nstore: {root.resolve()}")
    print(f"search it yourself: .venv/bin/modelverse search --store {root} --text 'a painting of a blue eye'")
    print(f"in a browser: .venv/bin/modelverse cluster up --store {root} --encoder bundled --generators zoo "
          f"--web-port {DEMO_WEB_PORT}")
    print(f"  then open http://127.0.0.1:{DEMO_WEB_PORT}")
    return 0
