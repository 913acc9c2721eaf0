"""How the gRPC servers answer an exception: a user error (``modelverse.errors``) with its status
code and one-line message; anything else as a bug, logged with its traceback and answered
INTERNAL with a generic message (no traceback, no exception text goes to the client).

:class:`ErrorInterceptor` does it for every server that ``build_server`` makes (gateway, shard,
admin): a handler raises the error and need not catch it. Handlers that count or log their own
answers (the gateway's ``_run``) call :func:`answer_for` themselves.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from modelverse.errors import ModelverseError
from modelverse.serving.interceptors import Behaviour, UnaryCallInterceptor
from modelverse.serving.messages import bounded

log = logging.getLogger("modelverse.serving.errors")
INTERNAL_MESSAGE = "internal error; the server logged it"


def status_code(error: ModelverseError) -> grpc.StatusCode:
    """The gRPC status code of a user error's kind (``modelverse.errors`` names it)."""
    return grpc.StatusCode[error.status]


def answer_for(exc: BaseException, rpc: str, logger: logging.Logger = log) -> tuple[grpc.StatusCode, str]:
    """The status code and message a server answers ``exc`` with. An exception outside the
    family is logged here, with its traceback (call this inside the ``except`` block)."""
    if isinstance(exc, ModelverseError):
        return status_code(exc), bounded(exc.message)
    logger.error("internal error", exc_info=exc, extra={"rpc": rpc})
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def aborted(context: grpc.ServicerContext) -> bool:
    """Whether the handler already set its answer (``context.abort`` raises after setting it)."""
    code = context.code()
    return code is not None and code != grpc.StatusCode.OK


class ErrorInterceptor(UnaryCallInterceptor):
    """The innermost interceptor: what a handler raises becomes its answer (see the module doc).
    Health and reflection are gRPC's own and are left alone."""

    def around(self, rpc: str, behaviour: Behaviour) -> Behaviour:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behaviour(request, context)
            except Exception as exc:
                if aborted(context):  # the handler answered with context.abort: keep its answer
                    raise
                code, message = answer_for(exc, rpc)
                context.abort(code, message)

        return run
