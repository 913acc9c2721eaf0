"""The machinery of a process's settings: one typed class per process, each field declared once
(type, default, help), read from command-line flags, environment variables and a config file,
in that order of precedence, with the source of every value known.

A field's flag is ``--`` and its name with dashes (``lift_columns``: ``--lift-columns``) unless
it names another (``setting(..., flag="--memory-budget")``); its environment variable is the
class's prefix and its name in capitals (``MODELVERSE_SHARD_LIFT_COLUMNS``) unless it names
another (the fleet's historical ``MODELVERSE_BROKER``). A config file (TOML, or YAML by its
suffix) holds one table per process (``[shard]``, ``[gateway]``, ...), so one file can describe
a whole cluster; its keys are field names.

The argparse parser of a process is generated from its class (``build_parser``), and the argv
that makes a process hold given settings is generated from them too (``to_argv``): a launcher
(``serving.loopback_cluster``) cannot forget a field.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from modelverse.errors import InvalidInputError

SOURCES = ("default", "file", "env", "flag")  # lowest precedence first


class SettingsError(InvalidInputError):
    """Settings that do not validate; the message is one line naming each setting and its source."""


def setting(default: Any = ..., help: str = "", *, flag: str | None = None, env: str | None = None,
            metavar: str | None = None, cli: bool = True, secret: bool = False,
            aliases: Sequence[str] = ()) -> Any:
    """A field of a settings class: its default (``...``: required), its help text, and, when
    they are not the ones derived from its name, its flag and environment variable.
    ``cli=False``: no flag (a value only the environment or a file gives, e.g. a secret);
    ``secret``: `config show` prints it masked; ``aliases``: older flags that still work."""
    extra: dict[str, Any] = {key: value for key, value in (("flag", flag), ("env", env), ("metavar", metavar)) if value}
    if not cli:
        extra["cli"] = False
    if secret:
        extra["secret"] = True
    if aliases:
        extra["aliases"] = list(aliases)
    return Field(default, description=help, json_schema_extra=extra or None)


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def split_words(value: Any) -> Any:
    """A list setting given as one string (an environment variable): whitespace-separated."""
    return value.split() if isinstance(value, str) else value


class ProcessSettings(BaseSettings):
    """Base of every process's settings. Subclasses set ``process`` (the config file's table and
    ``config show --process``), ``env_prefix`` and ``program`` (the parser's prog)."""

    process: ClassVar[str] = ""
    env_prefix: ClassVar[str] = "MODELVERSE_"
    program: ClassVar[str] = ""
    description: ClassVar[str] = ""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # ``Settings(**values)`` is exactly those values over the defaults: the environment and
        # a file are read by ``resolve``/``load`` alone, which know where each value came from.
        return (init_settings,)

    # -- names ------------------------------------------------------------------------------------

    @classmethod
    def flag_of(cls, name: str) -> str:
        return _extra(cls.model_fields[name]).get("flag") or "--" + name.replace("_", "-")

    @classmethod
    def env_of(cls, name: str) -> str:
        return _extra(cls.model_fields[name]).get("env") or cls.env_prefix + name.upper()

    @classmethod
    def has_flag(cls, name: str) -> bool:
        return _extra(cls.model_fields[name]).get("cli", True)

    @classmethod
    def is_secret(cls, name: str) -> bool:
        return bool(_extra(cls.model_fields[name]).get("secret"))

    @classmethod
    def flags(cls) -> dict[str, str]:
        """flag -> field name, of every field that has a flag."""
        return {cls.flag_of(name): name for name in cls.model_fields if cls.has_flag(name)}

    @classmethod
    def envs(cls) -> dict[str, str]:
        """environment variable -> field name."""
        return {cls.env_of(name): name for name in cls.model_fields}

    @classmethod
    def default_of(cls, name: str) -> Any:
        field = cls.model_fields[name]
        return None if field.is_required() else field.get_default(call_default_factory=True)

    def changed(self) -> dict[str, Any]:
        """The fields whose value is not the default (required fields always)."""
        return {name: getattr(self, name) for name, field in type(self).model_fields.items()
                if field.is_required() or getattr(self, name) != type(self).default_of(name)}


class ProcessEnvSource(PydanticBaseSettingsSource):
    """Each field's environment variable (``ProcessSettings.env_of``), as the raw string:
    pydantic validates it like a flag's text. Empty values count as unset."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None) -> None:
        super().__init__(settings_cls)
        self.environ = os.environ if environ is None else environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = self.settings_cls.env_of(field_name)  # type: ignore[attr-defined]
        return self.environ.get(name) or None, name, False

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                found[name] = value
        return found


# -- types and flags -----------------------------------------------------------------------------

def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> X; Annotated[X, ...] -> X."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def is_list(field: FieldInfo) -> bool:
    return typing.get_origin(_unwrap(field.annotation)) in (list, tuple)


def is_bool(field: FieldInfo) -> bool:
    return _unwrap(field.annotation) is bool


def choices_of(field: FieldInfo) -> tuple[Any, ...] | None:
    kind = _unwrap(field.annotation)
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else None


def _help(cls: type[ProcessSettings], name: str, field: FieldInfo) -> str:
    text = (field.description or "").replace("%", "%%")
    default = cls.default_of(name)
    if field.is_required():
        note = "required"
    elif default is None or default == "" or is_bool(field):
        note = ""
    else:
        note = f"default: {default}"
    env = f"env {cls.env_of(name)}"
    return f"{text} ({'; '.join(n for n in (note, env) if n)})".strip()


def add_field_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type[ProcessSettings],
                       name: str, flag: str | None = None, dest: str | None = None, help: str | None = None) -> None:
    """The flag of one field, with its help; no default (argparse.SUPPRESS): a flag not given is
    absent from the namespace, so the environment and the file keep their say."""
    field = cls.model_fields[name]
    flag = flag or cls.flag_of(name)
    text = _help(cls, name, field) if help is None else help
    options: dict[str, Any] = {"dest": dest or name, "default": argparse.SUPPRESS, "help": text}
    if is_bool(field):
        # an off-by-default switch is a plain flag; an on-by-default one can be turned off (--no-X)
        options["action"] = argparse.BooleanOptionalAction if cls.default_of(name) else "store_true"
    else:
        if is_list(field):
            options["action"] = "append"
        if choices_of(field):
            options["choices"] = [str(c) for c in choices_of(field)]
        if not choices_of(field):
            options["metavar"] = _extra(field).get("metavar") or flag[2:].upper().replace("-", "_")
    aliases = _extra(field).get("aliases", []) if flag == cls.flag_of(name) else []
    parser.add_argument(flag, *aliases, **options)


def build_parser(cls: type[ProcessSettings], parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The process's parser: one flag per field and ``--config FILE``."""
    parser = parser or argparse.ArgumentParser(prog=cls.program, description=cls.description)
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help=f"settings file, TOML or YAML, with a [{cls.process}] table (flags and the "
                             "environment take precedence over it)")
    for name in cls.model_fields:
        if cls.has_flag(name):
            add_field_argument(parser, cls, name)
    return parser


