"""What a page says when the gateway refuses or fails: an HTTP status and a short message a
person can act on. The gateway's own message is shown for the caller's mistakes, shortened and
(by the templates) escaped; transport failures get a fixed message, never internals.

The codes are those of ``modelverse.errors``' kinds, which the gateway answers for user errors;
INTERNAL is a bug of the service (logged there), shown as a fixed message."""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc

MAX_MESSAGE_CHARS = 300
UNAVAILABLE_MESSAGE = ("The search service is not answering right now, so this page cannot search or show "
                       "models. Nothing you entered is lost: try again in a moment.")
INTERNAL_MESSAGE = ("The search service hit an internal error (its operator finds it in the service's log). "
                    "Try again; if it persists, tell the operator.")


@dataclass(frozen=True)
class PageError:
    status: int
    title: str
    message: str


def _details(exc: grpc.RpcError) -> str:
    text = exc.details() or ""
    text = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the picture", text)  # issue 14, item 4
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"


def page_error(exc: grpc.RpcError) -> PageError:
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return PageError(503, "Search service unavailable", UNAVAILABLE_MESSAGE)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PageError(504, "The search took too long", "The search service did not answer in time. Try again.")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return PageError(400, "The query cannot be run", _details(exc))
    if code == grpc.StatusCode.NOT_FOUND:
        return PageError(404, "No such model", _details(exc) or "The model does not exist (any more).")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return PageError(413, "Too much to search with", _details(exc))
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return PageError(409, "The search service cannot answer this", _details(exc))
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return PageError(502, "The search service refused this page",
                         "The gateway did not accept this web service's API key; the operator must give it "
                         "a read key (--api-key-file).")
    if code == grpc.StatusCode.INTERNAL:
        return PageError(502, "The search service failed", INTERNAL_MESSAGE)
    return PageError(502, "The search service failed", f"The gateway answered {code.name}.")
