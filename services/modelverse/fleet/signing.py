"""Authenticated job messages: an HMAC-SHA256 over each task's payload with a shared secret.

Whoever can write to the broker's Redis can put a task message in the queue. Without a check a
worker would run whatever spec it names, so the admin and ``modelverse index --broker`` sign the
payload of every task they send (task name, job spec, chunk or round index) and a worker
verifies it before it parses the spec, loads anything or touches a job record. A message that is
unsigned or whose signature does not verify is refused: its job (when a job of that id exists) is
failed with the reason, the message is acknowledged, nothing runs, and the worker goes on.

The signature covers a canonical JSON form of the payload (sorted keys, no spaces), so it
survives the JSON round trip of the broker. It does not cover the chord results a round's
callback receives (keys computed by the workers; the callback re-derives them from the signed
spec). Replaying a genuine message re-runs work that is idempotent by design (chunk writes are
SET NX, publishing a version twice writes nothing), so there is no nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_ALGORITHM = "hmac-sha256"
SIGNATURE_LENGTH = 64  # hex digits of a SHA-256


class JobRefused(Exception):
    """A job message this worker does not accept (unsigned or forged); nothing of it ran."""


def canonical(task_name: str, payload: dict[str, Any]) -> bytes:
    return json.dumps([task_name, payload], sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def sign(secret: bytes, task_name: str, payload: dict[str, Any]) -> str:
    """The signature a worker expects for ``payload`` of ``task_name``; "" without a secret."""
    if not secret:
        return ""
    return hmac.new(secret, canonical(task_name, payload), hashlib.sha256).hexdigest()


def verify(secret: bytes, task_name: str, payload: dict[str, Any], signature: object) -> None:
    """Raise JobRefused unless ``signature`` is ``payload``'s under ``secret`` (constant time)."""
    if not isinstance(signature, str) or not signature:
        raise JobRefused("unsigned job message refused: the submitter has no job secret "
                         "(give the admin or `modelverse index` the workers' --job-secret-file)")
    try:
        expected = sign(secret, task_name, payload)
    except (TypeError, ValueError) as exc:  # not JSON-serialisable / NaN: no genuine submitter sends it
        raise JobRefused(f"malformed job message refused ({type(exc).__name__})") from exc
    if len(signature) != SIGNATURE_LENGTH or not signature.isascii() or not hmac.compare_digest(expected, signature):
        raise JobRefused("job message with a wrong signature refused: forged, altered, or signed with "
                         "another job secret than this worker's")
