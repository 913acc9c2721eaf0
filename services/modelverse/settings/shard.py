"""A recall shard's settings (``python -m modelverse.serving.shard``).

The index knobs' defaults are ``ShardConfig``'s (serving.shard.state), the one place they are
declared; ``shard_config()`` hands every one of them to the shard's state by name, so a knob
added to ShardConfig without a setting here fails at once (tests/test_settings.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydantic import field_validator, model_validator

from modelverse.core.types import Method
from modelverse.serving.shard.state import ShardConfig
from modelverse.settings.base import setting
from modelverse.settings.common import (
    AdmissionSettings,
    GrpcServerSettings,
    ServerTLSSettings,
    queue_setting,
    workers_setting,
)

# ShardConfig's field -> the setting that gives it (the others have the same name)
CONFIG_FIELD_SETTING = {"memory_budget_bytes": "memory_budget"}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ShardConfig) if f.default is not dataclasses.MISSING}


def _default(config_field: str) -> Any:
    return _DEFAULTS[config_field]


class ShardSettings(GrpcServerSettings, AdmissionSettings, ServerTLSSettings):
    """Shards serve only the gateway and the admin (no API keys); on an untrusted network give
    them TLS with --tls-client-ca so that only holders of a client certificate reach them."""

    process = "shard"
    env_prefix = "MODELVERSE_SHARD_"
    program = "python -m modelverse.serving.shard"
    description = "Run one recall shard: its partition of the store, its FAISS indexes."

    store: Path = setting(..., "the model store directory", metavar="DIR")
    shard: int = setting(..., "this shard's number, 0 .. shards - 1")
    shards: int = setting(..., "how many shards the store is split into")
    index_dir: Path = setting(..., "where this shard's FAISS index is saved", metavar="DIR")
    memory_budget: int = setting(_default("memory_budget_bytes"), "bytes for the FAISS index")
    exhaustive_threshold: int = setting(_default("exhaustive_threshold"),
                                        "up to this many vectors an index scores every one (Flat)",
                                        aliases=["--exact-threshold"])
    nprobe: int | None = setting(_default("nprobe"), "inverted lists scanned (default: the index rule's)")
    compact_index: bool = setting(_default("compact_index"),
                                  "8-bit codes for the first-moment inverted file, even when float32 vectors fit "
                                  "the budget (candidates are re-scored from the pack either way)")
    second_order_probe_factor: int = setting(_default("second_order_probe_factor"),
                                             "GAUSSIAN and FRECHET scan this many times the inverted file's "
                                             "nprobe lists")
    lifted: str = setting(",".join(_default("lifted")),
                          "methods with a lifted first-stage index, comma-separated (mgf, gaussian); '' for none")
    lift_columns: int = setting(_default("lift_columns"), "MGF: covariance columns kept by direction")
    lift_alpha: float = setting(_default("lift_alpha"), "MGF: tangent point, alpha |w_k|")
    lifted_nprobe: int | None = setting(_default("lifted_nprobe"),
                                        "nprobe of a lifted inverted file (default: nlist / 8)")
    metadata_embeddings: bool = setting(_default("metadata_embeddings"),
                                        "embed the models' metadata (all-MiniLM-L6-v2, cached in the index dir) "
                                        "for the dense half of a metadata / hybrid text search; off: BM25 alone")
    poll_interval: float = setting(0.5, "seconds between store checks")
    workers: int = workers_setting(8)
    queue: int = queue_setting(32)

    @field_validator("lifted")
    @classmethod
    def _lifted(cls, value: str) -> str:
        known = {m.value for m in Method}
        methods = [m.strip().lower() for m in value.split(",") if m.strip()]
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise ValueError(f"unknown method {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return ",".join(methods)

    @field_validator("memory_budget", "shards", "lift_columns", "second_order_probe_factor")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("nprobe", "lifted_nprobe")
    @classmethod
    def _positive_or_none(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @model_validator(mode="after")
    def _shard_in_range(self) -> ShardSettings:
        if not 0 <= self.shard < self.shards:
            raise ValueError(f"--shard {self.shard} is not in 0 .. {self.shards - 1} (--shards {self.shards})")
        return self

    @property
    def lifted_methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.lifted.split(",") if m)

    def shard_config(self) -> ShardConfig:
        """Every field of the shard state's config, from the setting of the same name."""
        values = {f.name: getattr(self, CONFIG_FIELD_SETTING.get(f.name, f.name))
                  for f in dataclasses.fields(ShardConfig)}
        values["lifted"] = self.lifted_methods
        return ShardConfig(**values)
