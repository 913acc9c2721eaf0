"""Declarative generator specs: ``SCHEME:TARGET?key=value&...``, parsed without loading anything.

A declarative spec names a file or directory of weights and how to sample it; no code named by
the spec is imported (issue 14: workers only run what they are allowed to). The schemes:

- ``diffusers:DIR``         a diffusers pipeline directory (``model_index.json``)
- ``torchscript:FILE``      a TorchScript module, latents -> images
- ``torch-export:FILE``     a ``torch.export`` program (``.pt2``), latents -> images
- ``onnx:FILE``             an ONNX graph run by onnxruntime, latents -> images
- ``safetensors:FILE``      weights of one of the project's own architectures (``arch=...``)

This module is torch-free: the serving admin checks specs with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from modelverse.errors import InvalidInputError

DECLARATIVE_SCHEMES = ("diffusers", "torchscript", "torch-export", "onnx", "safetensors")
MAX_SPEC_LENGTH = 4096


class GeneratorSpecError(InvalidInputError):
    """A spec (or one of its options) that cannot name a generator; the message says why."""


def _short(text: str, limit: int = 120) -> str:
    """Specs come from users: never echo more than ``limit`` characters of one."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class GeneratorSpec:
    scheme: str
    target: str  # the file or directory (or a plugin's argument)
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How errors name the model: its file or directory."""
        return _short(self.target)

    def __str__(self) -> str:
        query = urlencode(sorted(self.options.items()), safe="/,:")  # paths and ranges stay readable
        return f"{self.scheme}:{self.target}" + (f"?{query}" if query else "")

    def with_options(self, **extra: str) -> GeneratorSpec:
        return GeneratorSpec(self.scheme, self.target, {**self.options, **extra})

    # Typed option accessors; each error names the option and the spec's target.

    def text(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def integer(self, key: str, default: int | None = None, *, minimum: int = 1) -> int | None:
        if key not in self.options:
            return default
        raw = self.options[key]
        try:
            value = int(raw)
        except ValueError:
            raise GeneratorSpecError(f"{self.label}: option {key}={_short(raw, 40)!r} is not an integer") from None
        if value < minimum:
            raise GeneratorSpecError(f"{self.label}: option {key} must be at least {minimum}, got {value}")
        return value

    def number(self, key: str, default: float | None = None) -> float | None:
        if key not in self.options:
            return default
        raw = self.options[key]
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise GeneratorSpecError(f"{self.label}: option {key}={_short(raw, 40)!r} is not a finite number")
        return value

    def shape(self, key: str) -> tuple[int, ...] | None:
        """``latent=100`` or ``latent=100x1x1`` (also ``100,1,1``): one latent's shape."""
        if key not in self.options:
            return None
        raw = self.options[key].replace(",", "x")
        try:
            dims = tuple(int(part) for part in raw.split("x"))
        except ValueError:
            dims = ()
        if not dims or any(d <= 0 for d in dims):
            raise GeneratorSpecError(
                f"{self.label}: option {key}={_short(self.options[key], 40)!r} is not a shape like 100 or 100x1x1"
            )
        return dims

    def value_range(self, key: str, default: tuple[float, float]) -> tuple[float, float]:
        """``output_range=-1,1`` (also ``0,1`` or ``0,255``)."""
        if key not in self.options:
            return default
        parts = self.options[key].split(",")
        try:
            low, high = (float(p) for p in parts)
        except ValueError:
            low, high = math.nan, math.nan
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise GeneratorSpecError(
                f"{self.label}: option {key}={_short(self.options[key], 40)!r} is not a range LOW,HIGH with HIGH > LOW"
            )
        return low, high

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.options.get(key, default)
        if value not in choices:
            raise GeneratorSpecError(
                f"{self.label}: option {key}={_short(value, 40)!r} is not one of {', '.join(choices)}"
            )
        return value

    def check_known(self, known: tuple[str, ...]) -> None:
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise GeneratorSpecError(
                f"{self.label}: unknown option(s) {', '.join(_short(u, 40) for u in unknown[:5])} for "
                f"{self.scheme}: specs (known: {', '.join(known)})"
            )


def parse_spec(spec: str) -> GeneratorSpec:
    """``SCHEME:TARGET?k=v&...`` -> GeneratorSpec. The target is everything up to the first ``?``."""
    if not isinstance(spec, str) or not spec.strip():
        raise GeneratorSpecError("a generator spec must be a non-empty string")
    if len(spec) > MAX_SPEC_LENGTH:
        raise GeneratorSpecError(f"a generator spec is at most {MAX_SPEC_LENGTH} characters, got {len(spec)}")
    scheme, colon, rest = spec.strip().partition(":")
    if not colon or not scheme:
        raise GeneratorSpecError(
            f"{_short(spec)!r}: expected SCHEME:TARGET[?key=value&...]; a generator spec starts with zoo:, py:, "
            f"{':, '.join(DECLARATIVE_SCHEMES)}: or a plugin's scheme"
        )
    target, _, query = rest.partition("?")
    if not target:
        raise GeneratorSpecError(f"{_short(spec)!r}: names no file or directory after {scheme}:")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise GeneratorSpecError(f"{_short(spec)!r}: options must be key=value pairs joined by &") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise GeneratorSpecError(f"{_short(spec)!r}: option {_short(key, 40)} given twice")
        options[key] = value
    return GeneratorSpec(scheme, target, options)


def is_declarative(spec: str) -> bool:
    """Whether ``spec`` uses one of the built-in declarative schemes (no user code runs)."""
    return isinstance(spec, str) and spec.partition(":")[0] in DECLARATIVE_SCHEMES
