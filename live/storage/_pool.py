"""asyncpg plumbing: the caller-owned pool, identifier quoting, and the connection-loss guard."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from live.storage._errors import StorageUnavailableError

# Errors that mean "the server is gone or the connection broke", as opposed to a bad statement.
_LOST: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
    ConnectionError,
    OSError,
    TimeoutError,
)


@contextlib.asynccontextmanager
async def guard() -> AsyncIterator[None]:
    """Re-raise a lost or refused connection as `StorageUnavailableError` (statement errors pass through)."""
    try:
        yield
    except _LOST as exc:
        raise StorageUnavailableError(
            f"PostgreSQL connection lost or unavailable: {type(exc).__name__}: {exc}"
        ) from exc
    except asyncpg.InterfaceError as exc:  # also raised for API misuse: only "connection is closed" means lost
        if "closed" not in str(exc):
            raise
        raise StorageUnavailableError(f"PostgreSQL connection lost or unavailable: {exc}") from exc


@contextlib.asynccontextmanager
async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> AsyncIterator[Any]:
    """An ``asyncpg.Pool`` for ``dsn``, closed on exit; the caller owns it and hands it to the stores.

    Parameters
    ----------
    dsn
        ``postgresql://user@host:port/database``.
    min_size, max_size
        Pool bounds.
    **kwargs
        Passed to ``asyncpg.create_pool`` (``command_timeout``, ``server_settings``, ...).

    Raises
    ------
    StorageUnavailableError
        The server cannot be reached.

    Examples
    --------
    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with create_pool("postgresql://postgres@127.0.0.1:5432/test") as pool:
    ...         await migrate(pool)
    ...         store = PostgresStore(pool)
    """
    async with guard():
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, **kwargs)
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def acquire(pool: Any) -> AsyncIterator[Any]:
    """A connection from an ``asyncpg.Pool``, or a bare ``asyncpg.Connection`` passed through."""
    if isinstance(pool, asyncpg.Connection):
        yield pool
        return
    async with pool.acquire() as conn:
        yield conn


def quote_ident(name: str) -> str:
    """Double-quote a PostgreSQL identifier (schema or table name)."""
    return '"' + name.replace('"', '""') + '"'
