"""Errors a store raises; each message names the model or the file concerned.

Each derives from the kind of ``modelverse.errors`` that says the status code (the kind first
among the bases, so its ``status`` wins): a store error the user cannot fix by changing the
request is FAILED_PRECONDITION, a damaged file DATA_LOSS."""

from __future__ import annotations

from modelverse.errors import AlreadyExistsError, DataLossError, FailedPreconditionError, NotFoundError


class StoreError(FailedPreconditionError):
    """Base class of every store error."""


class StoreNotFoundError(NotFoundError, StoreError):
    pass


class StoreCorruptError(DataLossError, StoreError):
    """A file of the store cannot be read; the message names it and what to do."""


class ModelNotFoundError(NotFoundError, StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "model not found"


class ModelExistsError(AlreadyExistsError, StoreError):
    pass


class IncompatibleStatsError(StoreError):
    """Statistics that do not fit the store (dimension, rank, eps, encoder)."""
