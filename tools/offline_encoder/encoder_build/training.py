"""Step 2, training: the projection heads and the logit scale, on the cached frozen features.

Only ``model.visual.head``, ``model.text.proj`` and ``model.logit_scale`` learn; the loss is CLIP's,
with every pair that shares a caption counted as a positive. The trained values are then rounded
to the float16 the bundle stores, so every metric is measured on the committed values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from modelverse.encoders import bundled as mv_bundled

if TYPE_CHECKING:
    import torch

def clip_loss_shared_captions(
    img: torch.Tensor, txt: torch.Tensor, cap_ids: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric CLIP loss whose targets spread over every pair with the same caption id.

    Plain CLIP treats two images with the caption "a photo of a face" in one batch as
    negatives of each other's caption; here all pairs sharing a caption are positives."""
    import torch

    logits = scale * img @ txt.T
    same = (cap_ids[:, None] == cap_ids[None, :]).float()
    t_i2t = same / same.sum(1, keepdim=True)
    t_t2i = same / same.sum(0, keepdim=True)
    loss_i2t = -(t_i2t * torch.log_softmax(logits, 1)).sum(1).mean()
    loss_t2i = -(t_t2i.T * torch.log_softmax(logits.T, 1)).sum(1).mean()
    return (loss_i2t + loss_t2i) / 2


def train_heads(
    model,
    img_feats: np.ndarray,
    cap_feats: np.ndarray,
    sample_caps: list[list[int]],
    train_idx: list[int],
    epochs: int,
    seed: int,
    batch: int = 512,
    lr: float = 2e-3,
) -> dict:
    """Train model.visual.head, model.text.proj and model.logit_scale on cached features.
    Each step draws one of the sample's captions (caption augmentation)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = (
        list(model.visual.head.parameters())
        + list(model.text.proj.parameters())
        + [model.logit_scale]
    )
    for p in params:
        p.requires_grad_(True)
    model.visual.head.train()
    model.text.proj.train()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    img_all = torch.from_numpy(img_feats)
    cap_all = torch.from_numpy(cap_feats)
    n = len(train_idx)
    steps_per_epoch = max(1, math.ceil(n / batch))
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1)
    train_arr = np.asarray(train_idx)
    losses: list[float] = []
    step = 0
    for epoch in range(epochs):
        perm = rng.permutation(train_arr)
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            if len(idx) < 2:
                continue
            cids = torch.tensor([sample_caps[i][rng.integers(len(sample_caps[i]))] for i in idx])
            img = F.normalize(model.visual.head(img_all[idx]), dim=-1)
            txt = F.normalize(model.text.proj(cap_all[cids]), dim=-1)
            loss = clip_loss_shared_captions(img, txt, cids, model.logit_scale.exp().clamp(max=100))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch == epochs - 1:
            print(
                f"  epoch {epoch + 1}/{epochs} loss {np.mean(losses[-steps_per_epoch:]):.3f} "
                f"scale {model.logit_scale.exp().item():.1f}",
                flush=True,
            )
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return {
        "steps": step,
        "batch": batch,
        "lr": lr,
        "final_loss": float(np.mean(losses[-steps_per_epoch:])),
        "logit_scale": float(model.logit_scale.exp()),
    }


def project(model, img_feats: np.ndarray | None = None, cap_feats: np.ndarray | None = None):
    """Heads on cached features, L2-normalised (same as model.encode_* with normalize=True)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        i = (
            F.normalize(model.visual.head(torch.from_numpy(img_feats)), dim=-1).numpy()
            if img_feats is not None
            else None
        )
        t = (
            F.normalize(model.text.proj(torch.from_numpy(cap_feats)), dim=-1).numpy()
            if cap_feats is not None
            else None
        )
    return i, t

def round_heads_to_fp16(model) -> None:
    """Round the trained tensors through float16 in place: the bundle stores them in float16,
    so every metric below is measured on exactly the committed values."""
    import torch

    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.startswith(mv_bundled.TRAINED_PREFIXES) and value.is_floating_point():
                value.copy_(value.to(torch.float16).to(value.dtype))
