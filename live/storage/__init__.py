"""Production storage: PostgreSQL (asyncpg) for the engine's records, Redis for prices and rate limits.

* `create_pool` / `migrate` / `PostgresStore`: opportunities, orders, fills, positions and risk snapshots with
  exact decimals, day partitions and idempotent upserts (see :mod:`live.storage.postgres`).
* `PriceCache` / `RateLimiter`: the latest quote per (venue, symbol) and shared rate-limit counters
  (see :mod:`live.storage.redis_cache`).

Pools and clients are owned by the caller (the composition root), never created at import time.
"""

from __future__ import annotations

from live.storage._errors import MigrationError, StorageError, StorageUnavailableError
from live.storage._migrate import MIGRATIONS_DIR, Migration, load_migrations, migrate
from live.storage._pool import create_pool
from live.storage.postgres import DAY_NS, RISK_SNAPSHOTS, PostgresStore, WriteMethod
from live.storage.redis_cache import PriceCache, RateLimiter

__all__ = [
    "DAY_NS",
    "MIGRATIONS_DIR",
    "RISK_SNAPSHOTS",
    "Migration",
    "MigrationError",
    "PostgresStore",
    "PriceCache",
    "RateLimiter",
    "StorageError",
    "StorageUnavailableError",
    "WriteMethod",
    "create_pool",
    "load_migrations",
    "migrate",
]
