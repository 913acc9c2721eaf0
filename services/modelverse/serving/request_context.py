"""The request id: taken from the caller's ``x-request-id`` metadata (or made up), kept for the
duration of the call, sent on to the shards, written into every log line of the request and
sent back to the caller in the response's initial metadata.

The id lives in a context variable: the server interceptor sets it on the thread that runs the
handler, and the gateway's fan-out copies the context onto the threads that call the shards.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

import grpc
from opentelemetry import trace

from modelverse.serving.interceptors import Behaviour, UnaryCallInterceptor

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept only when it is short and plain: it is logged and echoed, and an
# unbounded or odd value must not reach either (a new id is made instead).
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_current: ContextVar[str | None] = ContextVar("modelverse_request_id", default=None)
log = logging.getLogger("modelverse.requests")


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current request id to the next service (empty outside a request)."""
    request_id = _current.get()
    return ((REQUEST_ID_HEADER, request_id),) if request_id else ()


def request_id_from(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _ACCEPTED_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


class RequestIdInterceptor(UnaryCallInterceptor):
    """Sets the request id around every unary call and logs each call at DEBUG with its code."""

    def __init__(self, service: str) -> None:
        self.service = service

    def around(self, rpc: str, behaviour: Behaviour) -> Behaviour:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            token = _current.set(request_id_from(context.invocation_metadata()))
            started = time.perf_counter()
            try:
                context.send_initial_metadata(outgoing_metadata())
                return behaviour(request, context)
            finally:
                log.debug("call", extra={"service": self.service, "rpc": rpc,
                                         "code": _code_name(context),
                                         "ms": round(1000 * (time.perf_counter() - started), 3)})
                _current.reset(token)

        return run


def _code_name(context: grpc.ServicerContext) -> str:
    code = getattr(context, "code", lambda: None)()
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` to every record made while a request is being served, and
    ``trace_id`` while a sampled trace is recorded."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _current.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = format(span_context.trace_id, "032x")
        return True
