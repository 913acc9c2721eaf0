"""Error messages that never carry unbounded client input back (gRPC status details travel in
headers: a 20 kB id echoed into one breaks the call with RESOURCE_EXHAUSTED)."""

from __future__ import annotations

from typing import NoReturn

import grpc

MAX_DETAIL_CHARS = 400


def bounded(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters in all)"


def shown_id(value: str, limit: int = 80) -> str:
    """An id as a message may quote it: repr, cut to ``limit`` characters."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """``context.abort`` with the message bounded (requests carry ids, specs, encoder names)."""
    context.abort(code, bounded(message))
    raise AssertionError("context.abort returned")  # it raises; this line satisfies NoReturn
