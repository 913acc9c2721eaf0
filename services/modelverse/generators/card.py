"""Model cards: the YAML front matter of a model directory's README.md (Hugging Face's format).

Fields read: ``tags``, ``license``, ``base_model`` (a string or a list; recorded as
``base_model:NAME`` tags, as the Hub does), ``instance_prompt`` (DreamBooth fine-tunes: the
text-to-image prompt used when no prompt file is given), ``description``, ``model_name`` /
``name``, ``creator`` / ``author``, ``family``, ``resolution`` and ``generator_options`` (a mapping of spec
options, e.g. ``{latent: 100x1x1}``). Without a ``description`` the first paragraph of the
card's text is used. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelverse.errors import InvalidInputError

CARD_NAME = "README.md"
MAX_CARD_BYTES = 1 << 20  # a card is text; a larger README is not read whole
MAX_DESCRIPTION = 2000


class ModelCardError(InvalidInputError):
    """A card whose front matter is not valid YAML or has a field of the wrong type."""


@dataclass(frozen=True)
class ModelCard:
    path: Path | None = None
    tags: tuple[str, ...] = ()
    license: str = ""
    base_models: tuple[str, ...] = ()
    instance_prompt: str = ""
    description: str = ""
    name: str = ""
    creator: str = ""
    family: str = ""
    resolution: int | None = None
    generator_options: dict[str, str] = field(default_factory=dict)

    def metadata_fields(self) -> dict[str, Any]:
        """The ModelMetadata fields the card fills (only those it has)."""
        tags = [*self.tags, *(f"base_model:{b}" for b in self.base_models)]
        values: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "license": self.license,
            "creator": self.creator,
            "family": self.family,
            "tags": tags,
            "resolution": self.resolution,
        }
        return {k: v for k, v in values.items() if v}


def _split_front_matter(text: str) -> tuple[str, str]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return "", text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            return "\n".join(lines[1:end]), "\n".join(lines[end + 1 :])
    return "", text  # an unterminated block is text, as the Hub renders it


def _first_paragraph(body: str) -> str:
    paragraph: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped:
            if paragraph:
                break
            continue
        if stripped.startswith(("#", "!", "<", "```", "|")):
            if paragraph:
                break
            continue
        paragraph.append(stripped)
    return " ".join(paragraph)[:MAX_DESCRIPTION]


def _strings(value: Any, key: str, where: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise ModelCardError(f"{where}: card field {key!r} must be a string or a list of strings")


def _string(value: Any, key: str, where: Path) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    raise ModelCardError(f"{where}: card field {key!r} must be a string")


def read_card(directory: str | Path) -> ModelCard:
    """The card of a model directory; an empty card when it has no README.md."""
    path = Path(directory) / CARD_NAME
    if not path.is_file():
        return ModelCard()
    with path.open("rb") as handle:
        raw = handle.read(MAX_CARD_BYTES)
    text = raw.decode("utf-8", errors="replace")
    front, body = _split_front_matter(text)
    try:
        data = yaml.safe_load(front) if front.strip() else {}
    except yaml.YAMLError as exc:
        raise ModelCardError(f"{path}: the front matter is not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ModelCardError(f"{path}: the front matter must be a mapping of fields")
    options = data.get("generator_options") or {}
    if not isinstance(options, dict):
        raise ModelCardError(f"{path}: card field 'generator_options' must be a mapping")
    return ModelCard(
        path=path,
        tags=_strings(data.get("tags"), "tags", path),
        license=_string(data.get("license"), "license", path),
        base_models=_strings(data.get("base_model"), "base_model", path),
        instance_prompt=_string(data.get("instance_prompt"), "instance_prompt", path),
        description=_string(data.get("description"), "description", path)[:MAX_DESCRIPTION]
        or _first_paragraph(body),
        name=_string(data.get("model_name") or data.get("name"), "model_name", path),
        creator=_string(data.get("creator") or data.get("author"), "creator", path),
        family=_string(data.get("family"), "family", path),
        resolution=_resolution(data.get("resolution"), path),
        generator_options={str(k): _option_text(v) for k, v in options.items()},
    )


def _resolution(value: Any, where: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelCardError(f"{where}: card field 'resolution' must be a positive integer")
    return value


def _option_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
