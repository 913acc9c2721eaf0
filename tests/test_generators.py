"""TorchGenerator: the adapter from torch modules to the Generator interface, on real modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from modelverse.generators.base import Generator
from modelverse.generators.torch_generator import LatentSpec, TorchGenerator
from torch import nn


class TinyDeconv(nn.Module):
    """A real (randomly initialised) conv generator: z (8, 1, 1) -> (channels, 8, 8), tanh."""

    def __init__(self, channels: int = 3, num_classes: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(num_classes, 8) if num_classes else None
        self.net = nn.Sequential(
            nn.ConvTranspose2d(8, 16, 4, 1, 0),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.ConvTranspose2d(16, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            z = z + self.embed(labels)[:, :, None, None]
        return self.net(z)


def make(module: nn.Module | None = None, **kwargs) -> TorchGenerator:
    spec = kwargs.pop("latent", LatentSpec(shape=(8, 1, 1)))
    return TorchGenerator(
        module or TinyDeconv(), spec, resolution=kwargs.pop("resolution", 8), **kwargs
    )


def test_samples_are_uint8_rgb_of_the_declared_resolution() -> None:
    generator = make()
    images = generator.sample(5, seed=1)
    assert isinstance(generator, Generator)
    assert images.shape == (5, 8, 8, 3) and images.dtype == np.uint8
    assert images.std() > 0


def test_same_seed_same_images_and_different_seeds_differ() -> None:
    generator = make()
    np.testing.assert_array_equal(generator.sample(6, seed=7), make().sample(6, seed=7))
    assert not np.array_equal(generator.sample(6, seed=7), generator.sample(6, seed=8))


def test_images_do_not_depend_on_batch_size() -> None:
    reference = make(batch_size=64).sample(10, seed=3)
    for batch_size in (1, 3, 7):
        np.testing.assert_array_equal(make(batch_size=batch_size).sample(10, seed=3), reference)


def test_pixel_values_follow_the_declared_output_range() -> None:
    module = TinyDeconv()
    latents = LatentSpec(shape=(8, 1, 1)).draw(4, seed=5)
    with torch.inference_mode():
        expected = (
            ((module.eval()(latents) + 1) / 2 * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        )
    np.testing.assert_array_equal(make(module).sample(4, seed=5), expected.numpy())
    # The same module declared as a [0, 1] output: negative values clip to black.
    unit = make(TinyDeconv(), output_range=(0.0, 1.0)).sample(4, seed=5)
    assert (unit <= make(TinyDeconv()).sample(4, seed=5)).all() and (unit == 0).any()


def test_grayscale_output_is_repeated_into_rgb() -> None:
    images = make(TinyDeconv(channels=1)).sample(3, seed=0)
    assert images.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 1])
    np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_uniform_latents_lie_in_minus_one_one() -> None:
    z = LatentSpec(shape=(1000,), distribution="uniform").draw(2, seed=0)
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.9 and z.max() > 0.9


@pytest.mark.parametrize("label_format", ["index", "onehot"])
def test_class_fixed_generator_passes_its_label(label_format: str) -> None:
    seen: list[torch.Tensor] = []

    class Recorder(TinyDeconv):
        def forward(self, z, labels=None):
            seen.append(labels)
            index = labels if label_format == "index" else labels.argmax(1)
            return super().forward(z, index)

    spec = LatentSpec(shape=(8, 1, 1), class_label=2, num_classes=4, label_format=label_format)
    images = make(Recorder(num_classes=4), latent=spec, batch_size=3).sample(4, seed=0)
    assert images.shape == (4, 8, 8, 3)
    expected = torch.tensor([2, 2, 2]) if label_format == "index" else torch.eye(4)[[2, 2, 2]]
    torch.testing.assert_close(seen[0], expected)
    other = LatentSpec(shape=(8, 1, 1), class_label=3, num_classes=4, label_format=label_format)
    assert not np.array_equal(images, make(Recorder(num_classes=4), latent=other).sample(4, seed=0))


def test_wrong_output_shape_is_a_clear_error() -> None:
    with pytest.raises(
        ValueError, match=r"returned shape \(2, 3, 8, 8\), expected \(2, 1 or 3, 16, 16\)"
    ):
        make(resolution=16).sample(2, seed=0)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(8, 12))
    with pytest.raises(ValueError, match=r"returned shape \(2, 12\)"):
        make(flat).sample(2, seed=0)


@pytest.mark.parametrize("n, seed", [(-1, 0), (2.5, 0), (2, -1), (2, 2**64), (True, 0)])
def test_bad_arguments_are_refused(n, seed) -> None:
    with pytest.raises(ValueError):
        make().sample(n, seed)


def test_zero_samples_give_an_empty_array() -> None:
    assert make().sample(0, seed=0).shape == (0, 8, 8, 3)


def test_invalid_latent_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="class_label"):
        LatentSpec(shape=(4,), class_label=5, num_classes=3)
    with pytest.raises(ValueError, match="distribution"):
        LatentSpec(shape=(4,), distribution="cauchy")
    with pytest.raises(ValueError, match="shape"):
        LatentSpec(shape=())
