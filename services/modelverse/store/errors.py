"""Errors a store raises; each message names the model or the file concerned."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every store error."""


class StoreNotFoundError(StoreError):
    pass


class StoreCorruptError(StoreError):
    """A file of the store cannot be read; the message names it and what to do."""


class ModelNotFoundError(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "model not found"


class ModelExistsError(StoreError):
    pass


class IncompatibleStatsError(StoreError):
    """Statistics that do not fit the store (dimension, rank, eps, encoder)."""
