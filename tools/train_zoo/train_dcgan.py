"""Train the class-conditional DCGAN of the zoo on Fashion-MNIST (held-out split excluded).

nice .venv/bin/python tools/train_zoo/train_dcgan.py [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import Batches, save_generator, setup, training_tensors
from modelverse.generators.architectures.small import ConditionalDCGAN28
from torch import Tensor, nn
from torch.nn import functional as F


class ProjectionDiscriminator28(nn.Module):
    """Spectrally normalised convs, then a real/fake score plus a class-projection term
    (Miyato & Koyama 2018): the combination keeps a small conditional GAN from collapsing."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.features = nn.Sequential(
            sn(nn.Conv2d(1, width, 3, 1, 1)),
            nn.LeakyReLU(0.1, inplace=True),
            sn(nn.Conv2d(width, width, 4, 2, 1)),
            nn.LeakyReLU(0.1, inplace=True),  # 14x14
            sn(nn.Conv2d(width, 2 * width, 4, 2, 1)),
            nn.LeakyReLU(0.1, inplace=True),  # 7x7
            nn.Flatten(),
        )
        features = 2 * width * 7 * 7
        self.score = sn(nn.Linear(features, 1))
        self.label_projection = sn(nn.Embedding(num_classes, features))

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        h = self.features(x)
        return self.score(h).squeeze(1) + (h * self.label_projection(labels)).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="fashion_mnist_dcgan")
    parser.add_argument(
        "--mode-seeking", type=float, default=1.0, help="weight of the mode-seeking term"
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=400,
        help="also write the generator every this many steps, to inspect it early",
    )
    args = parser.parse_args()
    setup(args.seed, args.threads)
    started = time.time()

    images, labels = training_tensors("fashion-mnist", (-1.0, 1.0))
    config = {"latent_dim": 64, "num_classes": 10, "width": 64}
    generator = ConditionalDCGAN28(**config)
    discriminator = ProjectionDiscriminator28()
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.0, 0.9))
    batches = Batches(images, labels, batch_size=64, seed=args.seed)
    noise = torch.Generator().manual_seed(args.seed + 1)

    done = 0
    for epoch in range(args.epochs):
        for step, (real, y) in enumerate(batches.epoch()):
            # The second half of the batch repeats the first half's labels with fresh noise, for
            # the mode-seeking term below.
            half = len(real) // 2
            y_fake = torch.cat([y[:half], y[:half]])
            z = torch.randn(len(y_fake), config["latent_dim"], generator=noise)
            fake = generator(z, y_fake)
            # Hinge loss, the usual partner of spectral normalisation.
            d_loss = (
                F.relu(1.0 - discriminator(real, y)).mean()
                + F.relu(1.0 + discriminator(fake.detach(), y_fake)).mean()
            )
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            # Mode seeking (Mao et al., CVPR 2019): two noises with one label must give two
            # different images, else a conditional generator ignores its noise and draws a
            # single image per class (which this net did without it).
            image_gap = (fake[:half] - fake[half:]).abs().mean(dim=(1, 2, 3))
            noise_gap = (z[:half] - z[half:]).abs().mean(dim=1)
            mode_seeking = 1.0 / (image_gap / noise_gap + 1e-5).mean()
            g_loss = -discriminator(fake, y_fake).mean() + args.mode_seeking * mode_seeking
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            if step % 100 == 0:
                print(
                    f"epoch {epoch} step {step} d {d_loss.item():.3f} g {g_loss.item():.3f} "
                    f"{time.time() - started:.0f}s",
                    flush=True,
                )
            done += 1
            if done % args.save_every == 0:
                save_generator(generator.eval(), args.name, config, started)
                generator.train()
    save_generator(generator.eval(), args.name, config, started)


if __name__ == "__main__":
    main()
