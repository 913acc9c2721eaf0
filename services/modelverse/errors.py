"""The one family of errors a user may see: what they can fix, and the status code that says so.

Every error that a caller (a CLI user, a gRPC client, a web visitor) should read derives from
:class:`ModelverseError`, through one of the kinds below; each kind names the one gRPC status
code it is answered with (``status``, a ``grpc.StatusCode`` name), here and nowhere else. The
front ends translate only this family:

- the gRPC servers (gateway, shard, admin; ``serving/errors.py``) answer ``status`` with the
  error's one-line message;
- the CLI (``cli/main.py``) prints the message and exits 1;
- the web page (``web/errors.py``) maps the status codes the gateway answers to pages.

Anything else that escapes a handler is a bug: it is logged with its traceback and answered
INTERNAL with a generic message (the CLI prints "internal error, see log"), never
INVALID_ARGUMENT: a ``ValueError`` from deep inside is not the caller's fault.

Where it lives: this module is a leaf that imports nothing (not even grpc), so every layer may
use it, ``core`` included (the import contracts in pyproject.toml allow ``core -> errors`` and
forbid ``errors`` any import of ours). Core raises :class:`InvalidInputError` where it checks a
caller's data (a query's dimension, NaN, weights); its other ``ValueError``\\ s are broken
invariants, hence bugs.

To add an error: subclass the kind that says what the caller should do (a component's own base,
such as ``store.errors.StoreError``, may sit beside it: put the kind first among the bases, so
its ``status`` wins). Add a kind only for a status code no kind has yet.
"""

from __future__ import annotations

from typing import ClassVar


class ModelverseError(Exception):
    """Base of every user-facing error. Raise a kind (a subclass), which says the status code."""

    status: ClassVar[str] = "UNKNOWN"  # a kind overrides it; UNKNOWN marks a base raised bare

    @property
    def message(self) -> str:
        """The one line shown to the user."""
        return " ".join(str(self).split()) or type(self).__name__


class InvalidInputError(ModelverseError, ValueError):
    """The request itself is wrong (a dimension, a NaN, a malformed id or file). A ``ValueError``
    too, so code that checked ``except ValueError`` around a validation keeps working."""

    status = "INVALID_ARGUMENT"


class NotFoundError(ModelverseError):
    """What the request names does not exist (a model, a job, a store)."""

    status = "NOT_FOUND"


class AlreadyExistsError(ModelverseError):
    status = "ALREADY_EXISTS"


class FailedPreconditionError(ModelverseError):
    """The request is well formed but the system is not in a state to do it (the wrong encoder,
    no encoder, a store without models); retrying unchanged will not help."""

    status = "FAILED_PRECONDITION"


class PermissionDeniedError(ModelverseError):
    status = "PERMISSION_DENIED"


class UnauthenticatedError(ModelverseError):
    status = "UNAUTHENTICATED"


class ResourceExhaustedError(ModelverseError):
    """Over a limit (bytes, pixels, a full queue); a smaller or later request may pass."""

    status = "RESOURCE_EXHAUSTED"


class UnavailableError(ModelverseError):
    """A service or process this one needs is not answering; retrying later may help."""

    status = "UNAVAILABLE"


class DeadlineExceededError(ModelverseError):
    status = "DEADLINE_EXCEEDED"


class DataLossError(ModelverseError):
    """Stored data is corrupt or unreadable (a file, a pack row)."""

    status = "DATA_LOSS"


KINDS: tuple[type[ModelverseError], ...] = (
    InvalidInputError, NotFoundError, AlreadyExistsError, FailedPreconditionError, PermissionDeniedError,
    UnauthenticatedError, ResourceExhaustedError, UnavailableError, DeadlineExceededError, DataLossError,
)
KIND_OF_STATUS: dict[str, type[ModelverseError]] = {kind.status: kind for kind in KINDS}


def error_for_status(status: str, message: str) -> ModelverseError:
    """The kind of ``status`` (a gRPC status code's name) with ``message``: how a process passes
    on a user error that another process answered (a shard's NOT_FOUND is the gateway's)."""
    kind = KIND_OF_STATUS.get(status)
    if kind is None:
        raise KeyError(f"no user error kind answers {status}")
    return kind(message)
