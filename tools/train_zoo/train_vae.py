"""Train a class-conditional VAE of the zoo: conv nets for 28x28 data sets, MLPs for 8x8 digits.

    nice .venv/bin/python tools/train_zoo/train_vae.py --dataset fashion-mnist [--epochs 6]
    nice .venv/bin/python tools/train_zoo/train_vae.py --dataset digits [--epochs 300]

Only the decoder ships: sampling a VAE is decoding a standard-normal latent.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import Batches, save_generator, setup, training_tensors
from modelverse.generators.architectures.small import (
    ConditionalConvDecoder28,
    ConditionalMLPDecoder,
)
from torch import Tensor, nn
from torch.nn import functional as F


class ConditionalConvEncoder28(nn.Module):
    def __init__(self, latent_dim: int, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(1, width // 2, 4, 2, 1),
            nn.ReLU(),  # 14x14
            nn.Conv2d(width // 2, width, 4, 2, 1),
            nn.ReLU(),  # 7x7
            nn.Flatten(),
        )
        self.head = nn.Linear(width * 49 + num_classes, 2 * latent_dim)

    def forward(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        onehot = F.one_hot(labels, self.num_classes).float()
        return self.head(torch.cat([self.features(x), onehot], dim=1)).chunk(2, dim=1)


class ConditionalMLPEncoder(nn.Module):
    def __init__(
        self, side: int, latent_dim: int, num_classes: int = 10, hidden: int = 128
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(side * side + num_classes, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * latent_dim),
        )

    def forward(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        onehot = F.one_hot(labels, self.num_classes).float()
        return self.net(torch.cat([x.flatten(1), onehot], dim=1)).chunk(2, dim=1)


SETTINGS = {
    # dataset: (decoder config, default epochs, batch size, output name, KL weight beta)
    # Small latents: with room to spare the encoder stores the class in z and the decoder learns
    # to ignore the label, so a class-fixed model would draw every class.
    # beta > 1 for the same reason: it squeezes z further, so the label has to carry the class.
    "fashion-mnist": (
        {"latent_dim": 8, "num_classes": 10, "width": 32},
        6,
        128,
        "fashion_mnist_vae",
        4.0,
    ),
    "digits": (
        {"side": 8, "latent_dim": 8, "num_classes": 10, "hidden": 128},
        300,
        64,
        "digits_vae",
        1.0,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    setup(args.seed, args.threads)
    started = time.time()

    config, epochs, batch_size, name, beta = SETTINGS[args.dataset]
    images, labels = training_tensors(args.dataset, (0.0, 1.0))
    if args.dataset == "digits":
        encoder: nn.Module = ConditionalMLPEncoder(8, config["latent_dim"])
        decoder: nn.Module = ConditionalMLPDecoder(**config)
    else:
        encoder = ConditionalConvEncoder28(config["latent_dim"], width=config["width"])
        decoder = ConditionalConvDecoder28(**config)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=2e-3)
    batches = Batches(images, labels, batch_size=batch_size, seed=args.seed)
    rng = torch.Generator().manual_seed(args.seed + 1)

    for epoch in range(args.epochs or epochs):
        total = 0.0
        for x, y in batches.epoch():
            mean, log_var = encoder(x, y)
            z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=rng)
            reconstruction = F.binary_cross_entropy(decoder(z, y), x, reduction="sum") / len(x)
            kl = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp()) / len(x)
            loss = reconstruction + beta * kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        if epoch % max(1, (args.epochs or epochs) // 10) == 0:
            print(f"epoch {epoch} loss {total:.1f} {time.time() - started:.0f}s", flush=True)
    save_generator(decoder.eval(), name, config, started)


if __name__ == "__main__":
    main()
