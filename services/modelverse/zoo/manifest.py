"""The bundled zoo's manifest: one submission form per model plus how to build its generator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from modelverse.store.metadata import ModelMetadata

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
REQUIRED_FIELDS = (
    "id",
    "name",
    "family",
    "description",
    "tags",
    "resolution",
    "creator",
    "license",
    "source",
    "query_text",
    "build",
)


@dataclass(frozen=True)
class ZooEntry:
    metadata: ModelMetadata
    query_text: str  # hand-written description of the images: the benchmark's text query
    build: dict[str, Any]  # how zoo.loader builds the generator
    data: dict[str, str] | None  # {"dataset", "class"} it was trained on, if trained here

    @property
    def id(self) -> str:
        return self.metadata.id

    @property
    def tags(self) -> tuple[str, ...]:
        return self.metadata.tags

    @property
    def resolution(self) -> int:
        assert self.metadata.resolution is not None
        return self.metadata.resolution

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ZooEntry:
        missing = [f for f in REQUIRED_FIELDS if f not in record]
        if missing:
            raise ValueError(
                f"zoo entry {record.get('id', '?')!r} lacks fields: {', '.join(missing)}"
            )
        if not record["query_text"].strip():
            raise ValueError(f"zoo entry {record['id']!r} has an empty query_text")
        return cls(
            metadata=ModelMetadata.from_dict(record),
            query_text=record["query_text"],
            build=record["build"],
            data=record.get("data"),
        )


def read_manifest(path: Path) -> list[ZooEntry]:
    entries = [ZooEntry.from_dict(r) for r in json.loads(path.read_text())["models"]]
    ids = [e.id for e in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate model ids in {path}: {', '.join(duplicates)}")
    return entries


@lru_cache(maxsize=1)
def _bundled() -> tuple[ZooEntry, ...]:
    return tuple(read_manifest(MANIFEST_PATH))


def bundled_manifest() -> list[ZooEntry]:
    """Every model of the bundled zoo, in manifest order."""
    return list(_bundled())


def get_entry(model_id: str) -> ZooEntry:
    for entry in _bundled():
        if entry.id == model_id:
            return entry
    raise KeyError(f"no model {model_id!r} in the bundled zoo")
