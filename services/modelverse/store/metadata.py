"""What a user knows about a model, beside its statistics (the paper's submission form)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from modelverse.errors import InvalidInputError

MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 10_000


def validate_model_id(model_id: str) -> str:
    """Ids are what hubs use ("owner/name", "name:v2"): printable, no surrounding spaces."""
    if not isinstance(model_id, str) or not model_id:
        raise InvalidInputError("a model id must be a non-empty string")
    if len(model_id) > MAX_ID_LENGTH:
        raise InvalidInputError(f"a model id is at most {MAX_ID_LENGTH} characters, got {len(model_id)}")
    if model_id != model_id.strip():
        raise InvalidInputError(f"model id {model_id!r} has leading or trailing whitespace")
    if any(unicodedata.category(ch).startswith("C") for ch in model_id):
        raise InvalidInputError(f"model id {model_id!r} contains control characters")
    if model_id in {".", ".."}:
        raise InvalidInputError(f"{model_id!r} is not a valid model id")
    return model_id


def _clean_tag(tag: str) -> str:
    tag = re.sub(r"\s+", " ", tag.strip().lower())
    if not tag:
        raise InvalidInputError("tags must be non-empty")
    return tag


@dataclass(frozen=True)
class ModelMetadata:
    id: str
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    family: str = ""  # architecture family: gan, diffusion, vae, flow, autoregressive, ...
    resolution: int | None = None  # output side in pixels
    creator: str = ""
    license: str = ""
    source: str = ""  # where the weights come from: a URL, a package, a path

    def __post_init__(self) -> None:
        validate_model_id(self.id)
        object.__setattr__(self, "tags", tuple(dict.fromkeys(_clean_tag(t) for t in self.tags)))
        for name in ("name", "description", "family", "creator", "license", "source"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
                raise InvalidInputError(f"metadata field {name!r} must be a string of at most {MAX_TEXT_LENGTH} characters")
        if self.resolution is not None and (not isinstance(self.resolution, int) or self.resolution <= 0):
            raise InvalidInputError(f"resolution must be a positive integer, got {self.resolution!r}")

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tags"] = list(self.tags)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["tags"] = tuple(values.get("tags", ()))
        return cls(**values)