# -- loading ----------------------------------------------------------------------------------

def read_config_file(path: Path, process: str) -> dict[str, Any]:
    """The ``process`` table of a TOML or YAML settings file ({} when it has none); keys may be
    written with dashes, as flags are."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror or exc}") from None
    try:
        if Path(path).suffix.lower() in (".yaml", ".yml"):
            import yaml

            document = yaml.safe_load(text) or {}
        else:
            document = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001  (tomllib and yaml raise their own error types)
        raise SettingsError(f"config file {path}: not valid {Path(path).suffix or 'TOML'}: "
                            f"{str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"config file {path}: expected tables of settings, one per process")
    table = document.get(process, {})
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: [{process}] must be a table of settings")
    return {str(key).replace("-", "_"): value for key, value in table.items()}


@dataclass(frozen=True)
class Resolved:
    """Settings and where each value came from ("default", "file", "env" or "flag")."""

    settings: ProcessSettings
    sources: dict[str, str]


def layers(cls: type[ProcessSettings], flags: Mapping[str, Any] | None = None, config: Path | None = None,
           environ: Mapping[str, str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The values each source gives, lowest precedence first."""
    file_values = read_config_file(config, cls.process) if config else {}
    env_values = ProcessEnvSource(cls, environ)()
    return [("file", file_values), ("env", env_values), ("flag", dict(flags or {}))]


