"""Which generator and encoder specs a process may load: the workers' own allow-list.

A spec travels in a task message, and whoever can write to the broker chooses it. A ``py:`` spec
imports and calls any importable function (``py:subprocess:getoutput?cmd=...`` runs a command),
so a worker loads one only when it was itself started with ``--allow-python-generators``; the
check reads the spec's scheme and nothing else, before any import of the module it names.

Allowed without that flag:

- ``zoo:ID``: the bundled zoo's models;
- declarative specs (``DECLARATIVE_GENERATOR_SCHEMES``): files of weights loaded by the project's
  own loaders, no code named by the spec is imported;
- generator plugins: entry points of the group ``modelverse.generators`` of an installed package
  (installing a package on a worker is the operator's choice; a spec only picks among them).
  Only the entry points' metadata is read here, nothing is imported.

Encoder specs other than ``py:`` go to ``modelverse.encoders.load_encoder``, which knows a fixed
set of architectures and weight files.

Extending: a new spec kind that imports no user code joins ``generators.specs.DECLARATIVE_SCHEMES``
(or is installed as an entry point); nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelverse.errors import InvalidInputError, PermissionDeniedError
from modelverse.generators import registry
from modelverse.generators.specs import DECLARATIVE_SCHEMES

PYTHON_SCHEME = "py"
# Specs whose loaders the project ships and that import nothing the spec names.
BUILTIN_GENERATOR_SCHEMES: tuple[str, ...] = ("zoo",)
DECLARATIVE_GENERATOR_SCHEMES: tuple[str, ...] = DECLARATIVE_SCHEMES
MAX_SHOWN = 80


class SpecError(InvalidInputError):
    """A spec that names nothing loadable; the job fails with this message."""


class SpecRefused(PermissionDeniedError, SpecError):
    """A spec this process is not allowed to load; the job fails with this message."""


def scheme_of(spec: str) -> str:
    """The text before the first colon, lower-cased ("" when there is none)."""
    scheme, colon, _ = spec.partition(":")
    return scheme.strip().lower() if colon else ""


def shown(spec: str) -> str:
    """A spec as an error message may quote it: specs come from users, never echo them whole."""
    return repr(spec if len(spec) <= MAX_SHOWN else spec[: MAX_SHOWN - 3] + "...")


def generator_plugins() -> frozenset[str]:
    """Schemes of the installed generator plugins (entry point names of the group
    ``modelverse.generators``; only metadata is read, nothing is imported)."""
    return frozenset(registry.plugins())


@dataclass(frozen=True)
class SpecPolicy:
    """What this process may load. ``allow_python``: also ``py:MODULE:FACTORY`` specs."""

    allow_python: bool = False

    def allowed_generator_schemes(self) -> list[str]:
        """In the order error messages list them: the zoo, declarative specs, plugins, py:."""
        plugins = sorted(generator_plugins() - {*BUILTIN_GENERATOR_SCHEMES, *DECLARATIVE_GENERATOR_SCHEMES, PYTHON_SCHEME})
        python = [PYTHON_SCHEME] if self.allow_python else []
        return [*BUILTIN_GENERATOR_SCHEMES, *DECLARATIVE_GENERATOR_SCHEMES, *plugins, *python]

    def check_generator(self, spec: str) -> None:
        """Raise SpecRefused unless this process may load the generator ``spec``."""
        scheme = scheme_of(spec)
        if scheme == PYTHON_SCHEME and not self.allow_python:
            raise SpecRefused(_python_refused("generator", spec))
        allowed = self.allowed_generator_schemes()
        if scheme not in allowed:
            kinds = ", ".join(f"{s}:" for s in allowed[:-1]) + f" or {allowed[-1]}:"
            raise SpecRefused(f"generator {shown(spec)}: a generator spec starts with {kinds}")

    def check_encoder(self, spec: str) -> None:
        """Raise SpecRefused unless this process may load the encoder ``spec``."""
        if scheme_of(spec) == PYTHON_SCHEME and not self.allow_python:
            raise SpecRefused(_python_refused("encoder", spec))


def _python_refused(kind: str, spec: str) -> str:
    return (f"{kind} {shown(spec)}: py: specs import and run any Python function; this worker refuses "
            "them (start it with --allow-python-generators to accept them)")


# In one process that the caller started with specs it chose (embedded indexing, tests): every
# kind of spec. Workers and the admin build theirs from their own flags.
TRUSTED = SpecPolicy(allow_python=True)
WORKER_DEFAULT = SpecPolicy(allow_python=False)
