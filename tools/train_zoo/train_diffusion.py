"""Train the zoo's tiny class-conditional diffusion model on Animal-Shape silhouettes.

    nice .venv/bin/python tools/train_zoo/train_diffusion.py [--steps 3500] [--threads 1]

v-prediction on a cosine schedule, labels dropped 10% of the time for classifier-free guidance,
an exponential moving average of the weights is what gets saved.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from common import Batches, save_generator, setup, training_tensors
from modelverse.generators.architectures.diffusion import TinyUNet28, alpha_sigma
from torch.nn import functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--dataset", default="animal-shape")
    parser.add_argument("--name", default="animal_shape_diffusion")
    parser.add_argument(
        "--save-every",
        type=int,
        default=500,
        help="also write the EMA weights every this many steps",
    )
    args = parser.parse_args()
    setup(args.seed, args.threads)
    started = time.time()

    images, labels = training_tensors(args.dataset, (-1.0, 1.0))
    config = {"num_classes": 10, "width": 16}
    unet = TinyUNet28(**config)
    ema = copy.deepcopy(unet).eval()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=2e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=2e-3, total_steps=args.steps, pct_start=0.05
    )
    batches = Batches(images, labels, batch_size=48, seed=args.seed)
    rng = torch.Generator().manual_seed(args.seed + 1)

    step = 0
    while step < args.steps:
        for x0, y in batches.epoch():
            if step >= args.steps:
                break
            t = torch.rand(len(x0), generator=rng)
            eps = torch.randn(x0.shape, generator=rng)
            alpha, sigma = (a[:, None, None, None] for a in alpha_sigma(t))
            x_t = alpha * x0 + sigma * eps
            drop = torch.rand(len(y), generator=rng) < 0.1
            y = torch.where(drop, torch.full_like(y, config["num_classes"]), y)
            loss = F.mse_loss(unet(x_t, t, y), alpha * eps - sigma * x0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                decay = min(0.999, (1 + step) / (10 + step))
                for p_ema, p in zip(ema.parameters(), unet.parameters(), strict=True):
                    p_ema.lerp_(p, 1 - decay)
            if step % 200 == 0:
                print(
                    f"step {step} loss {loss.item():.4f} {time.time() - started:.0f}s", flush=True
                )
            step += 1
            if step % args.save_every == 0 and step < args.steps:
                save_generator(ema, args.name, {**config, "trained_steps": step}, started)
    save_generator(ema, args.name, {**config, "trained_steps": step}, started)


if __name__ == "__main__":
    main()