def merge(found: Sequence[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, given in found:
        values.update(given)
        sources.update(dict.fromkeys(given, source))
    return values, sources


def describe(cls: type[ProcessSettings], error: ValidationError, sources: Mapping[str, str],
             values: Mapping[str, Any]) -> str:
    """One line: each bad setting by the name its source knows it by, its value and why."""
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        source = sources.get(name, "default")
        if not name:  # a rule between several settings
            problems.append(item["msg"].removeprefix("Value error, "))
            continue
        if name not in cls.model_fields:
            where = f"unknown setting {name!r}" + (f" (from {source})" if source != "default" else "")
            problems.append(where)
            continue
        label = {"flag": cls.flag_of(name), "env": "$" + cls.env_of(name), "file": f"{name} (config file)"}.get(
            source, cls.flag_of(name) if cls.has_flag(name) else cls.env_of(name))
        if item["type"] == "missing":
            hint = f"give {cls.flag_of(name)}" if cls.has_flag(name) else "set"
            problems.append(f"{label}: required ({hint}, ${cls.env_of(name)} or {name} in the config file)")
        else:
            problems.append(f"{label}={values.get(name)!r}: {item['msg'].removeprefix('Value error, ')}")
    return f"{cls.process} settings: " + "; ".join(problems)


def resolve(cls: type[ProcessSettings], flags: Mapping[str, Any] | None = None, config: Path | None = None,
            environ: Mapping[str, str] | None = None) -> Resolved:
    """Flags over the environment over the config file over the defaults; SettingsError when
    they do not validate."""
    values, sources = merge(layers(cls, flags, config, environ))
    try:
        settings = cls.model_validate(values)  # no second read of the environment
    except ValidationError as exc:
        raise SettingsError(describe(cls, exc, sources, values)) from None
    return Resolved(settings, {name: sources.get(name, "default") for name in cls.model_fields})


def from_namespace(cls: type[ProcessSettings], args: argparse.Namespace,
                   environ: Mapping[str, str] | None = None) -> Resolved:
    """Settings from a namespace parsed by ``build_parser(cls)`` (``config`` is the file)."""
    given = {k: v for k, v in vars(args).items() if k in cls.model_fields}
    return resolve(cls, given, getattr(args, "config", None), environ)


def load(cls: type[ProcessSettings], argv: Sequence[str] | None = None,
         environ: Mapping[str, str] | None = None) -> Resolved:
    """Parse a process's command line; a bad value exits with the parser's usage and one line."""
    parser = build_parser(cls)
    args = parser.parse_args(argv)
    try:
        return from_namespace(cls, args, environ)
    except SettingsError as exc:
        parser.error(str(exc))
        raise  # parser.error exits


# -- the other way: settings -> argv ------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def to_argv(settings: ProcessSettings, *, include: Collection[str] = (), everything: bool = False) -> list[str]:
    """The flags that make the process's parser give back ``settings``: the fields that differ
    from their default and those named in ``include`` (``everything``: all), in declaration
    order. A field without a flag cannot travel by argv: ValueError when it is not at its default."""
    cls = type(settings)
    unknown = set(include) - set(cls.model_fields)
    if unknown:
        raise ValueError(f"{cls.process}: no setting {', '.join(sorted(unknown))}")
    argv: list[str] = []
    changed = settings.changed()
    for name, field in cls.model_fields.items():
        if name not in changed and name not in include and not everything:
            continue
        value = getattr(settings, name)
        if not cls.has_flag(name):
            if name in changed:
                raise ValueError(f"{cls.process}: {name} has no flag; give it by ${cls.env_of(name)}")
            continue
        flag = cls.flag_of(name)
        if value is None:
            if name in changed:
                raise ValueError(f"{cls.process}: {flag} cannot be set back to nothing on a command line")
            continue
        if is_bool(field):
            if value:
                argv.append(flag)
            elif cls.default_of(name):  # an off-by-default switch has no --no-X: absent is off
                argv.append("--no-" + flag[2:])
        elif is_list(field):
            for item in value:
                argv += [flag, _text(item)]
        else:
            argv += [flag, _text(value)]
    return argv
