"""Model and encoder specs -> live objects, loaded lazily and once per worker process.

Specs are strings so that they travel in task messages:

- ``zoo:ID``                         a bundled zoo model, ``modelverse.zoo.load_generator(ID)``
- ``py:MODULE:FACTORY?k=v&k2=v2``    ``MODULE.FACTORY(k=v, ...)`` (ints and floats parsed);
                                     for models outside the zoo, and for tests
- ``diffusers:DIR``, ``torchscript:FILE``, ``torch-export:FILE``, ``onnx:FILE``,
  ``safetensors:FILE?arch=...`` and plugin schemes: declarative specs, no code named by the
  spec is imported (``modelverse.generators.registry``; docs/MODELS.md)
- anything else, for encoders        ``modelverse.encoders.load_encoder(SPEC)``

Every load first asks a :class:`~modelverse.fleet.spec_policy.SpecPolicy` whether this process
may load the spec at all (workers refuse ``py:`` unless started with --allow-python-generators).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from modelverse.encoders.base import Encoder
from modelverse.fleet.spec_policy import TRUSTED, SpecError, SpecPolicy, SpecRefused, shown
from modelverse.generators.base import Generator

__all__ = ["Runtime", "SpecError", "SpecRefused", "load_encoder", "load_generator"]


def _coerce(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _load_python(spec: str) -> Any:
    target, _, query = spec[len("py:"):].partition("?")
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SpecError(f"{shown(spec)}: expected py:MODULE:FACTORY[?key=value&...]")
    try:
        factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{shown(spec)}: cannot import {attribute} from {module_name} ({exc})") from exc
    kwargs = {key: _coerce(value) for key, value in parse_qsl(query, keep_blank_values=True)}
    return factory(**kwargs)


def load_generator(spec: str, device: str = "cpu", policy: SpecPolicy = TRUSTED) -> Generator:
    policy.check_generator(spec)  # before anything the spec names is imported
    if spec.startswith("py:"):
        generator = _load_python(spec)
    elif spec.startswith("zoo:"):
        try:
            zoo = importlib.import_module("modelverse.zoo")
        except ImportError as exc:
            raise SpecError(f"{shown(spec)}: the model zoo (modelverse.zoo) is not installed") from exc
        generator = zoo.load_generator(spec[len("zoo:"):], device=device)
    else:
        from modelverse.generators.registry import load_declarative
        from modelverse.generators.specs import GeneratorSpecError

        try:
            generator = load_declarative(spec, device=device)
        except GeneratorSpecError as exc:
            raise SpecError(str(exc)) from exc
    if not isinstance(generator, Generator):
        raise SpecError(f"{shown(spec)}: {type(generator).__name__} does not implement the Generator protocol")
    return generator


def load_encoder(spec: str, device: str = "cpu", policy: SpecPolicy = TRUSTED) -> Encoder:
    policy.check_encoder(spec)  # before anything the spec names is imported
    if spec.startswith("py:"):
        encoder = _load_python(spec)
    else:
        try:
            loader = importlib.import_module("modelverse.encoders").load_encoder
        except (ImportError, AttributeError) as exc:
            raise SpecError(f"{shown(spec)}: modelverse.encoders.load_encoder is not available") from exc
        encoder = loader(spec, device=device)
    if not isinstance(encoder, Encoder):
        raise SpecError(f"{shown(spec)}: {type(encoder).__name__} does not implement the Encoder protocol")
    return encoder


def encoder_identity(encoder: Encoder) -> str:
    """The identity the store records with statistics (``modelverse.encoders``' format)."""
    from modelverse.encoders import encoder_id  # imported late: it pulls in open_clip

    return encoder_id(encoder)


class Runtime:
    """Per-process cache of loaded generators and encoders.

    A worker process serves many chunks of the same few models, and loading a network costs
    far more than one chunk, so each spec is loaded once and kept. The most recently used
    ``max_generators`` generators stay loaded.
    """

    def __init__(self, torch_threads: int | None = 1, max_generators: int = 8, device: str = "cpu",
                 policy: SpecPolicy = TRUSTED) -> None:
        """``policy``: which specs may be loaded; the default trusts the caller (embedded runs of
        specs it chose); workers pass their own (``SpecPolicy(allow_python=...)``)."""
        self.torch_threads = torch_threads
        self.policy = policy
        self.device = device  # for zoo generators and factory encoders; py: specs choose their own
        self.max_generators = max_generators
        self._generators: dict[str, Generator] = {}
        self._encoders: dict[str, Encoder] = {}
        self._lock = threading.Lock()
        self._threads_set = False

    def _set_threads(self) -> None:
        if self._threads_set or self.torch_threads is None:
            return
        import torch

        torch.set_num_threads(self.torch_threads)
        self._threads_set = True

    def check(self, generator: str, encoder: str) -> None:
        """SpecRefused unless this process may load both specs."""
        self.policy.check_generator(generator)
        self.policy.check_encoder(encoder)

    def generator(self, spec: str) -> Generator:
        self.policy.check_generator(spec)  # also for a cached one: the policy may be stricter now
        with self._lock:
            self._set_threads()
            if spec in self._generators:
                self._generators[spec] = self._generators.pop(spec)  # most recently used last
                return self._generators[spec]
            generator = load_generator(spec, self.device, self.policy)
            self._generators[spec] = generator
            while len(self._generators) > self.max_generators:
                self._generators.pop(next(iter(self._generators)))
            return generator

    def encoder(self, spec: str) -> Encoder:
        self.policy.check_encoder(spec)
        with self._lock:
            self._set_threads()
            if spec not in self._encoders:
                self._encoders[spec] = load_encoder(spec, self.device, self.policy)
            return self._encoders[spec]


def check_images(images: object, n: int, resolution: int) -> np.ndarray:
    """The generator's output as the Protocol promises it, or a readable reason why not."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"generator returned {type(images).__name__}, expected a numpy uint8 array")
    expected = (n, resolution, resolution, 3)
    if images.shape != expected:
        raise ValueError(f"generator returned images of shape {images.shape}, expected {expected}")
    if images.dtype != np.uint8:
        raise ValueError(f"generator returned {images.dtype} images, expected uint8")
    return images


def check_features(features: object, n: int, dim: int) -> np.ndarray:
    if not isinstance(features, np.ndarray) or features.shape != (n, dim):
        shape = getattr(features, "shape", type(features).__name__)
        raise ValueError(f"encoder returned features of shape {shape}, expected {(n, dim)}")
    return features
