"""Does the encoder know what each zoo model makes? For every model of an indexed store of the
bundled zoo, the rank of the model's own hand-written description (its manifest `query_text`)
among every zoo model's description, by cosine between the text feature and the model's
normalised first moment (the mean of its samples' normalised features).

    python tools/bench_captions.py --store DIR [--encoder SPEC] [--out FILE.json]

Index the store first: `modelverse index --zoo bundled --store DIR --samples N`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
from pathlib import Path

import numpy as np

from modelverse.encoders import encoder_id, load_encoder
from modelverse.store.directory import DirectoryStore
from modelverse.zoo import bundled_manifest


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--encoder", default=os.environ.get("MODELVERSE_ENCODER", "bundled"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/captions.json"))
    args = parser.parse_args()

    store = DirectoryStore.open(args.store)
    encoder = load_encoder(args.encoder)
    store.check_query_encoder(encoder_id(encoder))
    entries = [e for e in bundled_manifest() if e.id in store]
    if len(entries) < 15:
        raise SystemExit(f"{args.store} holds {len(entries)} zoo models; index the bundled zoo first")
    texts = unit(encoder.encode_texts([e.query_text for e in entries]))
    means = unit(np.stack([store.get_stats(e.id).mean for e in entries]))
    similarity = means @ texts.T  # (model, caption)
    rows = []
    for i, entry in enumerate(entries):
        order = np.argsort(-similarity[i], kind="stable")
        rank = int(np.nonzero(order == i)[0][0]) + 1
        rows.append({
            "id": entry.id,
            "rank_of_own_description": rank,
            "best_description_of": entries[int(order[0])].id,
            "samples": store.get(entry.id).count,
        })
    ranks = np.array([r["rank_of_own_description"] for r in rows])
    print(f"{'model':<28} {'rank':>4}  best-matching description")
    for r in rows:
        print(f"{r['id']:<28} {r['rank_of_own_description']:>4}  {r['best_description_of']}")
    print(f"\n{len(rows)} models, {len(entries)} candidate descriptions: rank 1 for {np.mean(ranks == 1):.2f}, "
          f"top 5 for {np.mean(ranks <= 5):.2f}, median rank {np.median(ranks):.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "own_description_rank",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} ({os.cpu_count()} cpus)",
        "encoder": encoder_id(encoder),
        "candidates": len(entries),
        "top1": float(np.mean(ranks == 1)), "top5": float(np.mean(ranks <= 5)),
        "models": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
