"""Fixtures for tests against the real PostgreSQL and Redis services.

Addresses come from ``ARBKIT_TEST_PG_DSN`` and ``ARBKIT_TEST_REDIS_URL``.  A missing service fails the test (it
is never skipped).  Every test gets its own PostgreSQL schema and Redis key prefix, removed afterwards, so
parallel and repeated runs never collide.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis

PG_DSN = os.environ.get("ARBKIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ARBKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def pg_dsn() -> str:
    return PG_DSN


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name (``arbkit_t_<hex>``), dropped with everything in it after the test."""
    name = f"arbkit_t_{uuid.uuid4().hex[:12]}"

    async def drop() -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    yield name
    asyncio.run(drop())


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted after the test."""
    prefix = f"arbkit-test:{uuid.uuid4().hex[:12]}"

    async def clean() -> None:
        client = aioredis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    yield prefix
    asyncio.run(clean())
