"""The ids a client sends to the gateway, checked before any shard sees them, and the opaque
page tokens of ListModels."""

from __future__ import annotations

import base64
import binascii

from modelverse.errors import InvalidInputError
from modelverse.store.metadata import MAX_ID_LENGTH, validate_model_id

PAGE_TOKEN_PREFIX = "p1."
MAX_PAGE_TOKEN_CHARS = len(PAGE_TOKEN_PREFIX) + 4 * (4 * MAX_ID_LENGTH + 2) // 3  # base64 of a UTF-8 id


def checked_model_id(value: str, where: str) -> str:
    """``value`` if it is a model id the store could hold (the store's rule: 1-200 printable
    characters, no surrounding spaces), else INVALID_ARGUMENT naming ``where``."""
    if len(value) > MAX_ID_LENGTH:  # before anything else, so no message quotes it
        raise InvalidInputError(f"{where}: a model id is at most {MAX_ID_LENGTH} characters, got {len(value)}")
    try:
        return validate_model_id(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from exc


def page_token(last_id: str) -> str:
    """The token of the page after ``last_id``: opaque to clients, so it can change form later."""
    return PAGE_TOKEN_PREFIX + base64.urlsafe_b64encode(last_id.encode("utf-8")).decode("ascii").rstrip("=")


def page_start(token: str) -> str:
    """The id after which a page starts ("" for the first page); INVALID_ARGUMENT for a token
    this service did not issue."""
    if not token:
        return ""
    bogus = InvalidInputError("page_token is not one this service issued: pass next_page_token unchanged")
    if len(token) > MAX_PAGE_TOKEN_CHARS or not token.startswith(PAGE_TOKEN_PREFIX):
        raise bogus
    body = token[len(PAGE_TOKEN_PREFIX):]
    try:
        last_id = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
        return validate_model_id(last_id)
    except (binascii.Error, UnicodeDecodeError, InvalidInputError):
        raise bogus from None
