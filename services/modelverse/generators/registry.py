"""Which loader serves a declarative spec: the built-in schemes, then installed plugins.

A plugin is a Python entry point in the group ``modelverse.generators`` whose name is its scheme
and whose object is a loader ``(spec: GeneratorSpec, device: str) -> Generator``:

    [project.entry-points."modelverse.generators"]
    stylegan = "my_package.loaders:load_stylegan"      # -> stylegan:/models/ffhq.pkl?truncation=0.7

Installed packages are the operator's choice, so plugins are allowed on workers; a spec only
picks among them (issue 14). Loaders are imported on first use: this module is torch-free.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from modelverse.generators.base import Generator
from modelverse.generators.specs import (
    DECLARATIVE_SCHEMES,
    GeneratorSpec,
    GeneratorSpecError,
    parse_spec,
)

ENTRY_POINT_GROUP = "modelverse.generators"
RESERVED_SCHEMES = ("zoo", "py", "features")

Loader = Callable[[GeneratorSpec, str], Generator]

BUILTIN_LOADERS: dict[str, str] = {
    "diffusers": "modelverse.generators.diffusers_generator:load",
    "torchscript": "modelverse.generators.exported:load_torchscript",
    "torch-export": "modelverse.generators.exported:load_torch_export",
    "onnx": "modelverse.generators.exported:load_onnx",
    "safetensors": "modelverse.zoo.arch_weights:load",
}
assert tuple(BUILTIN_LOADERS) == DECLARATIVE_SCHEMES


def plugins() -> dict[str, EntryPoint]:
    """Installed generator plugins by scheme (a built-in or reserved name cannot be taken)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in BUILTIN_LOADERS and point.name not in RESERVED_SCHEMES:
            found.setdefault(point.name, point)
    return found


def known_scheme(scheme: str) -> bool:
    return scheme in BUILTIN_LOADERS or scheme in plugins()


def schemes() -> list[str]:
    return [*BUILTIN_LOADERS, *sorted(plugins())]


def _loader(scheme: str) -> Loader:
    if scheme in BUILTIN_LOADERS:
        module_name, _, attribute = BUILTIN_LOADERS[scheme].partition(":")
        loader: Loader = getattr(importlib.import_module(module_name), attribute)
        return loader
    point = plugins().get(scheme)
    if point is None:
        raise GeneratorSpecError(
            f"no generator scheme {scheme[:40]!r}: known are {', '.join(schemes())} (plugins register "
            f"entry points in the group {ENTRY_POINT_GROUP!r})"
        )
    return point.load()  # type: ignore[no-any-return]


def check_spec(spec: str) -> GeneratorSpec:
    """Parse a declarative or plugin spec and check its scheme exists, loading nothing."""
    parsed = parse_spec(spec)
    if not known_scheme(parsed.scheme):
        raise GeneratorSpecError(
            f"no generator scheme {parsed.scheme[:40]!r}: known are zoo, py, {', '.join(schemes())}"
        )
    return parsed


def load_declarative(spec: str, device: str = "cpu") -> Generator:
    parsed = parse_spec(spec)
    return _loader(parsed.scheme)(parsed, device)
