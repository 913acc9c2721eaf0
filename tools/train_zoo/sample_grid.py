"""Save a PNG grid of samples of zoo models, one row per model, to check them by eye.

.venv/bin/python tools/train_zoo/sample_grid.py --prefix fashion-dcgan --out /tmp/grid.png
.venv/bin/python tools/train_zoo/sample_grid.py --ids digiface-dcgan omniart-eyes-red --out g.png
"""

from __future__ import annotations

import argparse

import numpy as np
from modelverse import zoo
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="", help="only models whose id starts with this")
    parser.add_argument("--ids", nargs="*", help="only these model ids (in this order)")
    parser.add_argument("--per-model", type=int, default=10)
    parser.add_argument("--side", type=int, default=64, help="pixels per image in the grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = []
    entries = [zoo.get_entry(i) for i in args.ids] if args.ids else zoo.bundled_manifest()
    for entry in entries:
        if not entry.id.startswith(args.prefix):
            continue
        images = zoo.load_generator(entry).sample(args.per_model, seed=args.seed)
        tiles = [
            np.asarray(Image.fromarray(im).resize((args.side, args.side), Image.NEAREST))
            for im in images
        ]
        rows.append(np.concatenate(tiles, axis=1))
        print(entry.id)
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
