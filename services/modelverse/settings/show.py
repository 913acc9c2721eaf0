"""`modelverse config show`: a process's effective settings and where each value came from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from modelverse.settings.base import ProcessSettings, describe, layers, merge

MASK = "********"


@dataclass(frozen=True)
class Row:
    name: str
    value: Any
    source: str  # default, file, env, flag; "missing" for a required setting that nothing gave
    flag: str | None
    env: str
    help: str


@dataclass(frozen=True)
class Report:
    process: str
    rows: list[Row]
    error: str | None  # one line when the settings do not validate

    def to_json(self) -> str:
        return json.dumps({"process": self.process, "valid": self.error is None, "error": self.error,
                           "settings": [{"name": r.name, "value": _plain(r.value), "source": r.source,
                                         "flag": r.flag, "env": r.env, "help": r.help} for r in self.rows]},
                          indent=2)

    def table(self) -> str:
        header = ("setting", "value", "source", "flag", "env")
        lines = [(r.name, _text(r.value), r.source, r.flag or "-", r.env) for r in self.rows]
        widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
        out = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *lines]]
        out.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(out)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "[]"
    return str(value) if value != "" else '""'


def report(cls: type[ProcessSettings], flags: Mapping[str, Any] | None = None, config: Path | None = None,
           environ: Mapping[str, str] | None = None) -> Report:
    """The effective settings; when they do not validate, the values as given and the error."""
    values, sources = merge(layers(cls, flags, config, environ))
    error = None
    try:
        effective = dict(cls.model_validate(values))
    except ValidationError as exc:
        error = describe(cls, exc, sources, values)
        effective = {name: values.get(name, cls.default_of(name)) for name in cls.model_fields}
    rows = []
    for name, field in cls.model_fields.items():
        value = effective.get(name)
        if cls.is_secret(name) or isinstance(value, SecretStr):
            value = MASK if (value.get_secret_value() if isinstance(value, SecretStr) else value) else ""
        source = sources.get(name, "missing" if field.is_required() else "default")
        rows.append(Row(name, value, source, cls.flag_of(name) if cls.has_flag(name) else None, cls.env_of(name),
                        field.description or ""))
    return Report(cls.process, rows, error)
