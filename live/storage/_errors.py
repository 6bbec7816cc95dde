"""Errors raised by the production stores (PostgreSQL, Redis)."""

from __future__ import annotations


class StorageError(RuntimeError):
    """A store operation failed for a reason other than bad input (bad input raises `arbkit.schema.SchemaError`)."""


class StorageUnavailableError(StorageError):
    """The service could not be reached, or the connection was lost during the operation.

    The operation may or may not have been applied: writes are idempotent (upserts by key), so retrying after
    reconnecting is safe.
    """


class MigrationError(StorageError):
    """A migration file is malformed, or an already applied migration was edited afterwards."""
