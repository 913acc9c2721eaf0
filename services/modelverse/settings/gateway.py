"""The gateway's settings (``python -m modelverse.serving.gateway``).

A request's bounds are ``Limits``'s fields (serving.gateway.query), each a setting of the same
name with Limits's default; ``limits()`` hands every one of them over by name."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import field_validator

from modelverse.serving.gateway.query import Limits
from modelverse.serving.first_stage import default_candidates_text
from modelverse.settings.base import setting
from modelverse.settings.common import (
    AdmissionSettings,
    AuthSettings,
    GrpcServerSettings,
    ServerTLSSettings,
    ShardAddresses,
    ShardClientTLSSettings,
    queue_setting,
    shards_setting,
    workers_setting,
)

_LIMITS = {f.name: f.default for f in dataclasses.fields(Limits)}
CANDIDATES_HELP = f"first-stage candidates per shard for every method (default: {default_candidates_text()})"


def _limit(name: str, help: str) -> Any:
    return setting(_LIMITS[name], help)


class GatewaySettings(GrpcServerSettings, AdmissionSettings, AuthSettings, ServerTLSSettings, ShardClientTLSSettings):
    process = "gateway"
    env_prefix = "MODELVERSE_GATEWAY_"
    program = "python -m modelverse.serving.gateway"
    description = ("Run a gateway: give --shard once per shard, in shard order; a shard's replicas are "
                   "comma-separated.")

    shard: ShardAddresses = shards_setting()
    encoder: str | None = setting(None, "encoder for text and image queries (none: vectors and model ids only)",
                                  metavar="SPEC")
    generators: Literal["none", "zoo"] = setting(
        "none", "where SampleImages finds a model's generator: the bundled zoo, or nowhere")
    candidates: int | None = setting(None, CANDIDATES_HELP)
    max_top_k: int = _limit("max_top_k", "largest top_k a request may ask")
    max_parts: int = _limit("max_parts", "query parts one request may hold")
    max_candidates_per_shard: int = _limit("max_candidates_per_shard", "largest candidates per shard a request may ask")
    max_image_bytes: int = _limit("max_image_bytes", "largest encoded image, in bytes")
    max_image_pixels: int = _limit("max_image_pixels", "largest decoded image, in pixels")
    max_text_chars: int = _limit("max_text_chars", "longest text query, in characters")
    max_images: int = _limit("max_images", "images one request may hold (image sets included)")
    max_request_pixels: int = _limit("max_request_pixels", "decoded pixels of one request's images in all")
    workers: int = workers_setting(16)
    queue: int = queue_setting(32)

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    def limits(self) -> Limits:
        return Limits(**{name: getattr(self, name) for name in _LIMITS})
