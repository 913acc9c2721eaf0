"""Frozen features: the inputs of the trained heads, computed once per sample.

The towers are frozen, so their outputs are computed once: pooled 1280-d image features (cached
on disk per sample key with ``--feature-cache``, so ablations and reruns reuse them) and
mean-pooled 384-d caption features.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .samples import Sample, sample_keys


def image_trunk_features(
    model, preprocess, samples: Sequence[Sample], batch: int = 16, log_every: int = 2000
) -> np.ndarray:
    """Frozen pooled 1280-d image features (input of the trained image head).

    Speed on 2 CPU cores (measured): channels_last and batches of 16 run at ~17 ms/image,
    while default layout in batches of 64 took ~120 ms/image. The layout is restored after."""
    import torch

    trunk = model.visual.trunk.to(memory_format=torch.channels_last)
    out = np.zeros((len(samples), trunk.num_features), dtype=np.float32)
    t0 = time.time()
    try:
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            x = torch.stack([preprocess(s.load()) for s in chunk]).to(
                memory_format=torch.channels_last
            )
            with torch.no_grad():
                f = trunk.forward_head(trunk.forward_features(x))
            out[start : start + len(chunk)] = f.numpy()
            if (start // batch) % max(1, log_every // batch) == 0:
                print(
                    f"  image features {start + len(chunk)}/{len(samples)}  {time.time() - t0:.0f}s",
                    flush=True,
                )
    finally:
        model.visual.trunk.to(memory_format=torch.contiguous_format)
    return out


def text_pooled_features(model, tokenizer, texts: Sequence[str], batch: int = 256) -> np.ndarray:
    """Frozen mean-pooled 384-d MiniLM features (input of the trained text projection)."""
    import torch

    out = np.zeros((len(texts), model.text.config.hidden_size), dtype=np.float32)
    # Sort by length and cut each batch's padding: the mean pooler only sees unmasked tokens,
    # so this equals encoding at the full context length, ~3x faster for short captions.
    order = sorted(range(len(texts)), key=lambda k: len(texts[k]))
    for start in range(0, len(texts), batch):
        ids = order[start : start + batch]
        tok = tokenizer([texts[k] for k in ids])
        with torch.no_grad():
            mask = (tok != model.text.config.pad_token_id).long()
            keep = int(mask.sum(1).max())
            tok, mask = tok[:, :keep], mask[:, :keep]
            hidden = model.text.transformer(input_ids=tok, attention_mask=mask)
            pooled = model.text.pooler(hidden, mask)
        out[ids] = pooled.numpy()
    return out


def cached_image_features(
    model, preprocess, samples: Sequence[Sample], cache: Path | None
) -> np.ndarray:
    """Image features of every sample, computing only those missing from ``cache`` (an npz of
    features keyed by ``sample_keys``), which is then rewritten with the new ones."""
    keys = sample_keys(samples)
    cached: dict[str, np.ndarray] = {}
    if cache and cache.is_file():
        z = np.load(cache)
        cached = dict(zip(z["keys"].tolist(), z["img"]))
    todo = [k for k, key in enumerate(keys) if key not in cached]
    print(f"[features] {len(samples) - len(todo)} cached, {len(todo)} to compute", flush=True)
    if todo:
        fresh = image_trunk_features(model, preprocess, [samples[k] for k in todo])
        for k, row in zip(todo, fresh):
            cached[keys[k]] = row
        if cache:
            all_keys = sorted(cached)
            np.savez(cache, keys=np.array(all_keys), img=np.stack([cached[k] for k in all_keys]))
    return np.stack([cached[key] for key in keys]).astype(np.float32)
